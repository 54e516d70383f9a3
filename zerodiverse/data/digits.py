"""scikit-learn's 8x8 handwritten digits (1,797 real images, shipped inside the package: no download).

A fixed 1,437 / 360 train/test split (independent of config.seed, so every run tests on the same images);
pixels 0..16 are rescaled to 0..255 so the common uint8 pipeline applies. The CSV file that
sklearn.datasets.load_digits reads is read here the same way (np.loadtxt), without importing scikit-learn,
which costs every run's process about 3 s.
"""

import gzip
import importlib.util
import os

import numpy as np

TEST_SIZE = 360
SPLIT_SEED = 20200101


def csv_path() -> str:
  """sklearn/datasets/data/digits.csv.gz: 64 pixel columns and the label, one row per image."""
  spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("the embedded digits ship with scikit-learn: pip install scikit-learn")
  return os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")


def load() -> dict:
  with gzip.open(csv_path(), mode="rt", encoding="utf-8") as f:
    data = np.loadtxt(f, delimiter=",")
  images = np.round(data[:, :-1].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = data[:, -1].astype(np.int32)
  order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
  test, train = order[:TEST_SIZE], order[TEST_SIZE:]
  return dict(train_images=images[train], train_labels=labels[train], test_images=images[test],
              test_labels=labels[test], num_classes=10, source="sklearn digits 8x8 (embedded)")
