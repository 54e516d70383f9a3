"""CIFAR through tensorflow-datasets, without TensorFlow: prepared by our builders (tfds_cifar) from the
official binary files, written as ArrayRecord and read back as NumPy with `tfds.data_source`."""

import numpy as np

from zerodiverse.data import cifar_binary
from zerodiverse.errors import DataError, UserError


def load(name: str, tfds_dir: str | None, manual_dir: str | None = None) -> dict:
  """Both splits of `name` in memory, in the files' order; prepared on first use.

  The source is `manual_dir` (a folder in the binary layout) when given, else the official archive,
  downloaded (needs internet).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (heavy; only this path needs it)
  from zerodiverse.data import tfds_cifar  # pylint: disable=g-import-not-at-top
  builder = tfds_cifar.BUILDERS[name]
  where = f"data.tfds_dir={tfds_dir or '~/tensorflow_datasets'!r}"
  try:
    sources = tfds.data_source(
        builder, split=["train", "test"], data_dir=tfds_dir or None, download=True,
        builder_kwargs={"file_format": "array_record"},
        download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)})
  except UserError:
    raise  # a damaged source file, named by cifar_binary
  except Exception as e:  # tfds raises many types: no network, no disk, half-prepared dir...
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"tensorflow-datasets could not provide {name} in {where} ({first_line}); without "
                    "internet set --config.data.dir to a folder in the official binary layout") from e
  num_classes = cifar_binary.LAYOUTS[name]["num_classes"]
  arrays = {}
  for split, source in zip(("train", "test"), sources):
    examples = [ex for start in range(0, len(source), 4096)  # batched reads: one seek per chunk, not per record
                for ex in source.__getitems__(range(start, min(start + 4096, len(source))))]
    arrays[f"{split}_images"] = np.stack([np.asarray(ex["image"], np.uint8) for ex in examples])
    arrays[f"{split}_labels"] = np.asarray([ex["label"] for ex in examples], np.int32)
    cifar_binary.check_labels(arrays[f"{split}_labels"], num_classes, f"{builder} {split} split in {where}")
  return dict(arrays, num_classes=num_classes, source=f"{name} via tensorflow-datasets")
