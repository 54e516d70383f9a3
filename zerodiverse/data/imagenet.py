"""ImageNet (imagenet2012) through tensorflow-datasets: read without TensorFlow, decoded on the host.

Preparing the data set is a one-time step that needs TensorFlow and the manually downloaded tars
(tfds's imagenet2012 builder calls tf.io.gfile):
  pip install tensorflow && tfds build imagenet2012 --manual_dir=DIR_WITH_TARS --data_dir=TFDS_DIR \
      --file_format=array_record
Training then reads TFDS_DIR (config.data.tfds_dir) with tfds.data_source as raw JPEG bytes, decoded by PIL
with DCT-domain downscaling (JPEG draft mode: a crop is decoded at no more than the resolution it needs),
in a thread pool (PIL releases the GIL while decoding), one batch ahead of the trainer.

Train: Inception-style random resized crop (area 8-100 %, aspect 3/4-4/3, 10 tries, else the centre) to
image_size, random horizontal flip, each from default_rng(seed, "augment", step, row). Eval: shorter side
to image_size * 256/224, centre crop. Both normalized with the usual ImageNet mean and std.
"""

import concurrent.futures
import io
import math

import numpy as np
from PIL import Image

from zerodiverse import rng
from zerodiverse.data.pipeline import EpochOrder
from zerodiverse.errors import DataError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NUM_CLASSES = 1000


def _open(record) -> Image.Image:
  """A PIL image from JPEG bytes (SkipDecoding) or an already decoded uint8 array."""
  if isinstance(record, (bytes, bytearray)):
    return Image.open(io.BytesIO(record))
  return Image.fromarray(np.asarray(record, np.uint8))


def _decode_box(image: Image.Image, box: tuple, size: tuple) -> np.ndarray:
  """The `box` (left, top, right, bottom) of `image` resized to `size` (w, h), decoding no finer than needed."""
  width, height = image.size
  if image.format == "JPEG":
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    image.draft("RGB", (math.ceil(width * size[0] / crop_w), math.ceil(height * size[1] / crop_h)))
    sx, sy = image.size[0] / width, image.size[1] / height
    box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
  return np.asarray(image.convert("RGB").resize(size, Image.BILINEAR, box=box), np.uint8)


def random_resized_crop_box(width: int, height: int, generator: np.random.Generator,
                            scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple:
  """(left, top, right, bottom) of an Inception-style crop."""
  area = width * height
  for _ in range(10):
    target = area * generator.uniform(*scale)
    aspect = math.exp(generator.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      left, top = int(generator.integers(0, width - w + 1)), int(generator.integers(0, height - h + 1))
      return left, top, left + w, top + h
  return centre_box(width, height, min(width, height))


def centre_box(width: int, height: int, side: int) -> tuple:
  left, top = (width - side) // 2, (height - side) // 2
  return left, top, left + side, top + side


def train_example(record, generator: np.random.Generator, image_size: int) -> np.ndarray:
  image = _open(record)
  out = _decode_box(image, random_resized_crop_box(*image.size, generator), (image_size, image_size))
  return out[:, ::-1] if generator.random() < 0.5 else out


def eval_example(record, image_size: int) -> np.ndarray:
  """Resize the shorter side to image_size * 256 / 224 and take the centre image_size square."""
  image = _open(record)
  width, height = image.size
  side = min(width, height) * 224 / 256  # the centre square that survives the resize-then-crop
  left, top = (width - side) / 2, (height - side) / 2
  return _decode_box(image, (left, top, left + side, top + side), (image_size, image_size))


def normalize(images: np.ndarray) -> np.ndarray:
  return (images.astype(np.float32) / 255.0 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)


class ImageNet:
  """The data set object the trainer uses: `train_stream`, `eval_batches`, `num_classes`, `source`."""
  num_classes = NUM_CLASSES

  def __init__(self, cfg):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    try:
      self.train, self.test = tfds.data_source("imagenet2012", split=["train", "validation"],
                                               data_dir=cfg.tfds_dir or None, download=False,
                                               decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as e:  # tfds raises several types for a missing or half-prepared data set
      raise DataError(f"data.tfds_dir={cfg.tfds_dir or '~/tensorflow_datasets'!r}: no prepared imagenet2012 "
                      f"({' '.join(str(e).split())[:200]}); prepare it once with `tfds build imagenet2012 "
                      "--manual_dir=DIR --data_dir=TFDS_DIR --file_format=array_record` (needs TensorFlow)") from e
    self.image_size, self.workers = cfg.image_size, cfg.decode_threads
    self.pool = concurrent.futures.ThreadPoolExecutor(max(1, self.workers))
    self.source = "imagenet2012 via tensorflow-datasets"

  def train_stream(self, seed: int, batch_size: int, cfg):
    del cfg
    return ImageNetStream(self, seed, batch_size)

  def eval_batches(self, batch_size: int, rows=slice(None)):
    n = len(self.test)
    for start in range(0, n, batch_size):
      idx = np.arange(start, start + batch_size)[rows]
      real = idx < n
      records = [self.test[int(i)] if ok else None for i, ok in zip(idx, real)]
      images = list(self.pool.map(
          lambda r: eval_example(r["image"], self.image_size) if r is not None else
          np.zeros((self.image_size, self.image_size, 3), np.uint8), records))
      labels = np.asarray([r["label"] if r is not None else 0 for r in records], np.int32)
      yield {"image": normalize(np.stack(images)), "label": labels, "mask": real}


class ImageNetStream(EpochOrder):
  """Seeded training batches decoded in threads, the next one prefetched while the trainer runs a step."""

  def __init__(self, imagenet: ImageNet, seed: int, batch_size: int):
    super().__init__(len(imagenet.train), seed, batch_size)
    self.imagenet = imagenet
    self._prefetcher = concurrent.futures.ThreadPoolExecutor(1)
    self._ahead = None  # ((step, rows), future)

  def _load(self, step: int, rows: slice) -> dict:
    idx = self.indices(step)
    positions = np.arange(len(idx))[rows]

    def one(j):
      record = self.imagenet.train[int(idx[j])]
      generator = np.random.default_rng(rng.numpy_seed(self.seed, "augment", step, j))
      return train_example(record["image"], generator, self.imagenet.image_size), record["label"]

    out = list(self.imagenet.pool.map(one, positions))
    return {"image": normalize(np.stack([o[0] for o in out])), "label": np.asarray([o[1] for o in out], np.int32)}

  def batch(self, step: int, rows=slice(None)) -> dict:
    key = (step, rows.start, rows.stop, rows.step)
    if self._ahead and self._ahead[0] == key:
      result = self._ahead[1].result()
    else:
      result = self._load(step, rows)
    self._ahead = ((step + 1, rows.start, rows.stop, rows.step), self._prefetcher.submit(self._load, step + 1, rows))
    return result
