"""ConstNet at init: the paper's structure, zero logits, identical features, zero residual branches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import ml_collections

from zerodiverse import breakers, defaults, models, rng
from zerodiverse.errors import ConfigError
from zerodiverse.models import batchnorm
from zerodiverse.symmetry import distinct_channels, distinct_slices

X = rng.normal(jax.random.key(1), (8, 32, 32, 3))


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


def random_head(variables, key=3):
  params = jax.tree.map(lambda x: x, variables["params"])
  params["head"]["kernel"] = 0.1 * rng.normal(jax.random.key(key), params["head"]["kernel"].shape)
  return {**variables, "params": params}


def test_the_two_shortcut_inputs_give_different_logits_and_both_keep_channel_symmetry():
  out = {}
  for shortcut_input in ("relu_bn", "bn"):
    cfg = ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="constant",
                                         shortcut_input=shortcut_input))
    model = models.build(cfg, 10)
    variables = random_head(model.init(jax.random.key(0), X, train=False))
    logits, state = model.apply(variables, X, train=True, mutable=["batch_stats", "intermediates"])
    outputs = {p: v for p, v in _flat(state["intermediates"]).items() if p.endswith("output")}
    assert all(distinct_slices(v, -1) == 1 for v in outputs.values()), shortcut_input
    out[shortcut_input] = np.asarray(logits)
  assert np.abs(out["bn"]).max() > 1e-3
  assert np.abs(out["relu_bn"] - out["bn"]).max() > 0.05 * np.abs(out["bn"]).max()
  with pytest.raises(ConfigError, match="config.model.shortcut_input"):
    models.build(ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="constant",
                                                shortcut_input="relu")), 10)


def test_random_residual_scheme_draws_residual_convs_and_keeps_stem_and_shortcuts_constant():
  s = 0.5
  cfg = ml_collections.ConfigDict(dict(name="constnet", depth=10, width=4, scheme="random_residual",
                                       residual_var_scale=s))
  params = models.build(cfg, 10).init(jax.random.key(0), X[:1], train=False)["params"]
  const = models.build(ml_collections.ConfigDict(dict(cfg, scheme="constant")), 10).init(
      jax.random.key(0), X[:1], train=False)["params"]
  for name, layer in params.items():
    if name in ("stem", "head"):
      np.testing.assert_array_equal(layer["kernel"], const[name]["kernel"])
      continue
    if "shortcut" in layer:
      np.testing.assert_array_equal(layer["shortcut"]["kernel"], const[name]["shortcut"]["kernel"])
    w = np.asarray(layer["conv"]["kernel"], np.float64)
    n, expected = w.size, 2 * s / (9 * w.shape[-1])  # N(0, 2 s / (9 out))
    assert abs(w.mean()) < 5 * np.sqrt(expected / n), name
    assert abs(w.var() / expected - 1) < 5 * np.sqrt(2 / (n - 1)), name  # 5 standard errors of a variance
  with pytest.raises(ConfigError, match="residual_var_scale"):
    models.build(ml_collections.ConfigDict(dict(cfg, residual_var_scale=0.0)), 10)


def test_grouped_batch_norm_is_per_group_batch_norm_and_updates_running_stats_from_the_first_group():
  x = rng.normal(jax.random.key(2), (8, 3, 3, 5)) * 2 + 1
  bn = batchnorm.GroupBatchNorm(group_size=4, decay=0.81)
  variables = bn.init(jax.random.key(0), x)
  scale, bias = np.linspace(0.5, 1.5, 5), np.linspace(-1, 1, 5)
  variables = {"params": {"scale": scale, "bias": bias},
               "batch_stats": {"mean": np.full(5, 0.3), "var": np.full(5, 2.0)}}
  y, state = bn.apply(variables, x, mutable=["batch_stats"])
  xs = np.asarray(x, np.float64)
  for g in range(2):
    part = xs[4 * g:4 * g + 4]
    mean, var = part.mean((0, 1, 2)), part.var((0, 1, 2))
    np.testing.assert_allclose(y[4 * g:4 * g + 4], (part - mean) / np.sqrt(var + 1e-5) * scale + bias,
                               rtol=1e-5, atol=1e-5)
    if g == 0:
      np.testing.assert_allclose(state["batch_stats"]["mean"], 0.81 * 0.3 + 0.19 * mean, rtol=1e-6)
      np.testing.assert_allclose(state["batch_stats"]["var"], 0.81 * 2.0 + 0.19 * var, rtol=1e-6)
  whole = np.asarray(batchnorm.batch_norm(True, "bn", 0.9, 0).apply(variables, x, mutable=["batch_stats"])[0])
  assert np.abs(whole - np.asarray(y)).max() > 1e-3  # groups of 4 are not the whole batch
  eval_y = batchnorm.GroupBatchNorm(4, 0.81, use_running_average=True).apply(variables, x)
  np.testing.assert_allclose(eval_y, (xs - 0.3) / np.sqrt(2.0 + 1e-5) * scale + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decay", [0.9, 0.81])
def test_bn_decay_sets_the_running_average(decay):
  cfg = ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="he", bn_decay=decay))
  model = models.build(cfg, 10)
  variables = model.init(jax.random.key(0), X, train=False)
  _, state = model.apply(variables, X, train=True, mutable=["batch_stats"])
  _, inter = model.apply(variables, X, train=False, mutable=["intermediates"])
  x = np.asarray(inter["intermediates"]["output"][0], np.float64)  # the stem output, sown at the top
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))  # stage1_block0's BN sees the stem output
  np.testing.assert_allclose(state["batch_stats"]["stage1_block0"]["bn"]["mean"], (1 - decay) * mean, rtol=1e-4,
                             atol=1e-7)
  np.testing.assert_allclose(state["batch_stats"]["stage1_block0"]["bn"]["var"], decay + (1 - decay) * var,
                             rtol=1e-4)


def test_a_batch_the_group_size_does_not_divide_is_refused_in_one_line():
  config = defaults.base()
  config.model.depth, config.model.width, config.model.bn_group_size = 7, 1, 64
  config.train.batch_size = 100
  with pytest.raises(ConfigError, match=r"config.model.bn_group_size=64 does not divide config.train.batch_size=100"):
    models.for_run(config, 10)
  config.train.batch_size = 128
  models.for_run(config, 10)
  model = models.build(ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="he", bn_group_size=3)), 10)
  variables = model.init(jax.random.key(0), X, train=False)
  with pytest.raises(ConfigError, match="bn_group_size=3 does not divide the batch of 8"):
    model.apply(variables, X, train=True, mutable=["batch_stats"])


def stem_and_residual(model, variables, stem_key, dropout_key):
  _, state = model.apply(variables, X, train=True, mutable=["batch_stats", "intermediates"],
                         rngs={"dropout": jax.random.key(dropout_key), "stem_dropout": jax.random.key(stem_key)})
  inter = state["intermediates"]
  return np.asarray(inter["output"][0]), np.asarray(inter["stage1_block0"]["residual"][0])


def test_stem_dropout_breaks_constnet_symmetry_from_its_own_stream():
  model = models.build(ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="constant")), 10,
                       stem_dropout=0.3)
  variables = model.init(jax.random.key(0), X, train=False)
  stem, _ = stem_and_residual(model, variables, 1, 2)
  assert distinct_slices(stem, -1) == 16  # each channel its own mask
  assert 0.25 < np.mean(stem == 0) < 0.35
  # Both dropouts on (He arm: no exact zeros without a mask): each mask depends on its own key only.
  model = models.build(ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="he")), 10,
                       dropout=0.5, stem_dropout=0.5)
  variables = model.init(jax.random.key(0), X, train=False)
  (s11, r11), (s12, r12), (s21, r21) = [stem_and_residual(model, variables, a, b) for a, b in ((1, 1), (1, 2), (2, 1))]
  np.testing.assert_array_equal(s11 == 0, s12 == 0)   # a new residual key leaves the stem mask alone
  np.testing.assert_array_equal(r11 == 0, r21 == 0)   # a new stem key leaves the residual mask alone
  assert not np.array_equal(s11 == 0, s21 == 0) and not np.array_equal(r11 == 0, r12 == 0)
  assert ("stem_dropout", 0.5) in breakers.switched_on({"stem_dropout": 0.5})
  with pytest.raises(ConfigError, match="config.breaker.stem_dropout"):
    models.build(ml_collections.ConfigDict(dict(name="leakynet", depth=10, width=1, init_string="1_ii_ii_ii")), 10,
                 stem_dropout=0.1)


def test_stem_dropout_off_derives_no_key_in_the_train_step():
  from zerodiverse.train import optim, step  # pylint: disable=g-import-not-at-top
  cfg = ml_collections.ConfigDict(dict(name="constnet", depth=7, width=1, scheme="constant"))
  batch = {"image": X[:4, :8, :8], "label": np.zeros(4, np.int32)}

  def trace(stem_dropout):
    model = models.build(cfg, 10, stem_dropout=stem_dropout)
    optimizer = optim.make(defaults.base().train)
    state = step.init_state(model, optimizer(0.1), X[:1, :8, :8], rng.root_key(0), breakers.init_noise(defaults.base()))
    return str(jax.make_jaxpr(step.make_train_step(model, optimizer))(state, batch, rng.root_key(1), 0.1))

  off, on = trace(0.0), trace(0.1)
  stream = str(rng.stable_hash("stem_dropout"))  # the constant folded into the step key for this stream
  assert "random_bits" not in off and stream not in off
  assert "random_bits" in on and stream in on
