"""CIFAR-10/100 from the official binary layout (no pickle): for machines without internet.

cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin: records of 1 label byte + 3072 bytes (R, G, B planes
of 32x32). cifar-100-binary/{train,test}.bin: 2 label bytes (coarse, fine) + 3072 bytes; the fine label is used.

Every file is checked before it is used: whole records, labels below the number of classes, and record
counts in the layout's proportions (a label byte out of range would otherwise surface much later as a NaN
loss, and a file cut at a record boundary would silently train on less data).
"""

import os

import numpy as np

from zerodiverse.errors import DataError

PIXEL_BYTES = 3072
LAYOUTS = {
    "cifar10": dict(folder="cifar-10-batches-bin", label_bytes=1, label_index=0, num_classes=10,
                    records={**{f"data_batch_{i}.bin": 10000 for i in range(1, 6)}, "test_batch.bin": 10000},
                    train=[f"data_batch_{i}.bin" for i in range(1, 6)], test=["test_batch.bin"]),
    "cifar100": dict(folder="cifar-100-binary", label_bytes=2, label_index=1, num_classes=100,
                     records={"train.bin": 50000, "test.bin": 10000},
                     train=["train.bin"], test=["test.bin"]),
}
HOW_TO = {
    "cifar10": "build one offline with `python ../shared/data/cifar10/build.py DIR` and pass "
               "--config.data.dir=DIR, or set --config.data.dir='' to download through tensorflow-datasets",
    "cifar100": "unpack the official cifar-100-binary.tar.gz into DIR and pass --config.data.dir=DIR, "
                "or set --config.data.dir='' to download through tensorflow-datasets",
}


def read_records(path: str, label_bytes: int, label_index: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (N, 32, 32, 3), labels int32 (N,)) from one binary file, its labels checked."""
  raw = np.fromfile(path, dtype=np.uint8)
  record = label_bytes + PIXEL_BYTES
  if raw.size == 0 or raw.size % record:
    raise DataError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records; "
                    "the file is truncated or not in the binary layout")
  raw = raw.reshape(-1, record)
  labels = raw[:, label_index].astype(np.int32)
  check_labels(labels, num_classes, path)
  images = raw[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
  """A DataError naming `where` and the first record whose label is not in [0, num_classes)."""
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    raise DataError(f"{where}: record {bad[0]} has label {labels[bad[0]]}, outside 0..{num_classes - 1} "
                    f"({bad.size} such records); the file is damaged or of another data set")


def check_record_counts(name: str, folder: str, counts: dict) -> None:
  """Every file holds the same fraction of its official record count (all of it, in the official archive).

  A copy scaled down uniformly (as tests use) passes; a file cut at a record boundary, or one file of
  another size than its siblings, does not.
  """
  official = LAYOUTS[name]["records"]
  fractions = {f: counts[f] / official[f] for f in counts}
  reference = min(max(fractions.values()), 1.0)
  for f, fraction in fractions.items():
    if fraction != reference:
      layout = ", ".join(f"{g} {n}" for g, n in official.items())
      raise DataError(f"{os.path.join(folder, f)}: {counts[f]} records, out of proportion with the other "
                      f"{name} files (the official layout has {layout}); the file is truncated or from "
                      "another copy")


def find_folder(name: str, data_dir: str) -> str:
  """`data_dir` itself or its child in the official layout; a DataError naming both paths otherwise."""
  layout = LAYOUTS[name]
  candidates = [data_dir, os.path.join(data_dir, layout["folder"])]
  for folder in map(os.path.abspath, candidates):
    if all(os.path.isfile(os.path.join(folder, f)) for f in layout["train"] + layout["test"]):
      return folder
  raise DataError(f"data.dir={data_dir!r}: no {name} binary files ({layout['train'][0]}, ...) in "
                  f"{candidates[1]} or {candidates[0]}; {HOW_TO[name]}")


def load(name: str, data_dir: str) -> dict:
  """Train and test arrays of `name` ('cifar10' or 'cifar100') read from `data_dir`, every file checked."""
  layout = LAYOUTS[name]
  folder = find_folder(name, data_dir)
  parts = {f: read_records(os.path.join(folder, f), layout["label_bytes"], layout["label_index"],
                           layout["num_classes"]) for f in layout["train"] + layout["test"]}
  check_record_counts(name, folder, {f: len(labels) for f, (_, labels) in parts.items()})

  def join(files):
    return np.concatenate([parts[f][0] for f in files]), np.concatenate([parts[f][1] for f in files])

  train_images, train_labels = join(layout["train"])
  test_images, test_labels = join(layout["test"])
  return dict(train_images=train_images, train_labels=train_labels, test_images=test_images,
              test_labels=test_labels, num_classes=layout["num_classes"], source=f"{name} binary files ({os.path.basename(folder)})")
