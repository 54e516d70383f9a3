"""One 3x3 conv (batch 128, 32x32, 64->64, float32), stride 1 and 2: forward, XLA's own weight and data
gradients and zerodiverse.layers' (the same ops for a 3x3 conv; the committed outputs were taken while the
layers' stride-2 data gradient was a phase decomposition, since removed), jitted, the best of 7 rounds. Runs with the XLA_FLAGS of the environment (no determinism.apply):

  python docs/results/cpu_speed/one_conv.py                   # XLA's default: YNNPACK convolutions
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution python docs/results/cpu_speed/one_conv.py
"""

import os
import time

import jax
from jax import lax

from zerodiverse import layers


def race(fns: dict, args: tuple, rounds: int = 7) -> dict:
  for f in fns.values():
    jax.block_until_ready(f(*args))
  best = dict.fromkeys(fns, float("inf"))
  for _ in range(rounds):
    for name, f in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(f(*args))
      best[name] = min(best[name], time.perf_counter() - t0)
  return {name: round(t * 1000, 1) for name, t in best.items()}


def main():
  print("XLA_FLAGS:", os.environ.get("XLA_FLAGS", ""))
  n, h, c = 128, 32, 64
  x = jax.random.normal(jax.random.key(0), (n, h, h, c))
  w = jax.random.normal(jax.random.key(1), (3, 3, c, c)) * 0.05
  dn = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
  for stride in (1, 2):
    op = layers.Call(lax.conv_general_dilated, ((stride, stride), ((1, 1), (1, 1))), (("dimension_numbers", dn),))
    dy = jax.random.normal(jax.random.key(2), op(x, w).shape)
    times = race({
        "forward": jax.jit(lambda x, w, dy: op(x, w)),
        "XLA weight gradient": jax.jit(lambda x, w, dy: jax.vjp(lambda w_: op(x, w_), w)[1](dy)[0]),
        "layers.weight_gradient": jax.jit(lambda x, w, dy: layers.weight_gradient(op, x, w, dy)),
        "XLA data gradient": jax.jit(lambda x, w, dy: jax.vjp(lambda x_: op(x_, w), x)[1](dy)[0]),
        "layers.data_gradient": jax.jit(lambda x, w, dy: layers.data_gradient(op, x, w, dy)),
    }, (x, w, dy))
    print(f"stride {stride}: " + ", ".join(f"{k} {v} ms" for k, v in times.items()), flush=True)


if __name__ == "__main__":
  main()
