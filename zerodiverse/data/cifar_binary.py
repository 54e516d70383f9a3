"""CIFAR-10/100 from the official binary layout (no pickle): for machines without internet.

cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin: records of 1 label byte + 3072 bytes (R, G, B planes
of 32x32). cifar-100-binary/{train,test}.bin: 2 label bytes (coarse, fine) + 3072 bytes; the fine label is used.
"""

import os

import numpy as np

from zerodiverse.errors import DataError

LAYOUTS = {
    "cifar10": dict(folder="cifar-10-batches-bin", label_bytes=1, label_index=0, num_classes=10,
                    train=[f"data_batch_{i}.bin" for i in range(1, 6)], test=["test_batch.bin"]),
    "cifar100": dict(folder="cifar-100-binary", label_bytes=2, label_index=1, num_classes=100,
                     train=["train.bin"], test=["test.bin"]),
}
HOW_TO = {
    "cifar10": "build one offline with `python ../shared/data/cifar10/build.py DIR` and pass "
               "--config.data.dir=DIR, or set --config.data.dir='' to download through tensorflow-datasets",
    "cifar100": "unpack the official cifar-100-binary.tar.gz into DIR and pass --config.data.dir=DIR, "
                "or set --config.data.dir='' to download through tensorflow-datasets",
}


def read_records(path: str, label_bytes: int, label_index: int) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (N, 32, 32, 3), labels int32 (N,)) from one binary file."""
  raw = np.fromfile(path, dtype=np.uint8)
  record = label_bytes + 3072
  if raw.size == 0 or raw.size % record:
    raise DataError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records; "
                    "the file is truncated or not in the binary layout")
  raw = raw.reshape(-1, record)
  images = raw[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), raw[:, label_index].astype(np.int32)


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
  """Train and test arrays of `name` ('cifar10' or 'cifar100') read from `data_dir`."""
  layout = LAYOUTS[name]
  folder = find_folder(name, data_dir)

  def read(files):
    parts = [read_records(os.path.join(folder, f), layout["label_bytes"], layout["label_index"])
             for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

  train_images, train_labels = read(layout["train"])
  test_images, test_labels = read(layout["test"])
  return dict(train_images=train_images, train_labels=train_labels, test_images=test_images,
              test_labels=test_labels, num_classes=layout["num_classes"], source=f"{name} binary at {folder}")
