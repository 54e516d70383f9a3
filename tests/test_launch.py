"""launch.py as a user runs it: typed overrides, one-line errors with a non-zero exit, sweeps."""

import json
import os

from conftest import launch

SMOKE = ["--config", "configs/constnet_cifar10.py:smoke", "--config.train.progress=false"]


def test_override_reaches_the_run(tmp_path, fake_cifar_dir):
  result = launch(*SMOKE, f"--config.data.dir={fake_cifar_dir}", "--config.model.depth=7", "--config.determinism=default",
                  "--config.train.steps=3", "--config.train.batch_size=8", "--config.train.eval_batch_size=50",
                  "--workdir", str(tmp_path))
  assert result.returncode == 0, result.stderr[-2000:]
  summary = json.load(open(tmp_path / "summary.json"))
  assert summary["model"]["depth"] == 7 and summary["steps"] == 3
  assert summary["determinism"]["mode"] == "default"
  assert "deterministic_ops" not in summary["determinism"]["xla_flags"]  # XLA left free
  assert summary["determinism"]["jax_default_prng_impl"] == "threefry2x32"  # pinned in both modes
  assert sorted(summary["distinct_channels"]) == ["head", "stage1_block0/conv", "stage2_block0/conv",
                                                  "stage2_block0/shortcut", "stage3_block0/conv",
                                                  "stage3_block0/shortcut", "stem"]
  assert "final test accuracy" in result.stdout


def _fails_in_one_line(result, *fragments):
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert len(lines) == 1, result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def test_misspelt_field_fails_clearly(tmp_path):
  _fails_in_one_line(launch(*SMOKE, "--config.model.dpeth=10", "--workdir", str(tmp_path / "w")),
                     "'dpeth'", "'depth'")
  _fails_in_one_line(launch(*SMOKE, "--config.model.depth=ten", "--workdir", str(tmp_path / "w")),
                     "--config.model.depth=ten")
  assert not os.path.exists(tmp_path / "w")


def test_bad_values_fail_clearly_before_touching_the_workdir(tmp_path):
  _fails_in_one_line(launch(*SMOKE, "--config.model.depth=11", "--workdir", str(tmp_path / "w")),
                     "config.model.depth=11")
  _fails_in_one_line(launch(*SMOKE, "--config.determinism=fast", "--workdir", str(tmp_path / "w")),
                     "config.determinism='fast'")
  _fails_in_one_line(launch("--config", "configs/nope.py", "--workdir", str(tmp_path / "w")), "configs/nope.py")
  assert not os.path.exists(tmp_path / "w")


def test_missing_data_dir_fails_clearly(tmp_path):
  missing = tmp_path / "no_cifar_here"
  _fails_in_one_line(launch(*SMOKE, f"--config.data.dir={missing}", "--workdir", str(tmp_path / "w")),
                     str(missing / "cifar-10-batches-bin"), "build.py")


def test_quickstart_style_sweep_runs_every_arm_and_prints_the_table(tmp_path):
  result = launch("--config", "configs/quickstart.py", "--config.train.steps=6", "--config.train.eval_every=6",
                  "--config.train.checkpoint_every=6", "--config.train.log_every=3", "--workers=2",
                  "--workdir", str(tmp_path))
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  for arm in ("constant", "constant_noise", "he"):
    assert json.load(open(tmp_path / arm / "summary.json"))["steps"] == 6
    assert f"| {arm} |" in result.stdout
  rerun = launch("--config", "configs/quickstart.py", "--config.train.steps=6", "--config.train.eval_every=6",
                 "--config.train.checkpoint_every=6", "--config.train.log_every=3", "--workdir", str(tmp_path))
  assert rerun.returncode == 0 and rerun.stdout.count("done before") == 3
