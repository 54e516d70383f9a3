"""Data sets by `config.data.name`: cifar10 / cifar100 (binary dir or tensorflow-datasets) and digits."""

import numpy as np

from zerodiverse.data import cifar_binary, digits, tfds_source
from zerodiverse.data.dataset import DataError, Dataset
from zerodiverse.data.pipeline import TrainStream, eval_batches

NAMES = ("cifar10", "cifar100", "digits")
# Normalization of the paper's code (CIFAR-10) and the usual CIFAR-100 statistics, in pixel units / 255.
NORMALIZATION = {
    "cifar10": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "cifar100": ((129.3 / 255, 124.1 / 255, 112.4 / 255), (68.2 / 255, 65.4 / 255, 70.4 / 255)),
}


def load(cfg) -> Dataset:
  """The data set `cfg` (config.data) names, fully in memory."""
  if cfg.name not in NAMES:
    raise DataError(f"config.data.name={cfg.name!r} is not a data set; choose one of {NAMES}")
  if cfg.name == "digits":
    arrays = digits.load()
    pixels = arrays["train_images"].astype(np.float64) / 255
    mean, std = (float(pixels.mean()),), (float(pixels.std()),)
  else:
    arrays = (cifar_binary.load(cfg.name, cfg.dir) if cfg.dir
              else tfds_source.load(cfg.name, cfg.get("tfds_dir", "")))
    mean, std = NORMALIZATION[cfg.name]
  return Dataset(mean=mean, std=std, **arrays)


__all__ = ["DataError", "Dataset", "TrainStream", "eval_batches", "load"]
