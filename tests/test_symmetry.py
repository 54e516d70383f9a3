"""Diversity metrics on hand-built tensors whose values are known, and on tiny ConstNets where the weight
spread and the functional measure disagree."""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from zerodiverse import defaults, models, rng, symmetry
from zerodiverse.inits.perturb import perturb


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
  generator = np.random.default_rng(2)
  z = np.linalg.qr(generator.normal(size=(50, 2)) - 0)[0]
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
  generator = np.random.default_rng(5)
  params = {"conv": {"kernel": identical(4)},
            "head": {"kernel": np.repeat(generator.normal(size=(1, 10)).astype(np.float32), 6, axis=0)}}
  m = symmetry.weight_metrics(params)
  assert set(m["conv"]) == set(symmetry.WEIGHT_METRICS) | {"distinct"}
  assert m["conv"]["distinct"] == 1 and m["conv"]["spread"] == 0.0
  assert m["head"]["distinct"] == 1 and m["head"]["spread"] == 0.0  # 6 identical input rows
  assert m["head"]["neglog_corr_backward"] == pytest.approx(0.0, abs=1e-6)


def authors_pair_correlation(torch_weight, rows: str) -> float:
  """The authors' correlation.py pair_correllation, restated: rows are 'forward' (output filters),
  'backward' (input-channel slices) or 'kernel' (one row per (out, in) kernel); NaN (a constant row) -> 1;
  the mean of the strict lower triangle of np.corrcoef."""
  a = np.asarray(torch_weight, np.float64)
  if rows == "backward":
    a = np.swapaxes(a, 0, 1)
  n = a.shape[0] * a.shape[1] if rows == "kernel" else a.shape[0]
  a = a.reshape(n, -1)
  with warnings.catch_warnings():  # constant rows (and 1-element rows) give NaN, which they map to 1
    warnings.simplefilter("ignore", RuntimeWarning)
    b = np.corrcoef(a)
  b[np.isnan(b)] = 1.0
  return float(np.sum(np.tril(b, -1)) / (n * (n - 1) / 2))


def test_authors_correlations_and_diversity_match_their_definitions():
  generator = np.random.default_rng(6)
  shared = generator.normal(size=(1, 1, 3, 3))
  torch_conv = (0.8 * shared + 0.6 * generator.normal(size=(6, 5, 3, 3))).astype(np.float32)  # (out, in, kh, kw)
  torch_conv[2] = 0.0  # a dead filter: constant rows count as correlation 1
  torch_dense = generator.normal(size=(10, 7)).astype(np.float32)  # (out, in)
  params = {"conv": {"kernel": np.transpose(torch_conv, (2, 3, 1, 0))}, "head": {"kernel": torch_dense.T}}
  m = symmetry.weight_metrics(params)
  for layer, w in (("conv", torch_conv), ("head", torch_dense)):
    for rows in ("forward", "backward", "kernel"):
      expected = -np.log(abs(authors_pair_correlation(w, rows)))
      assert m[layer][f"neglog_corr_{rows}"] == pytest.approx(expected, rel=1e-4, abs=1e-6), (layer, rows)
  assert m["head"]["neglog_corr_kernel"] == 0.0  # a dense layer's "kernels" are single numbers, as in theirs
  backward = [authors_pair_correlation(w, "backward") for w in (torch_conv, torch_dense)]
  assert symmetry.diversity(m) == pytest.approx(sum(np.log(np.sqrt(1 - b ** 2)) for b in backward), rel=1e-4)


def test_correlation_zero_and_one_stay_finite_and_signed_right():
  assert float(symmetry.neglog(jnp.float32(1.0))) == 0.0 and np.signbit(symmetry.neglog(jnp.float32(1.0))) == 0
  assert float(symmetry.neglog(jnp.float32(0.0))) == pytest.approx(-np.log(symmetry.EPS))  # 15.9, not inf
  symmetric = {"a": {"neglog_corr_backward": 0.0}, "b": {"neglog_corr_backward": 0.0}}
  assert symmetry.diversity(symmetric) == pytest.approx(2 * 0.5 * np.log(symmetry.EPS))  # not -inf
  # exactly orthogonal filters: mean correlation 0 -> the finite cap
  w = np.array([[1, -1, 0, 0], [0, 0, 1, -1]], np.float32).T
  assert float(symmetry.mean_correlation(w, -1)) == 0.0


def test_breaking_step_is_the_first_logged_step_at_the_functional_threshold():
  t = symmetry.THRESHOLD
  records = [{"step": s, "activations": {"a/output": {"func_spread": v}, "b/output": {"func_spread": 0.0},
                                         "a/residual": {"act_var": 1.0}}}
             for s, v in ((0, 0.0), (10, 1e-6), (20, t), (30, 1e-5))]
  steps = symmetry.breaking_steps(records)
  assert steps == {"a/output": 20, "b/output": None}  # the residual branch alone is not a layer's function
  assert symmetry.breaking_summary(steps) == {"median": 20, "max": 20, "never": 1, "layers": 2}
  assert symmetry.breaking_steps(records, threshold=1e-6) == {"a/output": 10, "b/output": None}


def test_authors_break_epoch_counts_epochs_above_without_reset():
  acc = [0.4, 0.6, 0.3, 0.6, 0.7, 0.8, 0.9]  # above 50 % at epochs 2, 4, 5, 6, ...: the 4th is epoch 6
  records = [{"step": 10 * (e + 1), "accuracy": a} for e, a in enumerate(acc)]
  records.append({"step": 35, "accuracy": 0.99})  # not at an epoch end: ignored
  assert symmetry.break_epoch(records, steps_per_epoch=10) == 6
  assert symmetry.break_epoch(records, steps_per_epoch=10, epochs_above=1) == 4
  assert symmetry.break_epoch(records, steps_per_epoch=10, accuracy=0.95) is None


def test_functional_distinct_ignores_scale_offset_and_signed_zeros():
  base = np.random.default_rng(7).normal(size=(4, 5, 5)).astype(np.float32)
  x = np.stack([base, 3.0 * base + 1.0, 0.5 * base, np.zeros_like(base), -np.zeros_like(base),
                base + 1e-2 * np.random.default_rng(8).normal(size=base.shape).astype(np.float32)], -1)
  assert symmetry.distinct_slices(x, -1) == 6  # bitwise: every channel differs (+0 and -0 too)
  assert int(symmetry.functional_distinct(x)) == 3  # base (x3), the zeros (x2), the perturbed one
  assert float(symmetry.functional_spread(x[..., :3])) == pytest.approx(0.0, abs=1e-6)
  assert float(symmetry.functional_spread(x[..., 3:5])) == 0.0


class ScaledConv(nn.Module):
  """Conv -> BN -> head, the conv's output sown: a probe target whose kernel we set by hand."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(8, (3, 3), use_bias=False, name="conv")(x)
    self.sow("intermediates", "output", x)
    x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
    return nn.Dense(3, name="head")(jnp.mean(x, axis=(1, 2)))


def test_a_kernel_scaled_per_output_channel_is_one_functional_channel():
  model = ScaledConv()
  images = rng.normal(jax.random.key(0), (4, 6, 6, 2))
  variables = model.init(jax.random.key(1), images)
  params = jax.tree.map(np.asarray, variables["params"])
  first = params["conv"]["kernel"][..., :1]
  params["conv"]["kernel"] = first * np.geomspace(0.1, 10, 8, dtype=np.float32)  # filters differ only in scale
  rec = symmetry.record(params, variables["batch_stats"], symmetry.make_probe(model), images)
  assert rec["layers"]["conv"]["distinct"] == 8
  assert rec["activations"]["output"]["func_distinct"] == 1
  assert rec["activations"]["output"]["func_spread"] < 1e-6
  params["conv"]["kernel"] = np.where(np.arange(8) % 2, -0.0, 0.0) * first  # +0 and -0 filters
  rec = symmetry.record(params, variables["batch_stats"], symmetry.make_probe(model), images)
  assert rec["layers"]["conv"]["distinct"] == 2 and rec["activations"]["output"]["func_distinct"] == 1


def constnet_record(init: str, eps: float) -> dict:
  """The step-0 record of a ConstNet-7-1 (the model and probe batch of test_breakers' runs: shared programs)."""
  config = defaults.base()
  config.model.update(depth=7, width=1, scheme=init)
  model = models.build(config.model, 10)
  images = rng.normal(jax.random.key(0), (config.train.probe_batch_size, 8, 8, 1))
  variables = model.init(jax.random.key(1), images)
  params = perturb(jax.random.key(2), variables["params"], eps)
  return symmetry.record(params, variables["batch_stats"], symmetry.make_probe(model), images)


def old_weight_spread_breaks(rec: dict) -> int:
  """How many layers the former criterion (a kernel's channel spread above 1e-3 of its norm) called broken."""
  return sum(m["spread"] > 1e-3 for m in rec["layers"].values())


@pytest.mark.parametrize("init,eps,broken", [("constant", 1e-12, False), ("constant", 1e-1, True), ("he", 0.0, True)])
def test_functional_breaking_at_init_reads_what_the_layers_compute(init, eps, broken):
  rec = constnet_record(init, eps)
  steps = symmetry.breaking_steps([{"step": 0, **rec}])
  assert len(steps) == 4  # the stem and three blocks
  spreads = [m["func_spread"] for m in rec["activations"].values() if "func_spread" in m]
  if broken:  # every block's output already has distinct channels; the stem of a noisy ConstNet too
    assert all(s == 0 for s in steps.values()), (steps, spreads)
  else:  # 1e-12 noise: the former criterion called most layers broken; the channels agree to float32
    assert old_weight_spread_breaks(rec) >= 3, rec["layers"]
    assert all(s is None for s in steps.values()) and max(spreads) < 1e-6, spreads
    assert set(symmetry.functional_channels([{"step": 0, **rec}]).values()) == {1}
