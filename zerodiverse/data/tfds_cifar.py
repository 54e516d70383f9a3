"""tensorflow-datasets builders for CIFAR-10/100 that need no TensorFlow to prepare.

tfds's own cifar10 builder prepares through `tf.io.gfile` and `tf.image.encode_png`. These builders read
the official binary files with NumPy (cifar_binary, with its label and record-count checks), encode each
image as PNG with PIL and let tfds write ArrayRecord, which `tfds.data_source` reads back without
TensorFlow. The source is a folder in the binary layout (`DownloadConfig(manual_dir=...)`) or, when none
is given, the official tar.gz downloaded from its URL.
"""

import io
import os

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from zerodiverse.data import cifar_binary

URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
}


def png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="png")
  return buffer.getvalue()


class _CifarBinary(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One CIFAR data set from its binary files; subclasses name the layout (a key of cifar_binary.LAYOUTS)."""

  VERSION = tfds.core.Version("1.0.0")
  LAYOUT = ""
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Without internet, put the official binary files (the unpacked cifar-10-binary.tar.gz or "
      "cifar-100-binary.tar.gz) in the manual folder.")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"{self.LAYOUT} read from the official binary files, without TensorFlow.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(32, 32, 3)),
            "label": tfds.features.ClassLabel(num_classes=cifar_binary.LAYOUTS[self.LAYOUT]["num_classes"]),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True,  # the files' order, as the binary path reads it
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    )

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # tfds's own lookup probes zipapp paths with `importlib_resources`, a module it imports without
    # declaring it; this file is a plain file.
    return epath.Path(__file__)

  def _split_generators(self, dl_manager):
    try:
      source = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # no manual folder given (or it is empty): the official archive
      source = os.fspath(dl_manager.download_and_extract(URLS[self.LAYOUT]))
    splits = cifar_binary.load(self.LAYOUT, source)
    return {split: self._generate_examples(splits[f"{split}_images"], splits[f"{split}_labels"])
            for split in ("train", "test")}

  def _generate_examples(self, images, labels):
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": png(image), "label": int(label)}


class Cifar10Binary(_CifarBinary):
  LAYOUT = "cifar10"


class Cifar100Binary(_CifarBinary):
  LAYOUT = "cifar100"


BUILDERS = {"cifar10": Cifar10Binary.name, "cifar100": Cifar100Binary.name}
