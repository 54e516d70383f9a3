"""Batches on the host in NumPy, fixed by (seed, step) alone, so a resumed run and the PyTorch twin see
exactly the batches an uninterrupted JAX run sees.

Epoch e visits the train set in the order default_rng(seed, "data_order", e).permutation(N) and drops the
last partial batch; the batch of step t is batch t mod (N // B) of epoch t // (N // B). Augmentation
(reflect-pad, random crop, horizontal flip) draws from default_rng(seed, "augment", t).
"""

import numpy as np

from zerodiverse import rng
from zerodiverse.data.dataset import Dataset
from zerodiverse.errors import ConfigError


def augment(images: np.ndarray, generator: np.random.Generator, padding: int) -> np.ndarray:
  """Reflect-pad by `padding`, take a random crop of the original size, flip half the images."""
  n, h, w = images.shape[:3]
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
  top = generator.integers(0, 2 * padding + 1, size=n)
  left = generator.integers(0, 2 * padding + 1, size=n)
  flip = generator.random(n) < 0.5
  cols = np.where(flip[:, None], np.arange(w)[::-1], np.arange(w)) + left[:, None]
  rows = top[:, None] + np.arange(h)
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


class TrainStream:
  """Random access to the training batches of one seed: `batch(step)` -> dict(image, label)."""

  def __init__(self, data: Dataset, seed: int, batch_size: int, augment_padding: int = 0):
    n = len(data.train_labels)
    if batch_size > n:
      raise ConfigError(f"config.train.batch_size={batch_size} exceeds the {n} training images")
    self.data, self.seed, self.batch_size, self.padding = data, seed, batch_size, augment_padding
    self.steps_per_epoch = n // batch_size
    self._epoch, self._order = None, None

  def position(self, step: int) -> dict:
    """Where step `step` reads: the epoch and the batch within it."""
    return {"epoch": step // self.steps_per_epoch, "batch": step % self.steps_per_epoch}

  def indices(self, step: int) -> np.ndarray:
    pos = self.position(step)
    if pos["epoch"] != self._epoch:
      generator = np.random.default_rng(rng.numpy_seed(self.seed, "data_order", pos["epoch"]))
      self._epoch, self._order = pos["epoch"], generator.permutation(len(self.data.train_labels))
    return self._order[pos["batch"] * self.batch_size:(pos["batch"] + 1) * self.batch_size]

  def batch(self, step: int) -> dict:
    idx = self.indices(step)
    images = self.data.train_images[idx]
    if self.padding:
      images = augment(images, np.random.default_rng(rng.numpy_seed(self.seed, "augment", step)), self.padding)
    return {"image": self.data.normalize(images), "label": self.data.train_labels[idx]}


def eval_batches(data: Dataset, batch_size: int):
  """The test set in order, in batches of `batch_size`; the last is zero-padded, with `mask` marking real rows."""
  n = len(data.test_labels)
  for start in range(0, n, batch_size):
    images = data.normalize(data.test_images[start:start + batch_size])
    labels = data.test_labels[start:start + batch_size]
    real = len(labels)
    pad = batch_size - real
    yield {"image": np.pad(images, ((0, pad),) + ((0, 0),) * (images.ndim - 1)),
           "label": np.pad(labels, (0, pad)), "mask": np.arange(batch_size) < real}
