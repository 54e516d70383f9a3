"""ConstNet at init: the paper's structure, zero logits, identical features, zero residual branches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import ml_collections

from zerodiverse import models
from zerodiverse.errors import ConfigError
from zerodiverse.symmetry import distinct_channels, distinct_slices

X = jax.random.normal(jax.random.key(1), (8, 32, 32, 3))


def build(depth=10, width=2, init="constant", dropout=0.0):
  cfg = ml_collections.ConfigDict(dict(name="constnet", depth=depth, width=width, scheme=init))
  return models.build(cfg, 10, dropout)


def init_and_run(model, x=X):
  variables = model.init(jax.random.key(0), x, train=False)
  logits, inter = model.apply(variables, x, train=False, mutable=["intermediates"])
  return variables, logits, inter["intermediates"]


def test_constant_init_logits_are_exactly_zero():
  _, logits, _ = init_and_run(build())
  assert not np.asarray(logits).any()


def test_constant_init_every_layer_has_identical_channels():
  variables, _, inter = init_and_run(build())
  assert set(distinct_channels(variables["params"]).values()) == {1}
  outputs = {path: v for path, v in _flat(inter).items() if path.endswith("output")}
  assert len(outputs) == 1 + 3 * 2  # stem + 6 blocks
  for path, activation in outputs.items():
    assert distinct_slices(activation, -1) == 1, path


def test_constant_init_residual_branches_output_zero_and_stem_is_the_rgb_mean():
  variables, _, inter = init_and_run(build())
  residuals = {p: v for p, v in _flat(inter).items() if p.endswith("residual")}
  assert len(residuals) == 6
  for path, r in residuals.items():
    assert not np.asarray(r).any(), path
  stem = np.asarray(inter["stem"]["output"][0]) if "stem" in inter else np.asarray(inter["output"][0])
  padded = np.pad(np.asarray(X), ((0, 0), (1, 1), (1, 1), (0, 0)))
  np.testing.assert_allclose(stem[..., 0], padded[:, 1:-1, 1:-1].mean(-1), rtol=1e-6, atol=1e-6)


def test_he_init_has_distinct_channels_and_zero_head():
  variables, logits, _ = init_and_run(build(init="he"))
  counts = distinct_channels(variables["params"])
  assert counts["head"] == 1  # the head starts at 0 in both arms
  assert all(n == variables["params"][layer.split("/")[0]][layer.split("/")[1]]["kernel"].shape[-1]
             for layer, n in counts.items() if "/" in layer)
  assert not np.asarray(logits).any()
  params = variables["params"]
  w = np.asarray(params["stage3_block1"]["conv"]["kernel"])  # 3x3, 128 -> 128
  assert abs(w.var() / (2 / (9 * 128)) - 1) < 0.05  # He fan-out, untruncated
  s = np.asarray(params["stage2_block0"]["shortcut"]["kernel"])
  assert abs(s.var() / (1 / 64) - 1) < 0.1


def test_wrn_16_10_layout_and_parameter_count():
  model = build(depth=16, width=10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  params = shapes["params"]
  assert sorted(k for k in params if k.startswith("stage")) == [f"stage{s}_block{b}" for s in (1, 2, 3) for b in range(4)]
  assert params["stem"]["kernel"].shape == (3, 3, 3, 16)
  assert params["stage1_block0"]["shortcut"]["kernel"].shape == (1, 1, 16, 160)
  assert params["stage2_block0"]["conv"]["kernel"].shape == (3, 3, 160, 320)
  assert "shortcut" not in params["stage1_block1"] and "shortcut" not in params["stage3_block3"]
  assert params["head"]["kernel"].shape == (640, 10)
  n = sum(np.prod(x.shape) for x in jax.tree.leaves(params))
  assert 17.0e6 < n < 17.2e6  # the paper's "about 17.1M"


def test_stride_two_stages_halve_the_resolution():
  _, _, inter = init_and_run(build())
  assert inter["stage1_block1"]["output"][0].shape == (8, 32, 32, 32)
  assert inter["stage2_block0"]["output"][0].shape == (8, 16, 16, 64)
  assert inter["stage3_block1"]["output"][0].shape == (8, 8, 8, 128)


def test_dropout_takes_its_randomness_from_the_given_key():
  # ConstNet's residual branches are 0 at init, so look at the masks through the He twin's branches.
  model = build(init="he", dropout=0.5)
  variables = model.init(jax.random.key(0), X, train=False)

  def residual(key):
    _, state = model.apply(variables, X, train=True, mutable=["batch_stats", "intermediates"],
                           rngs={"dropout": jax.random.key(key)})
    return np.asarray(state["intermediates"]["stage1_block0"]["residual"][0])

  a, b, c = residual(7), residual(7), residual(8)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert 0.45 < np.mean(a == 0) < 0.55  # rate 0.5


@pytest.mark.parametrize("kwargs,match", [(dict(depth=11), "depth"), (dict(init="xavier"), "model.scheme"),
                                          (dict(width=0), "width"), (dict(dropout=1.0), "dropout")])
def test_bad_model_config_is_a_clear_error(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    build(**kwargs)


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v[0] if isinstance(v, tuple) else v
  return out
