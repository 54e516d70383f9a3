"""The in-memory dataset every loader returns: uint8 images (N, H, W, C), int labels, and how to normalize."""

import dataclasses

import numpy as np

from zerodiverse.data import pipeline


@dataclasses.dataclass(frozen=True)
class Dataset:
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  mean: tuple  # per channel, in pixel units / 255
  std: tuple
  source: str  # what was read, for summaries and reports (e.g. the offline CIFAR-10 rebuild)

  def train_stream(self, seed: int, batch_size: int, cfg):
    """The seeded training batches (augmented if config.data.augment)."""
    return pipeline.TrainStream(self, seed, batch_size, cfg.crop_padding if cfg.augment else 0)

  def eval_batches(self, batch_size: int, rows=slice(None)):
    return pipeline.eval_batches(self, batch_size, rows)

  def normalize(self, images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32) / 255.0
    return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
