"""Diversity metrics on hand-built tensors whose values are known."""


import numpy as np
import pytest

from zerodiverse import symmetry


def identical(n=8, seed=0):
  filt = np.random.default_rng(seed).normal(size=(3, 3, 5, 1)).astype(np.float32)
  return np.repeat(filt, n, axis=-1)


def test_identical_channels_are_perfectly_symmetric():
  w = identical()
  assert float(symmetry.mean_correlation(w, -1)) == pytest.approx(1.0, abs=1e-6)
  assert float(symmetry.channel_spread(w, -1)) == 0.0  # exactly: means are taken after subtracting channel 0
  assert symmetry.distinct_slices(w, -1) == 1
  x = np.repeat(np.random.default_rng(1).normal(size=(4, 6, 6, 1)).astype(np.float32) * 1e3 + 0.1, 16, axis=-1)
  assert float(symmetry.activation_variance(x)) == 0.0


def test_known_correlations():
  rng = np.random.default_rng(2)
  z = np.linalg.qr(rng.normal(size=(50, 2)) - 0)[0]
  z = z - z.mean(0)  # centred, not exactly unit; Pearson ignores the norm
  a, b = z[:, 0], z[:, 1] - z[:, 1] @ z[:, 0] / (z[:, 0] @ z[:, 0]) * z[:, 0]
  a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
  theta = 0.7
  rows = np.stack([a, np.cos(theta) * a + np.sin(theta) * b, -a])  # correlations cos t, -1, -cos t
  w = rows.T.astype(np.float32)  # (50, 3): 3 output filters
  assert float(symmetry.mean_correlation(w, -1)) == pytest.approx(-1 / 3, abs=1e-5)
  two = np.stack([a, np.cos(theta) * a + np.sin(theta) * b]).T.astype(np.float32)
  assert float(symmetry.mean_correlation(two, -1)) == pytest.approx(np.cos(theta), abs=1e-5)


def test_constant_slices_count_as_correlation_one():
  rows = np.stack([np.full(20, 3.0), np.zeros(20), np.random.default_rng(3).normal(size=20)]).astype(np.float32)
  assert float(symmetry.mean_correlation(rows.T, -1)) == 1.0
  assert float(symmetry.mean_correlation(np.zeros((3, 3, 4, 4), np.float32), -2)) == 1.0
  assert float(symmetry.channel_spread(np.zeros((3, 3, 4, 4), np.float32), -1)) == 0.0


def test_known_spread_and_variance():
  w = np.array([[1.0, -1.0]], np.float32)  # two output channels, mean 0: spread 1
  assert float(symmetry.channel_spread(w, -1)) == pytest.approx(1.0)
  x = np.zeros((2, 3, 3, 2), np.float32)
  x[..., 1] = 2.0  # channels 0 and 2 everywhere: mean 1, variance 1
  assert float(symmetry.activation_variance(x)) == pytest.approx(1.0)


def test_random_channels_match_their_expected_statistics():
  n, m = 64, 4000
  w = np.random.default_rng(4).normal(size=(m, n)).astype(np.float32)
  # iid channels: correlation ~ 0 (sd of the mean of 2016 pairs ~ 1/sqrt(m * pairs)), spread^2 ~ 1 - 1/n.
  assert abs(float(symmetry.mean_correlation(w, -1))) < 5e-3
  assert float(symmetry.channel_spread(w, -1)) == pytest.approx(np.sqrt(1 - 1 / n), rel=1e-2)
  assert float(symmetry.activation_variance(w)) == pytest.approx(1 - 1 / n, rel=2e-2)
  assert symmetry.distinct_slices(w, -1) == n


def test_weight_metrics_use_the_heads_input_rows():
  rng = np.random.default_rng(5)
  params = {"conv": {"kernel": identical(4)},
            "head": {"kernel": np.repeat(rng.normal(size=(1, 10)).astype(np.float32), 6, axis=0)}}
  m = symmetry.weight_metrics(params)
  assert m["conv"]["distinct"] == 1 and m["conv"]["spread"] == 0.0
  assert m["head"]["distinct"] == 1 and m["head"]["spread"] == 0.0  # 6 identical input rows
  assert m["head"]["corr_in"] == pytest.approx(1.0, abs=1e-6)


def test_breaking_step_is_the_first_logged_step_above_the_threshold():
  records = [{"step": s, "layers": {"a": {"spread": v}, "b": {"spread": 0.0}}}
             for s, v in ((0, 0.0), (10, 1e-6), (20, 2 * symmetry.THRESHOLD), (30, 1e-5))]
  assert symmetry.breaking_steps(records) == {"a": 20, "b": None}
