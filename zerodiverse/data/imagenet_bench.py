"""How fast the ImageNet host pipeline decodes and augments: `python -m zerodiverse.data.imagenet_bench`.

Uses generated JPEGs of ImageNet's typical size (500x375, quality 90), so it runs anywhere; prints
images/s for the train path (random resized crop + flip) and the eval path, per thread count.
"""

import argparse
import io
import time

import numpy as np
from PIL import Image

from zerodiverse.data import imagenet


def jpegs(n: int, seed: int = 0) -> list[bytes]:
  generator = np.random.default_rng(seed)
  base = np.linspace(0, 255, 375 * 500 * 3).reshape(375, 500, 3)
  out = []
  for _ in range(n):
    image = np.clip(base + generator.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    out.append(buffer.getvalue())
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--images", type=int, default=256)
  parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
  parser.add_argument("--size", type=int, default=224)
  args = parser.parse_args()
  data = jpegs(args.images)
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  print(f"{'threads':>8} {'train img/s':>12} {'eval img/s':>11}")
  for threads in args.threads:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      rates = []
      for fn in (lambda i: imagenet.train_example(data[i], np.random.default_rng(i), args.size),
                 lambda i: imagenet.eval_example(data[i], args.size)):
        list(pool.map(fn, range(min(16, args.images))))  # warm-up
        t0 = time.perf_counter()
        list(pool.map(fn, range(args.images)))
        rates.append(args.images / (time.perf_counter() - t0))
    print(f"{threads:>8} {rates[0]:>12.0f} {rates[1]:>11.0f}")


if __name__ == "__main__":
  main()
