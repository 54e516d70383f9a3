"""Sweep grids: a 2x2 grid runs in parallel processes, a killed arm resumes, the report names every arm."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, config_module, launch
from zerodiverse import report, sweep
from zerodiverse import workdir as workdirs
from zerodiverse.errors import ConfigError
from zerodiverse.run import train_and_evaluate
from zerodiverse.train.checkpoint import Checkpointer


def test_grid_names_and_overrides():
  grid = {"init": sweep.axis("model.scheme", ["constant", "he"]),
          "b": {"none": {}, "rn": {"breaker": {"rounding_noise": True}}},
          "seed": sweep.axis("seed", [0, 1])}
  arms = sweep.expand(grid)
  assert len(arms) == 8 and arms["he-rn-seed1"] == {"model": {"scheme": "he"}, "breaker": {"rounding_noise": True},
                                                    "seed": 1}
  assert sweep.label("breaker.rounding_noise", False) == "no_rounding_noise"
  assert sweep.label("breaker.init_noise", 0.001) == "init_noise1e-03"
  for name in ("ablation_determinism", "leakynet_grid", "toy_diversity"):
    for variant in (None, "smoke"):
      assert len(sweep.arm_configs(config_module(name).get_config(variant))) >= 4
  bad = config_module("toy_diversity").get_config("smoke")
  bad.grid.noise = {"x": {"breaker": {"init_nois": 1.0}}}
  with pytest.raises(ConfigError, match="init_nois"):
    sweep.arm_configs(bad)


class Killed(Exception):
  pass


def test_grid_sweep_resumes_a_killed_arm_and_reports_every_arm(tmp_path, monkeypatch):
  config = config_module("toy_diversity").get_config("smoke")
  arms = sweep.arm_configs(config)
  assert sorted(arms) == ["eps0-k1", "eps0-k256", "eps1e-03-k1", "eps1e-03-k256"]
  # One arm "killed" right after its step-20 checkpoint (of 40): what a crash or kill leaves behind.
  save = Checkpointer.save

  def save_then_die(self, step, tree):
    save(self, step, tree)
    if step == 20:
      self.close()
      raise Killed

  monkeypatch.setattr(Checkpointer, "save", save_then_die)
  with pytest.raises(Killed):
    train_and_evaluate(arms["eps0-k1"], str(tmp_path / "eps0-k1"))
  monkeypatch.undo()
  assert not (tmp_path / "eps0-k1" / "summary.json").exists()

  cmd = [sys.executable, os.path.join(REPO, "launch.py"), "--config", os.path.join(REPO, "configs/toy_diversity.py:smoke"),
         "--workdir", str(tmp_path), "--workers", "2"]
  env = dict(os.environ, PYTHONPATH=REPO)
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stdout + out.stderr
  for name in arms:
    with open(tmp_path / name / "summary.json") as f:
      summary = json.load(f)
    assert summary["resumed_from_step"] == (20 if name == "eps0-k1" else None)
    assert set(summary["symmetry_breaking_step"]) == {"output"}  # the hidden layer's output
  assert "Resuming" in (tmp_path / "eps0-k1" / "log.txt").read_text()
  # At init, k=1 has one distinct hidden feature, and init noise makes all 256 distinct.
  first = lambda arm: next(json.loads(line) for line in open(tmp_path / arm / "metrics.jsonl")
                           if '"symmetry"' in line and json.loads(line)["step"] == 0)
  assert first("eps0-k1")["layers"]["hidden"]["distinct"] == 1
  assert first("eps1e-03-k1")["layers"]["hidden"]["distinct"] == 256

  assert report.main([str(tmp_path), "--data_note", "test data"]) == 0
  text = (tmp_path / "REPORT.md").read_text()
  for name in arms:
    assert f"| {name} | finished |" in text
  assert "test data" in text
  for png in ("accuracy.png", "symmetry_over_time.png", "toy_grid.png"):
    assert (tmp_path / png).stat().st_size > 1000


LONG_SWEEP = """from zerodiverse import defaults


def get_config():
  config = defaults.base()
  config.model.depth, config.model.width = 10, 1
  config.data.name, config.data.augment = "digits", False
  config.train.epochs, config.train.steps, config.train.batch_size = 0.0, 100000, 16
  config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 100000
  config.train.symmetry_every, config.train.progress = 100000, False
  config.arms = {"long": {}}
  return config
"""


def test_a_running_arm_is_not_started_twice_and_dies_with_its_sweep(tmp_path):
  (tmp_path / "long_sweep.py").write_text(LONG_SWEEP)
  args = ["--config", str(tmp_path / "long_sweep.py"), "--workdir", str(tmp_path / "w")]
  parent = launch(*args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  arm = str(tmp_path / "w" / "long")
  deadline = time.time() + 240
  while time.time() < deadline and not (os.path.isdir(arm) and workdirs.in_use(arm)):
    assert parent.poll() is None, parent.stdout.read().decode()[-2000:]
    time.sleep(0.2)
  holder = workdirs.in_use(arm)
  assert holder and f"pid {parent.pid}" not in holder  # the arm's own process holds its workdir
  rerun = launch(*args)
  assert rerun.returncode == 0, rerun.stdout + rerun.stderr
  assert f"long: running in {holder}, not started again" in rerun.stdout
  parent.kill()  # SIGKILL: the sweep gets no chance to stop its arm
  parent.wait()
  deadline = time.time() + 60
  while time.time() < deadline and workdirs.in_use(arm):
    time.sleep(0.2)
  assert workdirs.in_use(arm) is None, "the arm outlived its sweep"
  assert "the sweep that started this arm is gone" in (tmp_path / "w" / "long" / "log.txt").read_text()


def test_the_gap_to_he_is_per_seed_accuracy_minus_he_s_mean_for_unfinished_arms_too(tmp_path):
  from zerodiverse import defaults  # pylint: disable=g-import-not-at-top
  curves = {"he-seed0": (0.5, 0.7), "he-seed1": (0.6, 0.8), "dropout-seed0": (0.3, 0.7), "dropout-seed1": (0.4, 0.6)}
  for name, accuracies in curves.items():
    config = defaults.base()
    config.model.scheme = "he" if name.startswith("he") else "constant"
    config.breaker.dropout = 0.0 if name.startswith("he") else 0.01
    os.makedirs(tmp_path / name)
    (tmp_path / name / "config.json").write_text(config.to_json())
    with open(tmp_path / name / "metrics.jsonl", "w") as f:
      for step, accuracy in zip((100, 200), accuracies):
        f.write(json.dumps({"step": step, "split": "test", "accuracy": accuracy, "loss": 1.0}) + "\n")
  arms = report.load(str(tmp_path))
  view = report.Sweep(arms=arms, done=[], groups=report.groups(arms), data="test")
  assert report.reference(view) == "he"
  gaps = report.accuracy_gaps(view)
  assert list(gaps) == ["dropout"]
  assert gaps["dropout"] == {100: pytest.approx([-0.25, -0.15]), 200: pytest.approx([-0.05, -0.15])}
  assert report.gap_table(view)[-1] == "| dropout | -20.0 ± 7.1 | -10.0 ± 7.1 |"
  report.write(str(tmp_path))
  assert os.path.getsize(tmp_path / "gap_to_he.png") > 0
