"""The ImageNet pipeline on a small imagenet2012 written in the tfds layout (array_record, JPEG bytes)."""

import io
import json

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import tiny_config
from zerodiverse import data
from zerodiverse.data import imagenet
from zerodiverse.errors import DataError
from zerodiverse.run import train_and_evaluate


class FakeImagenet(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """imagenet2012's name, version and features, with a few random JPEGs of varied shapes."""
  name = "imagenet2012"
  VERSION = tfds.core.Version("5.1.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(encoding_format="jpeg"), "label": tfds.features.ClassLabel(num_classes=1000),
        "file_name": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(24, 0), "validation": self._generate_examples(10, 1)}

  def _generate_examples(self, n, seed):
    generator = np.random.default_rng(seed)
    for i in range(n):
      image = generator.integers(0, 256, (40 + 9 * i, 90 - 2 * i, 3), dtype=np.uint8)
      buffer = io.BytesIO()
      Image.fromarray(image).save(buffer, format="JPEG")
      yield i, {"image": buffer.getvalue(), "label": int(generator.integers(1000)), "file_name": f"{i}.JPEG"}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tfds"))
  FakeImagenet(data_dir=root, file_format="array_record").download_and_prepare()
  return root


def cfg(tfds_dir, **kw):
  return ml_collections.ConfigDict(dict(dict(name="imagenet2012", dir="", tfds_dir=tfds_dir, image_size=32,
                                             decode_threads=4, augment=True, crop_padding=0), **kw))


def test_train_batches_are_seeded_crops_of_the_right_size(tfds_dir):
  dataset = data.load(cfg(tfds_dir))
  assert dataset.num_classes == 1000 and "imagenet2012" in dataset.source
  a = dataset.train_stream(0, 8, None)
  b = dataset.train_stream(0, 8, None)
  batch = a.batch(0)
  assert batch["image"].shape == (8, 32, 32, 3) and batch["image"].dtype == np.float32
  assert a.steps_per_epoch == 3
  for step in (1, 2, 0, 5):  # prefetched or not, in any order: the same batches
    np.testing.assert_array_equal(a.batch(step)["image"], b.batch(step)["image"])
  half = dataset.train_stream(0, 8, None).batch(5, slice(4, 8))
  np.testing.assert_array_equal(half["image"], b.batch(5)["image"][4:8])
  assert not np.array_equal(dataset.train_stream(1, 8, None).batch(0)["image"], batch["image"])
  assert abs(float(batch["image"].mean())) < 1.0  # normalized


def test_eval_batches_are_centre_crops_with_a_mask(tfds_dir):
  dataset = data.load(cfg(tfds_dir))
  batches = list(dataset.eval_batches(4))
  assert [int(b["mask"].sum()) for b in batches] == [4, 4, 2]
  again = list(dataset.eval_batches(4))
  np.testing.assert_array_equal(batches[0]["image"], again[0]["image"])
  assert not np.ptp(batches[-1]["image"][2:], axis=(0, 1, 2)).any()  # padding rows: one constant per channel


def test_crop_boxes_stay_inside_and_cover_the_area_range():
  generator = np.random.default_rng(0)
  areas = []
  for _ in range(2000):
    left, top, right, bottom = imagenet.random_resized_crop_box(500, 375, generator)
    assert 0 <= left < right <= 500 and 0 <= top < bottom <= 375
    areas.append((right - left) * (bottom - top) / (500 * 375))
    assert 3 / 4 - 0.02 <= (right - left) / (bottom - top) <= 4 / 3 + 0.02 or areas[-1] > 0.5
  assert min(areas) < 0.12 and max(areas) > 0.9


def test_draft_decoding_matches_full_decoding_closely():
  smooth = np.linspace(0, 255, 400 * 600 * 3).reshape(400, 600, 3).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(smooth).save(buffer, format="JPEG", quality=95)
  fast = imagenet.eval_example(buffer.getvalue(), 64)  # decoded at 1/4 scale by draft mode
  slow = imagenet.eval_example(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")), 64)
  assert fast.shape == slow.shape == (64, 64, 3)
  assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 3


def test_missing_imagenet_names_the_dir_and_how_to_prepare(tmp_path):
  with pytest.raises(DataError, match="no prepared imagenet2012.*tfds build imagenet2012"):
    data.load(cfg(str(tmp_path)))


def test_a_run_trains_on_the_generated_imagenet(tfds_dir, tmp_path):
  config = tiny_config(**{"data.name": "imagenet2012", "data.tfds_dir": tfds_dir, "data.image_size": 32,
                          "data.decode_threads": 4, "train.steps": 3, "train.batch_size": 8,
                          "train.eval_batch_size": 5})
  summary = train_and_evaluate(config, str(tmp_path))
  assert summary["steps"] == 3 and "imagenet2012" in summary["data"]
  evals = [json.loads(l) for l in open(tmp_path / "metrics.jsonl") if '"test"' in l]
  assert evals and 0 <= evals[-1]["accuracy"] <= 1
