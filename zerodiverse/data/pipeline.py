"""Batches on the host in NumPy, fixed by (seed, step) alone, so a resumed run and the PyTorch twin see
exactly the batches an uninterrupted JAX run sees.

Epoch e visits the train set in the order default_rng(seed, "data_order", e).permutation(N) and drops the
last partial batch; the batch of step t is batch t mod (N // B) of epoch t // (N // B). Augmentation
(reflect-pad, random crop, horizontal flip) draws from default_rng(seed, "augment", t).
"""

import numpy as np

from zerodiverse import rng
from zerodiverse.errors import ConfigError


def augment(images: np.ndarray, generator: np.random.Generator, padding: int, rows=slice(None)) -> np.ndarray:
  """Reflect-pad by `padding`, take a random crop of the original size, flip half the images.

  The draws are made for the whole batch and `rows` picks which images to produce, so a host that
  produces only its slice of a batch gets exactly those images of the whole batch.
  """
  n, h, w = images.shape[:3]
  top = generator.integers(0, 2 * padding + 1, size=n)[rows]
  left = generator.integers(0, 2 * padding + 1, size=n)[rows]
  flip = (generator.random(n) < 0.5)[rows]
  images = images[rows]
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
  cols = np.where(flip[:, None], np.arange(w)[::-1], np.arange(w)) + left[:, None]
  rows_ = top[:, None] + np.arange(h)
  return padded[np.arange(len(images))[:, None, None], rows_[:, :, None], cols[:, None, :]]


class EpochOrder:
  """Which examples step t reads: epoch t // S visits all N in a seeded permutation, S = N // B batches."""

  def __init__(self, n: int, seed: int, batch_size: int):
    if batch_size > n:
      raise ConfigError(f"config.train.batch_size={batch_size} exceeds the {n} training images")
    self.n, self.seed, self.batch_size = n, seed, batch_size
    self.steps_per_epoch = n // batch_size
    self._epoch, self._order = None, None

  def position(self, step: int) -> dict:
    """Where step `step` reads: the epoch and the batch within it."""
    return {"epoch": step // self.steps_per_epoch, "batch": step % self.steps_per_epoch}

  def indices(self, step: int) -> np.ndarray:
    pos = self.position(step)
    if pos["epoch"] != self._epoch:
      generator = np.random.default_rng(rng.numpy_seed(self.seed, "data_order", pos["epoch"]))
      self._epoch, self._order = pos["epoch"], generator.permutation(self.n)
    return self._order[pos["batch"] * self.batch_size:(pos["batch"] + 1) * self.batch_size]


class TrainStream(EpochOrder):
  """Random access to the training batches of one in-memory data set: `batch(step)` -> dict(image, label)."""

  def __init__(self, data, seed: int, batch_size: int, augment_padding: int = 0):
    super().__init__(len(data.train_labels), seed, batch_size)
    self.data, self.padding = data, augment_padding

  def batch(self, step: int, rows=slice(None)) -> dict:
    """The batch of `step`, or only its `rows` (a host's slice of the global batch)."""
    idx = self.indices(step)
    images = self.data.train_images[idx]
    if self.padding:
      images = augment(images, np.random.default_rng(rng.numpy_seed(self.seed, "augment", step)), self.padding, rows)
    else:
      images = images[rows]
    return {"image": self.data.normalize(images), "label": self.data.train_labels[idx][rows]}


def eval_batches(data, batch_size: int, rows=slice(None)):
  """The test set in order, in batches of `batch_size`; the last is zero-padded, with `mask` marking real rows."""
  n = len(data.test_labels)
  for start in range(0, n, batch_size):
    images = data.normalize(data.test_images[start:start + batch_size])
    labels = data.test_labels[start:start + batch_size]
    pad = batch_size - len(labels)
    batch = {"image": np.pad(images, ((0, pad),) + ((0, 0),) * (images.ndim - 1)),
             "label": np.pad(labels, (0, pad)), "mask": np.arange(batch_size) < len(labels)}
    yield {k: v[rows] for k, v in batch.items()}
