"""Data: the binary CIFAR reader, seeded order and augmentation, eval batching, tfds and digits."""

import os

import ml_collections
import numpy as np
import pytest

from zerodiverse import data
from zerodiverse.data import cifar_binary, pipeline
from zerodiverse.errors import DataError


def cfg(**kw):
  return ml_collections.ConfigDict(dict(dict(name="cifar10", dir="", tfds_dir=""), **kw))


def test_binary_reader_returns_the_records_written(tmp_path):
  generator = np.random.default_rng(3)
  labels = generator.integers(0, 10, 7, dtype=np.uint8)
  images = generator.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
  planes = images.transpose(0, 3, 1, 2).reshape(7, 3072)  # R, G, B planes, row-major
  path = tmp_path / "data_batch_1.bin"
  np.concatenate([labels[:, None], planes], 1).tofile(path)
  got_images, got_labels = cifar_binary.read_records(str(path), 1, 0)
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  # CIFAR-100's layout: coarse then fine label byte; the fine one is the label.
  path100 = tmp_path / "train.bin"
  np.concatenate([(labels // 5)[:, None], labels[:, None] + 50, planes], 1).tofile(path100)
  np.testing.assert_array_equal(cifar_binary.read_records(str(path100), 2, 1)[1], labels + 50)


def test_truncated_binary_file_names_the_file(tmp_path):
  path = tmp_path / "data_batch_1.bin"
  np.zeros(3073 * 2 + 5, np.uint8).tofile(path)
  with pytest.raises(DataError, match="data_batch_1.bin.*not a whole number"):
    cifar_binary.read_records(str(path), 1, 0)


def test_load_reads_the_folder_or_its_parent(fake_cifar_dir):
  for d in (fake_cifar_dir, os.path.join(fake_cifar_dir, "cifar-10-batches-bin")):
    ds = data.load(cfg(dir=d))
    assert ds.train_images.shape == (500, 32, 32, 3) and ds.test_images.shape == (100, 32, 32, 3)
    assert ds.num_classes == 10 and "binary" in ds.source


def test_missing_data_dir_names_the_paths_tried_and_the_fix(tmp_path):
  with pytest.raises(DataError) as e:
    data.load(cfg(dir=str(tmp_path / "nowhere")))
  message = str(e.value)
  assert str(tmp_path / "nowhere" / "cifar-10-batches-bin") in message
  assert "build.py" in message and "\n" not in message


def test_train_batches_depend_on_seed_and_step_alone(fake_cifar_dir):
  ds = data.load(cfg(dir=fake_cifar_dir))
  a, b = data.TrainStream(ds, 0, 32, 4), data.TrainStream(ds, 0, 32, 4)
  for step in (0, 5, 17, 3, 40):  # any order: random access, as after a resume
    np.testing.assert_array_equal(a.batch(step)["image"], b.batch(step)["image"])
  other_seed = data.TrainStream(ds, 1, 32, 4)
  assert not np.array_equal(a.batch(0)["label"], other_seed.batch(0)["label"])


def test_each_epoch_is_a_permutation_without_the_last_partial_batch(fake_cifar_dir):
  ds = data.load(cfg(dir=fake_cifar_dir))
  stream = data.TrainStream(ds, 0, 32, 0)
  assert stream.steps_per_epoch == 500 // 32
  epoch0 = np.concatenate([stream.indices(s) for s in range(stream.steps_per_epoch)])
  epoch1 = np.concatenate([stream.indices(s) for s in range(stream.steps_per_epoch, 2 * stream.steps_per_epoch)])
  assert len(set(epoch0)) == len(epoch0) == 32 * 15
  assert not np.array_equal(epoch0, epoch1)
  assert stream.position(16) == {"epoch": 1, "batch": 1}


def test_augmentation_is_reflect_pad_crop_and_flip():
  generator = np.random.default_rng(0)
  images = generator.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
  out = pipeline.augment(images, np.random.default_rng(1), 2)
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  flips = 0
  for i in range(64):  # every output is some crop of the padded image, flipped or not
    crops = [padded[i, t:t + 8, l:l + 8] for t in range(5) for l in range(5)]
    plain = any(np.array_equal(out[i], c) for c in crops)
    flipped = any(np.array_equal(out[i], c[:, ::-1]) for c in crops)
    assert plain or flipped
    flips += flipped and not plain
  assert 16 < flips < 48  # about half flipped
  np.testing.assert_array_equal(out, pipeline.augment(images, np.random.default_rng(1), 2))


def test_eval_batches_cover_the_test_set_once_with_a_mask(fake_cifar_dir):
  ds = data.load(cfg(dir=fake_cifar_dir))
  batches = list(data.eval_batches(ds, 30))
  assert [b["mask"].sum() for b in batches] == [30, 30, 30, 10]
  np.testing.assert_array_equal(np.concatenate([b["label"][b["mask"]] for b in batches]), ds.test_labels)


def test_digits_are_embedded_with_a_fixed_split():
  ds = data.load(cfg(name="digits"))
  assert ds.train_images.shape == (1437, 8, 8, 1) and ds.test_images.shape == (360, 8, 8, 1)
  assert set(np.unique(ds.train_labels)) == set(range(10))
  again = data.load(cfg(name="digits"))
  np.testing.assert_array_equal(ds.test_images, again.test_images)


def test_tfds_path_reads_numpy_without_tensorflow():
  import sys
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load(cfg(dir=""))
  assert ds.train_images.shape == (12, 32, 32, 3) and ds.train_images.dtype == np.uint8
  assert ds.test_labels.shape == (12,) and ds.num_classes == 10 and "tensorflow-datasets" in ds.source
  assert "tensorflow" not in sys.modules


def test_unknown_data_set_is_a_clear_error():
  with pytest.raises(DataError, match="config.data.name='mnist'"):
    data.load(cfg(name="mnist"))
