"""CIFAR through tensorflow-datasets, read as NumPy with `tfds.data_source` (ArrayRecord, no TensorFlow)."""

import numpy as np

from zerodiverse.errors import DataError

def load(name: str, tfds_dir: str | None) -> dict:
  """Downloads and prepares `name` on first use (needs internet), then reads both splits into memory."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    sources = tfds.data_source(name, split=["train", "test"], data_dir=tfds_dir or None, download=True,
                               builder_kwargs={"file_format": "array_record"})
  except Exception as e:  # tfds raises many types: no network, no disk, half-prepared dir...
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"tensorflow-datasets could not provide {name} in data.tfds_dir={tfds_dir or '~/tensorflow_datasets'!r} "
                    f"({first_line}); without internet set --config.data.dir to a folder in the official "
                    "binary layout") from e
  arrays = {}
  for split, source in zip(("train", "test"), sources):
    examples = [source[i] for i in range(len(source))]
    arrays[f"{split}_images"] = np.stack([np.asarray(ex["image"], np.uint8) for ex in examples])
    arrays[f"{split}_labels"] = np.asarray([ex["label"] for ex in examples], np.int32)
  return dict(arrays, num_classes={"cifar10": 10, "cifar100": 100}[name], source=f"{name} via tensorflow-datasets")
