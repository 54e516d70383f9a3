"""The signal-propagation diagnostics: taps in call order, backward signal, randomized Jacobian spectrum, CLI."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from zerodiverse import models, rng
from zerodiverse.diagnostics import __main__ as cli
from zerodiverse.diagnostics import signal


def mlp(init="orthogonal", width=32):
  model = models.build(ml_collections.ConfigDict(dict(name="mlp", depth=1, width=width, hidden_init=init)), 10)
  x = rng.normal(jax.random.key(0), (4, 8, 8, 1))
  return model, model.init(jax.random.key(1), x), x


def test_layer_norms_are_in_call_order_and_backward_is_the_output_gradient():
  model, variables, x = mlp()
  labels = jnp.arange(4)
  out = signal.layer_norms(model, variables, x, labels)
  assert out["layers"] == ["hidden", "head"]
  logits = model.apply(variables, x)
  probs = jax.nn.softmax(logits)
  expected = (probs - jax.nn.one_hot(labels, 10)) / 4  # d mean CE / d logits
  np.testing.assert_allclose(out["backward_rms"][1], float(jnp.sqrt(jnp.mean(expected ** 2))), rtol=1e-5)
  np.testing.assert_allclose(out["forward_rms"][1], float(jnp.sqrt(jnp.mean(logits ** 2))), rtol=1e-5)


def test_randomized_jacobian_spectrum_matches_the_exact_one_when_k_covers_the_rank():
  model, variables, x = mlp()
  f = signal.features_fn(model, variables)
  exact = signal.jacobian_svals(f, x[0])
  estimate = signal.jacobian_svals(f, x[0], exact=False, k=40, key=jax.random.key(3))
  np.testing.assert_allclose(estimate[:10], exact[:10], rtol=1e-3)
  assert signal.spread(np.array([2.0, 1.0, 0.0]))["rank_deficit"] == 1


def test_command_writes_json_and_png(tmp_path):
  cli.main(["signal", "--arms", "mlp:he_normal", "--depths", "1", "--probe", "4", "--determinism", "deterministic",
            "--out", str(tmp_path)])
  out = json.loads((tmp_path / "signal.json").read_text())
  assert [r["mode"] for r in out["results"]] == ["train", "eval"]
  assert out["results"][0]["layers"] == ["hidden", "head"] and out["results"][0]["jacobian"]["exact"]
  cli.main(["qchain", "--widths", "3", "--depth", "2", "--samples", "2000", "--determinism", "deterministic",
            "--out", str(tmp_path)])
  q = json.loads((tmp_path / "qchain.json").read_text())
  assert max(q["results"][0]["ks_exact_vs_mc"]) < q["ks_threshold_alpha_0.001"]
  assert (tmp_path / "signal.png").stat().st_size > 1000 and (tmp_path / "qchain.png").stat().st_size > 1000


def test_train_mode_normalizes_with_batch_statistics():
  """At init BN's running averages are (0, 1), so eval mode passes a conv's output on as it is; train mode
  normalizes with the batch's statistics. Scaling the input by 30 scales the stem's output in both modes, but
  the first block conv (which reads relu(BN(stem))) only in eval mode."""
  model = models.build(ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="he")), 10)
  x = rng.normal(jax.random.key(0), (8, 8, 8, 3))
  variables = model.init(jax.random.key(1), x)
  labels = jnp.arange(8)
  norms = {(mode, scale): signal.layer_norms(model, variables, scale * x, labels, train=mode == "train")
           for mode in ("train", "eval") for scale in (1.0, 30.0)}
  assert norms["train", 1.0]["layers"][:2] == ["stem", "stage1_block0/conv"]
  growth = {mode: np.divide(norms[mode, 30.0]["forward_rms"][:2], norms[mode, 1.0]["forward_rms"][:2])
            for mode in ("train", "eval")}
  np.testing.assert_allclose(growth["eval"], [30, 30], rtol=1e-4)
  np.testing.assert_allclose(growth["train"], [30, 1], rtol=1e-4)
  stream = norms["train", 1.0]
  assert stream["streams"] == ["output", "stage1_block0/output", "stage2_block0/output", "stage3_block0/output"]
  np.testing.assert_allclose(stream["stream_rms"][0], stream["forward_rms"][0], rtol=1e-6)  # the stem's output
  f = signal.features_fn(model, variables, x)  # one image inside the batch, the others fixed
  np.testing.assert_allclose(f(x[0]), signal.tapped_apply(model, variables, x, train=True)[2][0].ravel(), rtol=1e-6)
  assert not np.allclose(f(x[0]), signal.features_fn(model, variables)(x[0]), rtol=1e-2)
