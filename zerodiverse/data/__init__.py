"""Data sets by `config.data.name`: cifar10 / cifar100 (binary dir or tensorflow-datasets) and digits."""

import numpy as np

from zerodiverse.data import cifar_binary, digits, tfds_source
from zerodiverse.data.dataset import Dataset
from zerodiverse.errors import DataError
from zerodiverse.data.pipeline import TrainStream, eval_batches

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "digits": 10, "imagenet2012": 1000}
NAMES = tuple(NUM_CLASSES)
# Normalization of the paper's code (CIFAR-10) and the usual CIFAR-100 statistics, in pixel units / 255.
NORMALIZATION = {
    "cifar10": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "cifar100": ((129.3 / 255, 124.1 / 255, 112.4 / 255), (68.2 / 255, 65.4 / 255, 70.4 / 255)),
}


def num_classes(name: str) -> int:
  if name not in NUM_CLASSES:
    raise DataError(f"config.data.name={name!r} is not a data set; choose one of {NAMES}")
  return NUM_CLASSES[name]


def load(cfg):
  """The data set `cfg` (config.data) names: in memory, or streamed from disk for imagenet2012."""
  num_classes(cfg.name)
  if cfg.name == "imagenet2012":
    from zerodiverse.data import imagenet  # pylint: disable=g-import-not-at-top
    return imagenet.ImageNet(cfg)
  if cfg.name == "digits":
    arrays = digits.load()
    pixels = arrays["train_images"].astype(np.float64) / 255
    mean, std = (float(pixels.mean()),), (float(pixels.std()),)
  else:
    arrays = (cifar_binary.load(cfg.name, cfg.dir) if cfg.dir
              else tfds_source.load(cfg.name, cfg.get("tfds_dir", "")))
    mean, std = NORMALIZATION[cfg.name]
  return Dataset(mean=mean, std=std, **arrays)


__all__ = ["DataError", "Dataset", "TrainStream", "eval_batches", "load", "num_classes"]
