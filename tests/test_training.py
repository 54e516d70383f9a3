"""Training end to end: symmetry kept or broken, bitwise reproducibility across processes, resume, NaN."""

import json
import os
import signal
import time

import numpy as np
import pytest

from conftest import launch, tiny_config
from zerodiverse.errors import Diverged, WorkdirError
from zerodiverse.train import trainer


@pytest.fixture(scope="module")
def symmetric_and_noisy(tmp_path_factory):
  out = {}
  for name, eps in (("none", 0.0), ("noise", 1e-3)):
    workdir = tmp_path_factory.mktemp(name)
    config = tiny_config(**{"train.steps": 260, "train.lr_drop_at": (0.8,), "breaker.init_noise": eps})
    out[name] = (trainer.train_and_evaluate(config, str(workdir)), workdir)
  return out


def test_no_breaker_keeps_every_layer_at_one_distinct_channel(symmetric_and_noisy):
  summary, _ = symmetric_and_noisy["none"]
  assert summary["steps"] == 260
  assert set(summary["distinct_channels"].values()) == {1}, summary["distinct_channels"]


def test_init_noise_makes_channels_diverge_and_lowers_the_loss(symmetric_and_noisy):
  none, none_dir = symmetric_and_noisy["none"]
  noisy, noisy_dir = symmetric_and_noisy["noise"]
  channels = noisy["distinct_channels"]
  assert channels["stem"] == 16 and channels["stage3_block1/conv"] == 64 and channels["head"] == 64
  train_loss = lambda d: [r["loss"] for r in map(json.loads, open(d / "metrics.jsonl")) if r["split"] == "train"][-1]
  assert train_loss(noisy_dir) < 0.5 * train_loss(none_dir)
  assert noisy["final_test_loss"] < none["final_test_loss"]
  assert noisy["final_test_accuracy"] > none["final_test_accuracy"] + 0.2


def test_summary_records_what_makes_the_run_reproducible(symmetric_and_noisy):
  summary, workdir = symmetric_and_noisy["none"]
  for key in ("final_test_accuracy", "best_test_accuracy", "steps", "wall_seconds", "param_fingerprint",
              "distinct_channels", "determinism", "versions", "device"):
    assert key in summary
  assert len(summary["param_fingerprint"]) == 64
  assert summary["determinism"]["mode"] == "deterministic"
  assert "--xla_gpu_deterministic_ops=true" in summary["determinism"]["xla_flags"]
  assert summary["versions"]["jax"] and summary["device"]["platform"] == "cpu"
  assert summary["best_test_accuracy"] >= summary["final_test_accuracy"]
  assert json.load(open(workdir / "config.json"))["breaker"]["init_noise"] == 0.0
  assert os.path.isdir(workdir / "checkpoints" / "260")


def test_finished_run_relaunched_returns_the_same_summary(symmetric_and_noisy):
  summary, workdir = symmetric_and_noisy["none"]
  again = trainer.train_and_evaluate(tiny_config(**{"train.steps": 260, "train.lr_drop_at": (0.8,)}), str(workdir))
  assert again["param_fingerprint"] == summary["param_fingerprint"]
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]


def test_other_config_in_the_same_workdir_is_refused_and_nothing_is_overwritten(symmetric_and_noisy):
  _, workdir = symmetric_and_noisy["none"]
  before = {f: open(workdir / f, "rb").read() for f in ("config.json", "summary.json", "metrics.jsonl")}
  with pytest.raises(WorkdirError, match=r"config\.train\.lr: stored 0\.05, now 0\.1"):
    trainer.train_and_evaluate(tiny_config(**{"train.steps": 260, "train.lr_drop_at": (0.8,), "train.lr": 0.1}),
                               str(workdir))
  assert before == {f: open(workdir / f, "rb").read() for f in before}


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  config = tiny_config(**{"model.init": "he", "train.steps": 60, "train.lr": 0.05})
  config.train.lr_drop_at, config.train.lr_drop_factor = (0.5,), 1e12  # lr explodes at step 30
  config.train.checkpoint_every = config.train.log_every = 10
  with pytest.raises(Diverged, match="NaN/inf between steps (30|40) and (40|50).*step (30|40)"):
    trainer.train_and_evaluate(config, str(tmp_path))
  kept = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert kept and max(kept) <= 40 and not os.path.exists(tmp_path / "summary.json")


RUN = ["--config", "configs/constnet_cifar10.py:smoke", "--config.train.steps=120",
       "--config.train.batch_size=16", "--config.train.checkpoint_every=5", "--config.train.eval_every=120",
       "--config.train.eval_batch_size=100", "--config.train.progress=false"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, fake_cifar_dir):
  """The same config (augmentation on) run twice, each in its own process."""
  runs = []
  for i in range(2):
    workdir = tmp_path_factory.mktemp(f"proc{i}")
    result = launch(*RUN, f"--config.data.dir={fake_cifar_dir}", "--workdir", str(workdir))
    assert result.returncode == 0, result.stderr[-2000:]
    runs.append(json.load(open(workdir / "summary.json")))
  return runs


def test_same_config_in_two_processes_gives_the_same_fingerprint(two_processes):
  a, b = two_processes
  assert a["param_fingerprint"] == b["param_fingerprint"]
  assert a["resumed_from_step"] is None


def test_killed_and_resumed_run_ends_bitwise_like_an_uninterrupted_one(tmp_path, fake_cifar_dir, two_processes):
  args = [*RUN, f"--config.data.dir={fake_cifar_dir}", "--workdir", str(tmp_path)]
  process = launch(*args, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
  deadline = time.time() + 240
  while time.time() < deadline and process.poll() is None:  # kill once a checkpoint is complete
    if any(d.isdigit() for d in os.listdir(tmp_path / "checkpoints")) if os.path.isdir(tmp_path / "checkpoints") else False:
      break
    time.sleep(0.05)
  assert process.poll() is None, "the run ended before it could be killed"
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not os.path.exists(tmp_path / "summary.json")
  resumed = launch(*args)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "Resuming" in resumed.stdout
  summary = json.load(open(tmp_path / "summary.json"))
  assert 0 < summary["resumed_from_step"] < 120
  assert summary["param_fingerprint"] == two_processes[0]["param_fingerprint"]
  steps = [r["step"] for r in map(json.loads, open(tmp_path / "metrics.jsonl")) if r["split"] == "train"]
  assert steps == sorted(set(steps))  # no step logged twice after the resume
  np.testing.assert_equal(summary["final_test_accuracy"], two_processes[0]["final_test_accuracy"])
