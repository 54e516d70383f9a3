"""scikit-learn's 8x8 handwritten digits (1,797 real images, shipped inside the package: no download).

A fixed 1,437 / 360 train/test split (independent of config.seed, so every run tests on the same images);
pixels 0..16 are rescaled to 0..255 so the common uint8 pipeline applies.
"""

import numpy as np

TEST_SIZE = 360
SPLIT_SEED = 20200101


def load() -> dict:
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
  test, train = order[:TEST_SIZE], order[TEST_SIZE:]
  return dict(train_images=images[train], train_labels=labels[train], test_images=images[test],
              test_labels=labels[test], num_classes=10, source="sklearn digits 8x8 (embedded)")
