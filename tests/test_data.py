"""Data: the binary CIFAR reader, seeded order and augmentation, eval batching, tfds and digits."""

import os
import sys

import ml_collections
import numpy as np
import pytest

from zerodiverse import data
from zerodiverse.data import cifar_binary, pipeline
from zerodiverse.errors import DataError
from conftest import launch, write_fake_cifar10


def cfg(**kw):
  return ml_collections.ConfigDict(dict(dict(name="cifar10", dir="", tfds_dir=""), **kw))


def test_binary_reader_returns_the_records_written(tmp_path):
  generator = np.random.default_rng(3)
  labels = generator.integers(0, 10, 7, dtype=np.uint8)
  images = generator.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
  planes = images.transpose(0, 3, 1, 2).reshape(7, 3072)  # R, G, B planes, row-major
  path = tmp_path / "data_batch_1.bin"
  np.concatenate([labels[:, None], planes], 1).tofile(path)
  got_images, got_labels = cifar_binary.read_records(str(path), 1, 0, 10)
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  # CIFAR-100's layout: coarse then fine label byte; the fine one is the label.
  path100 = tmp_path / "train.bin"
  np.concatenate([(labels // 5)[:, None], labels[:, None] + 50, planes], 1).tofile(path100)
  np.testing.assert_array_equal(cifar_binary.read_records(str(path100), 2, 1, 100)[1], labels + 50)


def test_truncated_binary_file_names_the_file(tmp_path):
  path = tmp_path / "data_batch_1.bin"
  np.zeros(3073 * 2 + 5, np.uint8).tofile(path)
  with pytest.raises(DataError, match="data_batch_1.bin.*not a whole number"):
    cifar_binary.read_records(str(path), 1, 0, 10)


def set_label(path: str, record: int, label: int) -> None:
  """Overwrites the label byte of one record of a CIFAR-10 binary file."""
  raw = np.fromfile(path, np.uint8)
  raw[record * 3073] = label
  raw.tofile(path)


@pytest.mark.parametrize("file", ["data_batch_4.bin", "test_batch.bin"])
def test_label_out_of_range_names_the_file_and_record(tmp_path, file):
  folder = write_fake_cifar10(str(tmp_path), per_batch=20)
  set_label(os.path.join(folder, file), 13, 200)
  with pytest.raises(DataError) as e:
    data.load(cfg(dir=str(tmp_path)))
  message = str(e.value)
  assert os.path.join(folder, file) in message and "record 13 has label 200" in message
  assert "outside 0..9" in message and "\n" not in message


def test_launch_refuses_a_label_out_of_range_in_one_line_with_exit_2(tmp_path):
  """The test split's bad label used to end in exit 0 and a NaN test loss."""
  folder = write_fake_cifar10(str(tmp_path / "cifar"), per_batch=20)
  set_label(os.path.join(folder, "test_batch.bin"), 7, 200)
  run = launch("--config", "configs/constnet_cifar10.py:smoke", "--workdir", str(tmp_path / "w"),
               f"--config.data.dir={tmp_path / 'cifar'}")
  assert run.returncode == 2, run.stderr
  assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
  assert "test_batch.bin: record 7 has label 200" in run.stderr


def test_a_file_cut_at_a_record_boundary_is_refused(tmp_path):
  folder = write_fake_cifar10(str(tmp_path), per_batch=20)
  path = os.path.join(folder, "data_batch_3.bin")
  np.fromfile(path, np.uint8)[:-3073].tofile(path)  # whole records, one short of its siblings
  with pytest.raises(DataError) as e:
    data.load(cfg(dir=str(tmp_path)))
  assert f"{path}: 19 records, out of proportion" in str(e.value) and "\n" not in str(e.value)
  official = dict.fromkeys(cifar_binary.LAYOUTS["cifar10"]["records"], 10000)
  cifar_binary.check_record_counts("cifar10", folder, official)  # the official archive passes
  with pytest.raises(DataError, match="test_batch.bin: 10001 records"):  # more than the archive holds
    cifar_binary.check_record_counts("cifar10", folder, dict(official, **{"test_batch.bin": 10001}))
  with pytest.raises(DataError, match="data_batch_1.bin: 20002 records"):
    cifar_binary.check_record_counts("cifar10", folder, dict.fromkeys(official, 20002))


def test_load_reads_the_folder_or_its_parent(fake_cifar_dir):
  for d in (fake_cifar_dir, os.path.join(fake_cifar_dir, "cifar-10-batches-bin")):
    ds = data.load(cfg(dir=d))
    assert ds.train_images.shape == (500, 32, 32, 3) and ds.test_images.shape == (100, 32, 32, 3)
    assert ds.num_classes == 10 and "binary" in ds.source and fake_cifar_dir not in ds.source  # no machine path


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


def test_digits_are_what_sklearns_load_digits_returns():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from zerodiverse.data import digits  # pylint: disable=g-import-not-at-top
  reference = load_digits()
  mine = digits.load()
  images = np.concatenate([mine["train_images"], mine["test_images"]])[..., 0]
  labels = np.concatenate([mine["train_labels"], mine["test_labels"]])
  order = np.random.default_rng(digits.SPLIT_SEED).permutation(len(reference.target))
  order = np.concatenate([order[digits.TEST_SIZE:], order[:digits.TEST_SIZE]])  # train rows, then test rows
  np.testing.assert_array_equal(images, np.round(reference.images[order] * (255.0 / 16.0)).astype(np.uint8))
  np.testing.assert_array_equal(labels, reference.target[order])
  assert mine["train_images"].shape == (1437, 8, 8, 1)


def test_tfds_builder_prepares_from_binary_files_and_reads_back_without_tensorflow(tmp_path):
  """The real preparation, offline: the binary layout as the manual folder, ArrayRecord written, read back."""
  import tensorflow_datasets as tfds
  from zerodiverse.data import tfds_cifar
  source = write_fake_cifar10(str(tmp_path / "bin"), per_batch=12, seed=5)
  tfds_dir = str(tmp_path / "tfds")
  assert "tensorflow" not in sys.modules
  builder = tfds.builder(tfds_cifar.BUILDERS["cifar10"], data_dir=tfds_dir, file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=source))
  written = os.listdir(builder.data_dir)
  assert any(".array_record-" in f and "-train." in f for f in written), written
  ds = data.load(cfg(dir="", tfds_dir=tfds_dir))  # tfds.data_source over what was prepared; no download
  assert "tensorflow" not in sys.modules
  files = data.load(cfg(dir=source))
  assert ds.train_images.shape == (60, 32, 32, 3) and ds.test_images.shape == (12, 32, 32, 3)
  for split in ("train", "test"):  # pixels and labels as in the files, in the files' order
    np.testing.assert_array_equal(getattr(ds, f"{split}_images"), getattr(files, f"{split}_images"))
    np.testing.assert_array_equal(getattr(ds, f"{split}_labels"), getattr(files, f"{split}_labels"))
  assert ds.num_classes == 10 and "tensorflow-datasets" in ds.source


def test_tfds_preparation_refuses_a_label_out_of_range(tmp_path):
  from zerodiverse.data import tfds_source
  source = write_fake_cifar10(str(tmp_path / "bin"), per_batch=12)
  set_label(os.path.join(source, "data_batch_2.bin"), 3, 200)
  with pytest.raises(DataError, match="data_batch_2.bin: record 3 has label 200"):
    tfds_source.load("cifar10", str(tmp_path / "tfds"), manual_dir=source)


def test_unknown_data_set_is_a_clear_error():
  with pytest.raises(DataError, match="config.data.name='mnist'"):
    data.load(cfg(name="mnist"))
