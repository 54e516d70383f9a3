"""The nondeterminism instrument (ulp counts on gradients whose differences are known) and the probe's
plumbing on a CPU, where every mode is deterministic."""

import argparse
import json
import os

import numpy as np

from zerodiverse import gpu_probe, nondeterminism


def nudge(x: np.ndarray, ulps: int) -> np.ndarray:
  """x moved by `ulps` steps of its float32 bit pattern (the sign of ulps gives the direction)."""
  x = np.float32(x)
  for _ in range(abs(ulps)):
    x = np.nextafter(x, np.float32(np.inf if ulps > 0 else -np.inf), dtype=np.float32)
  return x


def test_ulp_distance_counts_steps_of_the_bit_pattern_across_zero():
  one = np.float32(1.0)
  assert nondeterminism.ulp_distance(one, nudge(one, 3)) == 3
  assert nondeterminism.ulp_distance(np.float32(-2.0), nudge(np.float32(-2.0), -5)) == 5
  tiny = np.float32(1e-45)  # the smallest subnormal: +tiny and -tiny are two steps apart, through 0
  assert nondeterminism.ulp_distance(tiny, -tiny) == 2
  assert nondeterminism.ulp_distance(np.float32(0.0), np.float32(-0.0)) == 0
  # 1 + 2^-24 rounds to 1 in float32: no ulp at all, the trap a multiplicative nudge falls into.
  assert nondeterminism.ulp_distance(one, np.float32(1.0) + np.float32(2.0 ** -24)) == 0


def test_layer_stats_count_known_differences():
  generator = np.random.default_rng(0)
  base = np.repeat(generator.normal(size=(1, 1, 3, 1)).astype(np.float32), 16, axis=-1)  # 16 equal channels
  run0 = base.copy()
  run0[0, 0, 1, 5] = nudge(run0[0, 0, 1, 5], 2)  # one channel 2 ulps off the others, in every run
  run1 = run0.copy()
  for channel in range(8):  # the first output tile of 8 moves together by +1 ulp at one element
    run1[0, 0, 0, channel] = nudge(run1[0, 0, 0, channel], 1)
  run1[0, 0, 2, 9] = nudge(run1[0, 0, 2, 9], -3)  # and one channel of the next tile alone, by 3
  stats = nondeterminism.layer_stats(np.stack([run0, run1, run0.copy()]), tiles=(8,))

  # Runs 0 and 2: channel 5 and the rest; run 1: {0-4, 6, 7}, {5}, {8, 10-15}, {9}.
  assert stats["distinct_channels"] == {"min": 2, "max": 4}
  assert stats["channel_spread_ulps"]["max"] == 3
  assert stats["distinct_runs"] == 2
  assert stats["run_to_run_max_ulps"] == 3
  changed = 8 + 1  # elements that differ from run 0 in run 1 (run 2 equals run 0)
  assert stats["fraction_unchanged"] == (48 - changed) / 48
  assert stats["channels_unchanged"] == 7 / 16
  histogram = stats["run_to_run_ulps"]
  assert histogram["0"] == (96 - changed) / 96 and histogram["1"] == 8 / 96 and histogram["3-4"] == 1 / 96
  assert histogram["2"] == 0 and histogram[">64"] == 0
  tile, = stats["tiles"]
  # Within tiles: 28 agreeing pairs in tile 0, 7 disagreeing pairs with channel 9 in tile 1; across: none.
  assert tile["within"] == 28 / 35 and tile["across"] == 0.0 and tile["runs_moved"] == 1


def test_distinct_rows_groups_bitwise_equal_channels():
  rows = np.zeros((16, 3), np.float32)
  rows[:8, 0], rows[5, 1], rows[9, 2] = 1.0, 1.0, 1.0
  assert nondeterminism.distinct_rows(rows).max() + 1 == 4
  rows[3] = -0.0  # +0 and -0 are different bit patterns
  assert nondeterminism.distinct_rows(rows).max() + 1 == 5


def test_probe_measures_the_symmetric_state_on_cpu(tmp_path, monkeypatch):
  """Prepare and one JAX mode through the command line, in child processes without tensorflow-datasets
  (the GPU image lacks it); then the torch path in this process. On a CPU nothing may vary."""
  blocker = tmp_path / "blocked" / "tensorflow_datasets"
  blocker.mkdir(parents=True)
  (blocker / "__init__.py").write_text("raise ImportError('tensorflow-datasets is not installed here')\n")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")]))
  out = tmp_path / "out"
  assert gpu_probe.main(["--tiny", "--steps", "1", "--repeats", "2", "--modes", "jax_deterministic",
                        "--out", str(out)]) == 0
  result, = json.loads((out / "gpu_probe.json").read_text())["results"]
  assert result["mode"] == "jax_deterministic" and result["platform"] == "cpu"
  assert "jax_deterministic" in (out / "gpu_probe.md").read_text()

  args = argparse.Namespace(tiny=True, repeats=2, data_dir="", steps=0,  # the init is symmetric too
                                                          channels_last=False, depth=16, width=4, batch=128)
  state = str(tmp_path / "state.npz")
  gpu_probe.prepare(args, state)
  import torch
  saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
           torch.backends.cudnn.deterministic, torch.get_float32_matmul_precision())
  try:
    torch_runs, kernels, info = gpu_probe.repeat_torch(args, gpu_probe.probe_config(args),
                                                       gpu_probe.load_state(state), "deterministic")
  finally:  # leave torch's global settings as the other tests found them
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1], saved[2]
    torch.set_float32_matmul_precision(saved[3])
  assert info["platform"] == "cpu" and any("convolution" in k for k in kernels)
  for layers in (result["layers"], {k: nondeterminism.layer_stats(np.stack([r[k] for r in torch_runs]))
                                    for k in torch_runs[0]}):
    assert set(layers) == {"stem", "stage1_block0/conv", "stage2_block0/conv", "stage2_block0/shortcut",
                           "stage3_block0/conv", "stage3_block0/shortcut"}
    for name, stats in layers.items():  # symmetric: one distinct channel; deterministic: runs identical
      assert stats["distinct_channels"] == {"min": 1, "max": 1}, name
      assert stats["distinct_runs"] == 1 and stats["fraction_unchanged"] == 1.0, name
