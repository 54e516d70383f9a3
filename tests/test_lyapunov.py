"""The twin instrument: a network and its eps-perturbed twin trained on the same batches and keys."""

import json
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, config_module, tiny_config
from zerodiverse import lyapunov, symmetry
from zerodiverse.errors import ConfigError, Diverged
from zerodiverse.run import train_and_evaluate
from zerodiverse.train.metrics_log import MetricsLog

STEPS = {"train.steps": 20, "train.checkpoint_every": 10, "train.eval_every": 10, "train.log_every": 10}


def twins_config(**overrides):
  return lyapunov.twin_config(tiny_config(**{**STEPS, **overrides}), eps=1e-4, every=5)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("twins")
  return lyapunov.measure(twins_config(), str(workdir)), workdir


def test_growth_rate_is_the_least_squares_slope_of_log_distance():
  steps = np.arange(0, 101, 10)
  d = 1e-6 * np.exp(0.05 * steps)
  assert lyapunov.growth_rate(steps, d) == pytest.approx(0.05, rel=1e-9)
  # A zero (identical twins) or an overflow has no logarithm: it is left out, not read as a slope.
  d_holes = d.copy()
  d_holes[[2, 5]] = [0.0, np.inf]
  assert lyapunov.growth_rate(steps, d_holes) == pytest.approx(0.05, rel=1e-9)
  assert lyapunov.growth_rate(steps, np.zeros_like(d)) is None
  assert lyapunov.growth_rate([0, 0], [1.0, 2.0]) is None
  points = list(zip(steps, np.exp(0.1 * steps)))  # 1000-fold after ln(1000) / 0.1 = 69 steps
  assert lyapunov.early_points(points)[-1][0] == 70
  assert lyapunov.early_points(points[:5]) == points[:5]
  assert lyapunov.first_drop(np.array([0.1, 0.1, 0.02, 0.02], np.float32)) == 2
  assert lyapunov.first_drop(np.array([0.1, 0.1], np.float32)) == 2


def test_the_reference_is_the_ordinary_run_and_only_the_twin_breaks_symmetry(measured, tmp_path):
  summary, workdir = measured
  ordinary = train_and_evaluate(tiny_config(**STEPS), str(tmp_path / "ordinary"))
  assert summary["param_fingerprint"]["a"] == ordinary["param_fingerprint"]
  assert summary["param_fingerprint"]["b"] != ordinary["param_fingerprint"]
  records = MetricsLog(os.path.join(workdir, "divergence.jsonl")).records()
  assert [r["step"] for r in records] == [0, 5, 10, 15, 20]
  kernels = set(ordinary["distinct_channels"])
  assert set(records[0]["moved"]) == kernels and min(records[0]["moved"].values()) >= lyapunov.MIN_MOVED
  assert set(records[0]["weights"]) == kernels | {"all"}
  assert all(d > 0 for r in records for kind in lyapunov.KINDS for d in r[kind].values())
  # ConstNet with no breaker: the reference keeps one channel per layer, the perturbed twin does not.
  assert set(ordinary["distinct_channels"].values()) == {1}
  rates = summary["rates_per_step"]
  assert set(rates["outputs"]) == {n for n in records[0]["outputs"]} and all(
      symmetry.is_representation(n) for n in rates["outputs"])
  assert all(r[p] is not None for kind in rates.values() for r in kind.values()
             for p in ("early", "before_drop", "after_drop"))
  assert summary["first_drop_step"] == 10
  for name in ("lyapunov.md", "divergence.png", "config.json", "data.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["twin"] == {"eps": 1e-4, "every": 5, "arm": ""}


@pytest.mark.parametrize("stop", [7, 13])  # before the first checkpoint (step 10), and after it
def test_interrupted_twins_resume_bitwise(measured, tmp_path, monkeypatch, stop):
  summary, workdir = measured
  step = lyapunov.Twins.train_step

  def interrupted(self, i):
    if i == stop:
      raise KeyboardInterrupt
    return step(self, i)

  monkeypatch.setattr(lyapunov.Twins, "train_step", interrupted)
  with pytest.raises(KeyboardInterrupt):
    lyapunov.measure(twins_config(), str(tmp_path))
  monkeypatch.setattr(lyapunov.Twins, "train_step", step)
  resumed = lyapunov.measure(twins_config(), str(tmp_path))
  assert resumed["param_fingerprint"] == summary["param_fingerprint"]
  read = lambda d: MetricsLog(os.path.join(d, "divergence.jsonl")).records()
  assert read(tmp_path) == read(workdir)


def test_a_perturbation_float32_rounding_swallows_is_refused_before_anything_is_written(tmp_path):
  config = lyapunov.twin_config(tiny_config(**{"model.scheme": "he"}), eps=1e-30, every=10)
  with pytest.raises(ConfigError, match=r"--eps=1e-30: the perturbation moves only 0\.0% of the elements"):
    lyapunov.measure(config, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("setting, message", [
    ({"arm": ""}, "this config is a sweep; measure one of its arms, --arm=NAME with NAME one of constant, "),
    ({"arm": "nope"}, "--arm='nope': this config is a sweep"),
    ({"eps": 0.0}, "--eps=0.0: the twin's perturbation must be a finite number > 0"),
    ({"every": 0}, "--every=0: must be >= 1"),
    ({"backend": "torch"}, "config.backend='torch': the twins are trained by the JAX backend"),
])
def test_settings_the_twins_cannot_run_are_refused(setting, message):
  config = config_module("quickstart").get_config()
  if "backend" in setting:
    config.backend = setting["backend"]
  args = {"eps": 1e-6, "every": 10, "arm": "he", **{k: v for k, v in setting.items() if k != "backend"}}
  with pytest.raises(ConfigError, match=re.escape(message)):
    lyapunov.twin_config(config, **args)


def test_the_command_line_says_what_is_wrong_in_one_line(tmp_path):
  workdir = tmp_path / "w"
  result = subprocess.run([sys.executable, "-m", "zerodiverse.lyapunov", "--config", "configs/quickstart.py",
                           "--workdir", str(workdir)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "error: --arm='': this config is a sweep; measure one of its arms, --arm=NAME with NAME one of constant, "
      "constant_noise, he"]
  assert not os.path.exists(workdir)


def test_a_difference_shared_by_every_channel_has_exactly_no_across_channel_part():
  shared = np.full((3, 3, 4, 10), np.float32(0.1))
  naive = np.asarray(shared - jnp.mean(shared, axis=-1, keepdims=True))
  assert np.any(naive != 0)  # float32's mean of ten 0.1 is not 0.1: subtracting it alone leaves a residue
  assert np.all(np.asarray(symmetry.across_channels(shared, -1)) == 0)
  assert np.all(np.asarray(symmetry.across_channels(np.swapaxes(shared, -1, -2), -2)) == 0)
  one = shared.copy()
  one[..., 3] += np.float32(1e-3)  # one channel moved: its share is (1 - 1/10) of the move
  part = np.asarray(symmetry.across_channels(one, -1))
  np.testing.assert_allclose(part[..., 3], 0.9e-3, rtol=1e-3)
  np.testing.assert_allclose(part[..., 0], -0.1e-3, rtol=1e-2)


def test_twins_that_diverge_stop_naming_the_last_good_checkpoint(tmp_path):
  config = lyapunov.twin_config(tiny_config(**{"model.scheme": "he", "train.steps": 4, "train.lr": 1e30}),
                                eps=1e-4, every=1)
  with pytest.raises(Diverged, match=r"loss or gradients of the twins became NaN/inf between steps \d and \d; "
                                     r"no checkpoint yet in .*lower config.train.lr or --eps, in a new --workdir"):
    lyapunov.measure(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "lyapunov.json")
