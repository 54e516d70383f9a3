"""Data parallelism: 8 simulated CPU devices against 1, reruns, checkpoints across device counts, multi-host."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, tiny_config
from zerodiverse import data, parallel
from zerodiverse.errors import ConfigError
from zerodiverse.run import train_and_evaluate
from zerodiverse.train.metrics_log import MetricsLog


@pytest.fixture(scope="module")
def eight_devices():
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  result = subprocess.run([sys.executable, os.path.join(REPO, "tests", "multidevice_worker.py")], env=env,
                          capture_output=True, text=True, timeout=600)
  lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
  assert result.returncode == 0 and lines, result.stderr[-3000:]
  return json.loads(lines[0][len("RESULT "):])


def test_eight_device_step_matches_one_device_within_float32_tolerance(eight_devices):
  assert eight_devices["devices"] == 8 and eight_devices["params_replicated_on"] == 8
  assert eight_devices["step_max_param_diff_1_vs_8"] < 1e-6
  assert eight_devices["step_max_batch_stats_diff_1_vs_8"] < 1e-5
  one, eight = eight_devices["step_loss_1_vs_8"]
  assert abs(one - eight) < 1e-5


def test_two_eight_device_runs_are_bitwise_identical(eight_devices):
  assert eight_devices["fingerprint_8_a"] == eight_devices["fingerprint_8_b"]


def test_checkpoint_saved_on_eight_devices_restores_on_one_and_on_eight(eight_devices):
  assert eight_devices["restore_on_1_bitwise"] and eight_devices["restore_on_1_devices"] == 1
  assert eight_devices["restore_on_8_bitwise"] and eight_devices["restore_on_8_devices"] == 8
  assert eight_devices["moved_resumed_from"] == 3  # a run moved from 8 devices to 1 resumes...
  assert eight_devices["moved_vs_8_max_param_diff"] < 1e-5  # ...and ends where the 8-device run did


def test_each_host_loads_exactly_its_slice_of_the_global_batch(fake_cifar_dir):
  config = tiny_config(**{"data.name": "cifar10", "data.dir": fake_cifar_dir, "data.augment": True})
  dataset = data.load(config.data)
  global_batch = dataset.train_stream(0, 64, config.data).batch(5)
  for count in (1, 2, 4, 8):  # each simulated host recomputes its rows from the seed alone
    parts = [dataset.train_stream(0, 64, config.data).batch(5, parallel.host_slice(64, i, count))
             for i in range(count)]
    for k in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), global_batch[k])
  evals = [list(dataset.eval_batches(40, parallel.host_slice(40, i, 4))) for i in range(4)]
  for k in ("label", "mask"):
    np.testing.assert_array_equal(np.concatenate([np.concatenate([b[k] for b in e]) for e in zip(*evals)]),
                                  np.concatenate([b[k] for b in dataset.eval_batches(40)]))
  with pytest.raises(ConfigError, match="not divisible by the 3 processes"):
    parallel.host_slice(64, 0, 3)


def test_only_process_zero_writes(tmp_path, monkeypatch):
  assert parallel.is_writer(0) and not parallel.is_writer(1)
  log = MetricsLog(str(tmp_path / "m.jsonl"), enabled=False)
  log.write({"step": 1})
  assert not os.path.exists(tmp_path / "m.jsonl")
  monkeypatch.setattr(parallel, "is_writer", lambda process_index=None: False)  # simulate process 1
  summary = train_and_evaluate(tiny_config(**{"train.steps": 4}), str(tmp_path / "w"))
  assert summary["steps"] == 4
  assert sorted(os.listdir(tmp_path / "w")) == ["checkpoints"]  # orbax coordinates its own writes


def test_mesh_and_batch_checks_fail_clearly():
  with pytest.raises(ConfigError, match="num_devices=4: this job sees 1 devices"):
    parallel.make_mesh(tiny_config(**{"parallel.num_devices": 4}).parallel)
  mesh = parallel.make_mesh(tiny_config().parallel)
  parallel.check_divisible(64, mesh, "batch_size")
  with pytest.raises(ConfigError, match="coordinator is set"):
    parallel.initialize(tiny_config(**{"parallel.distributed": True, "parallel.coordinator": "h:1"}).parallel)
