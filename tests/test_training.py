"""Training end to end: symmetry kept or broken, bitwise reproducibility across processes, resume, NaN."""

import gc
import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import config_module, launch, tiny_config, write_fake_cifar10
from zerodiverse import data, record, run
from zerodiverse import workdir as workdirs
from zerodiverse.errors import ConfigError, Diverged, UserError, WorkdirError
from zerodiverse.run import train_and_evaluate
from zerodiverse.train.metrics_log import MetricsLog
from zerodiverse.train.trainer import JaxBackend


@pytest.fixture(scope="module")
def symmetric_and_noisy(tmp_path_factory):
  out = {}
  for name, eps in (("none", 0.0), ("noise", 1e-3)):
    workdir = tmp_path_factory.mktemp(name)
    out[name] = (train_and_evaluate(long_config(**{"breaker.init_noise": eps}), str(workdir)), workdir)
  return out


def long_config(**overrides):
  """The fixture's runs: 260 steps, two evals and checkpoints."""
  return tiny_config(**{"train.steps": 260, "train.lr_drop_at": (0.8,), "train.eval_every": 130,
                        "train.checkpoint_every": 130, **overrides})


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


def test_finished_run_relaunched_says_so_and_leaves_its_summary_as_it_was(symmetric_and_noisy, capsys):
  summary, workdir = symmetric_and_noisy["none"]
  before = open(workdir / "summary.json", "rb").read()
  again = train_and_evaluate(long_config(), str(workdir))
  assert "holds a finished run (260 steps)" in capsys.readouterr().out
  assert open(workdir / "summary.json", "rb").read() == before
  assert again["param_fingerprint"] == summary["param_fingerprint"]
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  assert summary["length_from"] == "train.steps"


def test_other_config_in_the_same_workdir_is_refused_and_nothing_is_overwritten(symmetric_and_noisy):
  _, workdir = symmetric_and_noisy["none"]
  before = {f: open(workdir / f, "rb").read() for f in ("config.json", "summary.json", "metrics.jsonl")}
  with pytest.raises(WorkdirError, match=r"config\.train\.lr: stored 0\.05, now 0\.1"):
    train_and_evaluate(long_config(**{"train.lr": 0.1}), str(workdir))
  assert before == {f: open(workdir / f, "rb").read() for f in before}


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  config = tiny_config(**{"model.scheme": "he", "train.steps": 60, "train.lr": 0.05})
  config.train.lr_drop_at, config.train.lr_drop_factor = (0.5,), 1e12  # lr explodes at step 30
  config.train.checkpoint_every = config.train.log_every = 10
  with pytest.raises(Diverged, match="NaN/inf between steps (30|40) and (40|50).*step (30|40)"):
    train_and_evaluate(config, str(tmp_path))
  kept = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert kept and max(kept) <= 40 and not os.path.exists(tmp_path / "summary.json")


def test_nan_before_the_first_checkpoint_says_no_checkpoint_yet(tmp_path):
  config = tiny_config(**{"model.scheme": "he", "train.steps": 4, "train.lr": 1e30, "train.log_every": 1})
  with pytest.raises(Diverged, match=r"between steps \d and \d; no checkpoint yet in"):
    train_and_evaluate(config, str(tmp_path))


def test_summary_is_strict_json(tmp_path):
  record.write_json(str(tmp_path / "s.json"), {"loss": float("nan"), "x": [float("inf"), 1.5], "n": {"y": -float("inf")}})
  text = open(tmp_path / "s.json").read()
  refuse = lambda name: (_ for _ in ()).throw(ValueError(name))
  assert json.loads(text, parse_constant=refuse) == {"loss": None, "x": [None, 1.5], "n": {"y": None}}


def test_data_replaced_between_kill_and_resume_is_refused(tmp_path):
  write_fake_cifar10(str(tmp_path / "data"))
  config = config_module("constnet_cifar10").get_config("smoke")  # RUN's model and batches: one compile for both
  config.data.dir = str(tmp_path / "data")
  config.train.update(steps=2, batch_size=16, eval_batch_size=100, checkpoint_every=1, log_every=1, eval_every=2,
                      progress=False)
  train_and_evaluate(config, str(tmp_path / "w"))
  shutil.rmtree(tmp_path / "w" / "checkpoints" / "2")  # as if killed after step 1
  os.remove(tmp_path / "w" / "summary.json")
  write_fake_cifar10(str(tmp_path / "data"), seed=1)  # other files under the same data.dir
  with pytest.raises(WorkdirError, match="the data changed since this run started"):
    train_and_evaluate(config, str(tmp_path / "w"))


RUN = ["--config", "configs/constnet_cifar10.py:smoke", "--config.train.steps=48",
       "--config.train.batch_size=16", "--config.train.checkpoint_every=16", "--config.train.eval_every=48",
       "--config.train.eval_batch_size=100", "--config.train.progress=false"]


def _kill_after_first_checkpoint(process, workdir):
  folder = workdir / "checkpoints"
  has_checkpoint = lambda: os.path.isdir(folder) and any(d.isdigit() for d in os.listdir(folder))
  deadline = time.time() + 240
  while time.time() < deadline and process.poll() is None and not has_checkpoint():
    time.sleep(0.05)
  assert process.poll() is None, "the run ended before it could be killed"
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert has_checkpoint(), f"no checkpoint in {workdir} after 240 s: the run is stuck or far slower than expected"


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, fake_cifar_dir):
  """The same config (augmentation on) run twice, each in its own process, and a third run of it killed after
  its first checkpoint; all three at once (their start-up and compilation overlap)."""
  dirs = [tmp_path_factory.mktemp(name) for name in ("proc0", "proc1", "killed")]
  quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  processes = [launch(*RUN, f"--config.data.dir={fake_cifar_dir}", "--workdir", str(d), **quiet) for d in dirs]
  _kill_after_first_checkpoint(processes[2], dirs[2])
  runs = []
  for process, workdir in zip(processes[:2], dirs[:2]):
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    runs.append(json.load(open(workdir / "summary.json")))
  return runs, dirs[2]


def test_same_config_in_two_processes_gives_the_same_fingerprint(two_processes):
  (a, b), _ = two_processes
  assert a["param_fingerprint"] == b["param_fingerprint"]
  assert a["resumed_from_step"] is None


def test_killed_and_resumed_run_ends_bitwise_like_an_uninterrupted_one(fake_cifar_dir, two_processes):
  (uninterrupted, _), workdir = two_processes
  assert not os.path.exists(workdir / "summary.json")
  resumed = launch(*RUN, f"--config.data.dir={fake_cifar_dir}", "--workdir", str(workdir))
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "Resuming" in resumed.stdout
  summary = json.load(open(workdir / "summary.json"))
  assert 0 < summary["resumed_from_step"] < 48
  assert summary["param_fingerprint"] == uninterrupted["param_fingerprint"]
  steps = [r["step"] for r in map(json.loads, open(workdir / "metrics.jsonl")) if r["split"] == "train"]
  assert steps == sorted(set(steps))  # no step logged twice after the resume
  np.testing.assert_equal(summary["final_test_accuracy"], uninterrupted["final_test_accuracy"])


def test_a_run_interrupted_before_its_first_checkpoint_logs_step_0_once_on_the_rerun(tmp_path, monkeypatch):
  step = JaxBackend.train_step

  def interrupted(self, i):
    if i == 5:
      raise KeyboardInterrupt
    return step(self, i)

  monkeypatch.setattr(JaxBackend, "train_step", interrupted)
  with pytest.raises(KeyboardInterrupt):
    train_and_evaluate(tiny_config(), str(tmp_path))
  assert [r["step"] for r in MetricsLog(str(tmp_path / "metrics.jsonl")).records()] == [0]
  monkeypatch.setattr(JaxBackend, "train_step", step)
  train_and_evaluate(tiny_config(), str(tmp_path))
  records = MetricsLog(str(tmp_path / "metrics.jsonl")).records()
  assert [r["step"] for r in records if r["split"] == "symmetry"] == [0, 20, 40]


# What users do to a run: the workdir, the metrics log, damaged checkpoints, bad values.

def test_second_process_in_a_held_workdir_is_refused_at_once_naming_the_holder(tmp_path, fake_cifar_dir):
  with workdirs.Lock(str(tmp_path)):  # this test process holds the workdir, as a running run would
    t0 = time.time()
    result = launch(*RUN, f"--config.data.dir={fake_cifar_dir}", "--workdir", str(tmp_path))
    seconds = time.time() - t0
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and f"pid {os.getpid()}" in lines[0] and "in use" in lines[0], result.stderr
  assert seconds < 60 and sorted(os.listdir(tmp_path)) == ["lock"]  # nothing else written


def test_metrics_log_tolerates_a_torn_last_line_and_rewrites_by_rename(tmp_path, monkeypatch):
  log = MetricsLog(str(tmp_path / "metrics.jsonl"))
  for step in (10, 20, 30):
    log.write({"step": step, "split": "train"})
  with open(log.path, "a") as f:
    f.write('{"step": 40, "spl')  # a kill mid-write
  assert [r["step"] for r in log.records()] == [10, 20, 30]
  before = open(log.path).read()
  monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
  with pytest.raises(OSError):
    log.truncate_after(20)  # killed (here: failed) during the rewrite: the log is as it was
  assert open(log.path).read() == before
  monkeypatch.undo()
  log.truncate_after(20)
  assert [r["step"] for r in log.records()] == [10, 20] and open(log.path).read().endswith("\n")
  with open(log.path, "a") as f:
    f.write('{"step": 30}\n{"step": 35, "torn\n{"step": 40}\n')
  with pytest.raises(ValueError):  # a bad line with complete records after it is not a torn write
    log.records()


@pytest.fixture(scope="module")
def saved_steps(tmp_path_factory):
  """Checkpoints of steps 10 and 20 of a tiny run, and the state each holds (no training: saved as built)."""
  root = tmp_path_factory.mktemp("ckpts")
  config = tiny_config()
  dataset = data.load(config.data)
  stream = dataset.train_stream(config.seed, config.train.batch_size, config.data)
  backend = JaxBackend(config, dataset, stream, 40)
  ckpts = backend.open_checkpoints(str(root / "checkpoints"))
  backend.save(ckpts, 10, 1.0)
  backend.train_step(0)
  backend.save(ckpts, 20, 2.0)
  ckpts.close()
  return root, config, dataset, stream, backend.host_variables()[0]


def _damage(folder, how):
  if how == "truncated array files":  # a kill or a full disk mid-write
    for array_file in glob.glob(f"{folder}/default/d/*") + glob.glob(f"{folder}/default/ocdbt.process_*/d/*"):
      os.truncate(array_file, os.path.getsize(array_file) // 2)
  elif how == "deleted _METADATA":
    os.remove(f"{folder}/default/_METADATA")
  elif how == "garbled _METADATA":
    with open(f"{folder}/default/_METADATA", "w") as f:
      f.write("{garbled")
  else:  # an empty step folder
    shutil.rmtree(folder)
    os.mkdir(folder)


@pytest.mark.parametrize("how", ["truncated array files", "deleted _METADATA", "garbled _METADATA", "empty folder"])
def test_damaged_latest_checkpoint_restores_the_newest_intact_step(saved_steps, tmp_path, capsys, caplog,
                                                                   monkeypatch, how):
  late = []  # unraisable exceptions: the reads that fail beside the first call back into a closed event loop
  monkeypatch.setattr(sys, "unraisablehook", late.append)
  root, config, dataset, stream, _ = saved_steps
  shutil.copytree(root / "checkpoints", tmp_path / "checkpoints")
  _damage(str(tmp_path / "checkpoints" / "20"), how)
  backend = JaxBackend(config, dataset, stream, 40)
  ckpts, step, wall = run.restore_latest(backend, backend.open_checkpoints(str(tmp_path / "checkpoints")),
                                         str(tmp_path))
  ckpts.close()
  assert (step, wall) == (10, 1.0) and ckpts.steps() == [10]
  assert os.path.isdir(tmp_path / "damaged_checkpoints" / "20")  # set aside, so step 20 can be saved again
  lines = [l for l in capsys.readouterr().err.splitlines() if "checkpoints" in l]
  assert len(lines) == 1 and "step 20 damaged" in lines[0] and "resuming from step 10" in lines[0]
  # Both damaged: one line naming the folder and the way out, and nothing moved.
  _damage(str(tmp_path / "checkpoints" / "10"), how)
  with pytest.raises(WorkdirError, match=r"checkpoints: no intact checkpoint .*move .*checkpoints aside") as e:
    run.restore_latest(backend, backend.open_checkpoints(str(tmp_path / "checkpoints")), str(tmp_path))
  assert "\n" not in str(e.value) and os.path.isdir(tmp_path / "checkpoints" / "10")
  # Nothing else, then or later: no logs of orbax or asyncio, no tracebacks from reads that finish afterwards.
  time.sleep(0.5)
  gc.collect()
  assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[:2000]
  assert not late, [str(u.exc_value) for u in late]
  sys.unraisablehook(SimpleNamespace(exc_value=RuntimeError("another failure")))  # still reaches the hook before
  assert [str(u.exc_value) for u in late] == ["another failure"]


def test_every_checkable_value_is_refused_before_anything_is_written(tmp_path):
  cases = {"train.lr": [0.0, -0.1, float("nan"), float("inf")], "breaker.init_noise": [-1.0, float("nan")],
           "breaker.grad_noise": [float("inf")], "breaker.dropout": [-0.5, 1.0], "seed": [-1, 2 ** 32],
           "train.batch_size": [100000], "data.dir": [str(tmp_path / "nope")]}
  for field, values in cases.items():
    for value in values:
      overrides = {field: value, **({"data.name": "cifar10"} if field == "data.dir" else {})}
      with pytest.raises(UserError, match=f"config.{field}" if field != "data.dir" else "nope") as e:
        run.train_and_evaluate(tiny_config(**overrides), str(tmp_path / "w"))
      assert "\n" not in str(e.value)
      assert not os.path.exists(tmp_path / "w"), (field, value)
  with pytest.raises(ConfigError, match="config.model.init is split by meaning.*config.model.scheme"):
    config = tiny_config()
    config.model.init = "he"
    run.check_config(config)
  with pytest.raises(ConfigError, match="'default' is now called 'nondeterministic_allowed'"):
    run.check_config(tiny_config(determinism="default"))
