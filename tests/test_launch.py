"""launch.py as a user runs it: typed overrides, one-line errors with a non-zero exit, sweeps."""

import errno
import json
import os
import subprocess
import sys

import jax
import numpy as np

from conftest import REPO, config_module, launch, tiny_config
from zerodiverse import determinism, run, sweep
from zerodiverse import workdir as workdirs
from zerodiverse.errors import UserError

SMOKE = ["--config", "configs/constnet_cifar10.py:smoke", "--config.train.progress=false"]


def test_override_reaches_the_run_and_steps_win_over_the_configs_epochs(tmp_path, fake_cifar_dir, monkeypatch):
  # configs/constnet_cifar10.py trains for epochs at depth 16: --config.train.steps alone makes it train for
  # steps. The model and batch sizes are test_training's RUN (constnet_cifar10:smoke), so the compiled programs
  # are shared. No XLA_FLAGS from this process: the run's own determinism settings must set them.
  assert config_module("constnet_cifar10").get_config().model.depth != 10
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  result = launch("--config", "configs/constnet_cifar10.py", "--config.train.progress=false",
                  f"--config.data.dir={fake_cifar_dir}", "--config.model.depth=10", "--config.model.width=1",
                  "--config.train.steps=3", "--config.train.batch_size=16", "--config.model.bn_group_size=0",
                  "--config.train.eval_batch_size=100", "--workdir", str(tmp_path))
  assert result.returncode == 0, result.stderr[-2000:]
  summary = json.load(open(tmp_path / "summary.json"))
  assert summary["model"]["depth"] == 10 and summary["steps"] == 3 and summary["length_from"] == "train.steps"
  assert json.load(open(tmp_path / "config.json"))["train"]["epochs"] == 0
  assert summary["determinism"]["mode"] == "deterministic"
  assert set(determinism.DETERMINISTIC_XLA_FLAGS + determinism.CPU_XLA_FLAGS) == set(
      summary["determinism"]["xla_flags"].split())
  assert summary["determinism"]["jax_default_prng_impl"] == "threefry2x32"
  assert sorted(summary["distinct_channels"]) == sorted(
      ["head", "stem", "stage2_block0/shortcut", "stage3_block0/shortcut"] +
      [f"stage{s}_block{b}/conv" for s in (1, 2, 3) for b in (0, 1)])
  assert "final test accuracy" in result.stdout


def test_nondeterministic_allowed_leaves_xla_free_under_a_deterministic_parent():
  """What a run's process does first (zerodiverse.process.start), in a child of this test process, whose
  XLA_FLAGS ask for deterministic kernels (conftest applied `deterministic`)."""
  assert "--xla_gpu_deterministic_ops=true" in os.environ["XLA_FLAGS"].split()
  code = ("import json; from zerodiverse import defaults, process; c = defaults.base(); "
          "c.determinism = 'nondeterministic_allowed'; print(json.dumps(process.start(c)))")
  child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO)
  assert child.returncode == 0, child.stderr[-2000:]
  in_force = json.loads(child.stdout.splitlines()[-1])
  flags = in_force["xla_flags"].split()
  assert in_force["mode"] == "nondeterministic_allowed" and in_force["jax_default_prng_impl"] == "threefry2x32"
  assert not any("deterministic_ops" in f or "exclude_nondeterministic" in f for f in flags), flags
  assert set(determinism.CPU_XLA_FLAGS) <= set(flags)  # speed flags stay in both modes


def test_fast_compile_keeps_the_options_this_xla_accepts_and_drops_the_rest(monkeypatch):
  candidates = {"xla_no_such_option_in_any_xla": True, "xla_cpu_enable_fast_math": False}  # unknown; known
  monkeypatch.setattr(determinism, "_FAST_COMPILE_IF_KNOWN", candidates)
  determinism.fast_compile.cache_clear()
  try:
    options = determinism.fast_compile()
  finally:
    determinism.fast_compile.cache_clear()
  assert options == {**determinism._FAST_COMPILE, "xla_cpu_enable_fast_math": False}  # pylint: disable=protected-access
  assert jax.jit(lambda x: x * 2).lower(np.float32(3)).compile(determinism.fast_compile())(np.float32(3)) == 6


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
  assert not os.path.exists(tmp_path / "w")  # so the rerun with the right folder is not "another config"


def test_quickstart_style_sweep_runs_every_arm_and_prints_the_table(tmp_path):
  result = launch("--config", "configs/quickstart.py", "--config.train.steps=6", "--config.train.eval_every=6",
                  "--config.train.checkpoint_every=6", "--config.train.log_every=3", "--workers=2",
                  "--workdir", str(tmp_path), timeout=600)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  for arm in ("constant", "constant_noise", "he"):
    assert json.load(open(tmp_path / arm / "summary.json"))["steps"] == 6
    assert f"| {arm} |" in result.stdout
  rerun = launch("--config", "configs/quickstart.py", "--config.train.steps=6", "--config.train.eval_every=6",
                 "--config.train.checkpoint_every=6", "--config.train.log_every=3", "--workdir", str(tmp_path))
  assert rerun.returncode == 0 and rerun.stdout.count("done before") == 3


def _one_line_exit_2(code, capsys, *fragments):
  assert code == 2
  lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
  assert len(lines) == 1, lines
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def test_unusable_workdirs_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
  (tmp_path / "file").write_text("x")
  _one_line_exit_2(run.main(tiny_config(), str(tmp_path / "file")), capsys, "is a file")
  for content in ("", "{garbled"):
    (tmp_path / "w").mkdir(exist_ok=True)
    (tmp_path / "w" / "config.json").write_text(content)
    _one_line_exit_2(run.main(tiny_config(), str(tmp_path / "w")), capsys, "config.json is not valid JSON")
  for code in (errno.EROFS, errno.ENOSPC):
    def refuse(path, code=code):
      raise OSError(code, os.strerror(code), path)
    monkeypatch.setattr(workdirs, "make", refuse)
    _one_line_exit_2(run.main(tiny_config(), str(tmp_path / "ro")), capsys, str(tmp_path / "ro"),
                     os.strerror(code), errno.errorcode[code])
  monkeypatch.undo()
  _one_line_exit_2(run.main(tiny_config(seed=2 ** 32), str(tmp_path / "s")), capsys, "config.seed=4294967296")


def test_bad_sweeps_are_one_line_and_exit_2(tmp_path, capsys):
  config = tiny_config()
  config.arms = {"a": {"train": {"steps": "ten"}}}
  _one_line_exit_2(launch_main_sweep(config, tmp_path / "s"), capsys, "config.arms.a.train.steps='ten'", "int")
  config.arms = {"a": {"model": {"init": "he"}}}
  _one_line_exit_2(launch_main_sweep(config, tmp_path / "s"), capsys, "config.model.scheme")
  (tmp_path / "f").write_text("x")
  config.arms = {"a": {}}
  _one_line_exit_2(launch_main_sweep(config, tmp_path / "f"), capsys, "is a file")


def launch_main_sweep(config, workdir):
  try:
    return sweep.run(config, str(workdir))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


def test_config_file_errors_name_the_file_line_and_variants(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config():\n  return 1 +\n")
  _fails_in_one_line(launch("--config", str(bad), "--workdir", str(tmp_path / "w")), "bad.py:2", "syntax")
  _fails_in_one_line(launch("--config", "configs/quickstart.py:nope", "--workdir", str(tmp_path / "w")),
                     "configs/quickstart.py has no variant 'nope'", "takes none")
  _fails_in_one_line(launch(*SMOKE, "--config.seed=-1", "--workdir", str(tmp_path / "w")), "config.seed=-1")
  assert not os.path.exists(tmp_path / "w")
