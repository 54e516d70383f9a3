"""Breakers: off means the foundation's run bit for bit; each draws from its own keys; rounding noise is real
float32 arithmetic (a reordered sum, or whole ulps) and every accepted setting breaks a tiny ConstNet's
symmetry."""


import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flax.linen as nn

from zerodiverse import breakers, defaults, determinism, layers, models, rng, symmetry
from zerodiverse.data import TrainStream, load
from zerodiverse.errors import ConfigError
from zerodiverse.inits import initializers
from zerodiverse.run import train_and_evaluate
from zerodiverse.train import optim, step as step_lib

def tiny(init="constant", **breaker):
  c = defaults.base()
  c.model.depth, c.model.width, c.model.scheme = 7, 1, init
  c.data.name, c.data.augment = "digits", False
  c.train.epochs, c.train.steps, c.train.batch_size, c.train.lr = 0.0, 12, 32, 0.05
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 6
  c.train.eval_batch_size, c.train.progress = 360, False
  for k, v in breaker.items():
    c.breaker[k] = v
  return c


def without_breaker_code(monkeypatch):
  """Bypasses every breaker hook of the JAX step: init noise is never applied, no layer reorders its
  reductions, and the gradients go straight to the optimizer, i.e. the step before any breaker code."""
  monkeypatch.setattr(breakers, "reordering", lambda *args, **kwargs: contextlib.nullcontext())
  monkeypatch.setattr(step_lib, "perturb", lambda key, params, *args, **kwargs: params)
  monkeypatch.setattr(breakers, "apply_to_grads", lambda grads, *args, **kwargs: grads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  out = {}
  for name, cfg in {"constant": tiny(), "he": tiny("he"), "rounding": tiny(rounding_noise=True)}.items():
    out[name] = train_and_evaluate(cfg, str(tmp_path_factory.mktemp(name)))
  with pytest.MonkeyPatch.context() as mp:  # the same configs, in this process, with the hooks bypassed
    without_breaker_code(mp)
    for name, cfg in {"bare_constant": tiny(), "bare_he": tiny("he")}.items():
      out[name] = train_and_evaluate(cfg, str(tmp_path_factory.mktemp(name)))
  return out


def test_breakers_off_is_the_foundation_bitwise(runs):
  # Fingerprints depend on the CPU and library versions, so the reference is a run made here, in this
  # session, with every breaker hook bypassed; the breaker code must not change a bit when it is off.
  assert runs["constant"]["param_fingerprint"] == runs["bare_constant"]["param_fingerprint"]
  assert runs["he"]["param_fingerprint"] == runs["bare_he"]["param_fingerprint"]
  assert runs["constant"]["param_fingerprint"] != runs["he"]["param_fingerprint"]  # the check can fail


def test_rounding_noise_breaks_a_tiny_constnet_and_off_keeps_one_channel(runs):
  assert set(runs["constant"]["distinct_channels"].values()) == {1}
  broken = runs["rounding"]["distinct_channels"]
  # Within 12 steps the stem, the first residual conv and the head's input rows are all bitwise distinct.
  assert broken["stem"] == 16 and broken["stage1_block0/conv"] == 16 and broken["head"] == 64, broken
  assert runs["rounding"]["param_fingerprint"] != runs["bare_constant"]["param_fingerprint"]


def trace(grad_breakers):
  cfg = tiny()
  model = models.build(cfg.model, 10)
  optimizer = optim.make(cfg.train)
  state = step_lib.init_state(model, optimizer(0.1), jnp.zeros((1, 8, 8, 1)), rng.root_key(0), breakers.init_noise(cfg))
  batch = {"image": jnp.zeros((4, 8, 8, 1)), "label": jnp.zeros((4,), jnp.int32)}
  fn = step_lib.make_train_step(model, optimizer, grad_breakers)
  return str(jax.make_jaxpr(fn)(state, batch, rng.root_key(1), 0.1))


def test_breakers_off_add_no_operation():
  off = trace(breakers.GradBreakers())
  assert off == trace(breakers.grad_breakers(tiny(grad_noise=0.0)))
  assert "random_bits" not in off and "threefry" not in off and " sort[" not in off
  assert "random_bits" in trace(breakers.GradBreakers(rounding_ulps=1.0))
  assert "random_bits" in trace(breakers.GradBreakers(reorder=layers.Reorder(2)))


def test_each_grad_breaker_draws_from_its_own_stream():
  grads = {"a": {"kernel": jnp.ones((3, 4))}, "b": {"bias": jnp.full((4,), 2.0)}}
  key = jax.random.key(7)
  both = breakers.apply_to_grads(grads, key, breakers.GradBreakers(1e-3, rounding_ulps=4.0))
  noise_only = breakers.add_grad_noise(rng.stream(key, "grad_noise"), grads, 1e-3)
  composed = breakers.add_rounding_noise(rng.stream(key, "rounding_noise"), noise_only, 4.0)
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(x, y), both, composed)


def test_switching_a_breaker_on_leaves_init_data_and_dropout_alone():
  base = tiny(dropout=0.2)
  noisy = tiny(dropout=0.2, rounding_noise=True, rounding_noise_partials=3, grad_noise=1e-3)  # 3: cheapest to compile
  ds = load(base.data)
  batch = TrainStream(ds, base.seed, base.train.batch_size).batch(0)
  out = []
  for cfg in (base, noisy):
    model = models.build(cfg.model, ds.num_classes, cfg.breaker.dropout)
    optimizer = optim.make(cfg.train)
    state = step_lib.init_state(model, optimizer(cfg.train.lr), jnp.asarray(batch["image"][:1]), rng.root_key(cfg.seed),
                                breakers.init_noise(cfg))
    init = jax.device_get(state["params"])
    args = (state, batch, rng.stream(rng.root_key(cfg.seed), "step"), cfg.train.lr)
    train_step = step_lib.make_train_step(model, optimizer, breakers.grad_breakers(cfg))
    # Compiled without LLVM optimizations: this compares the two steps' draws and losses, not their speed.
    new, metrics = train_step.lower(*args).compile(determinism.fast_compile())(*args)
    out.append((init, float(metrics["loss"]), jax.device_get(new["params"])))
  (init0, loss0, new0), (init1, loss1, new1) = out
  jax.tree_util.tree_map(np.testing.assert_array_equal, init0, init1)  # same init
  assert loss0 == loss1  # the first loss sees the same data and the same dropout mask, bit for bit
  assert not np.array_equal(new0["stem"]["kernel"], new1["stem"]["kernel"])  # the breakers did act


@pytest.mark.parametrize("breaker,match", [
    ({"grad_noise": -1.0}, "config.breaker.grad_noise"),
    ({"rounding_noise_mode": "multiply"}, "rounding_noise_mode"),
    ({"rounding_noise_mode": "ulp", "rounding_noise_scale": 0.2}, "rounding_noise_scale=0.2: round"),
    ({"rounding_noise_mode": "ulp", "rounding_noise_scale": 2.0 ** -24}, "rounding_noise_scale"),
    ({"rounding_noise_mode": "ulp", "rounding_noise_scale": float("nan")}, "rounding_noise_scale"),
    ({"rounding_noise_mode": "ulp", "rounding_noise_scale": 2.0 ** 21}, "grad_noise for large"),
    ({"rounding_noise_partials": 1}, "rounding_noise_partials=1: float addition is commutative"),
    ({"rounding_noise_partials": 2}, "rounding_noise_partials=2: float addition is commutative"),
    ({"rounding_noise_partials": 33}, "more partial sums than the batch"),
    ({"rounding_noise_tile": 0}, "rounding_noise_tile=0"),
    ({"rounding_noise_tile": 4}, "rounding_noise_data_grad=True"),
])
def test_settings_that_could_not_act_are_refused_in_one_line(breaker, match):
  with pytest.raises(ConfigError, match=match) as e:
    breakers.grad_breakers(tiny(rounding_noise=True, **breaker))
  assert "\n" not in str(e.value)


# ---- reorder: a float32 sum in another order -------------------------------------------------------------

def small_conv(key_seed=0):
  """x, w, dy of a small strided conv layer, and the op as nn.Conv calls it."""
  kx, kw, kd = jax.random.split(jax.random.key(key_seed), 3)
  x = rng.normal(kx, (12, 6, 6, 3))
  w = rng.normal(kw, (3, 3, 3, 5))
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
  op = layers.Call(jax.lax.conv_general_dilated, ((2, 2), ((1, 1), (1, 1))), (("dimension_numbers", dn),))
  return x, w, rng.normal(kd, op(x, w).shape), op


def numpy_ordered_sum(partials, perm):
  p = np.take_along_axis(np.asarray(partials, np.float32), np.asarray(perm), 0)
  acc = p[0].copy()
  for i in range(1, len(p)):
    acc = np.float32(acc + p[i])
  return acc


@pytest.mark.parametrize("tile,data_grad", [(1, False), (2, True)])
def test_reorder_is_numpy_adding_the_same_partials_in_the_same_order(tile, data_grad):
  x, w, dy, op = small_conv()
  settings, key = layers.Reorder(4, tile, data_grad), jax.random.key(3)
  _, vjp = jax.vjp(lambda x_, w_: layers.reordered_op(op, settings, x_, w_, key), x, w)
  dx, dw = vjp(dy)
  pw = np.asarray(layers.weight_partials(op, x, w, dy, 4))
  perm = np.asarray(layers.order(layers.order_keys(rng.stream(key, "weight"), 4, w.shape, tile)))
  np.testing.assert_array_equal(np.asarray(dw), numpy_ordered_sum(pw, perm))
  if tile > 1:  # one order per tile of output channels, different orders across tiles and taps
    assert np.array_equal(perm[..., 0], perm[..., 1]) and not np.array_equal(perm[..., 1], perm[..., 2])
  assert len(np.unique(perm.reshape(4, -1), axis=1)) > 1
  # The partials are the weight gradients of the batch's groups: they add up to XLA's full gradient.
  _, full = jax.vjp(op, x, w)
  full_dx, full_dw = full(dy)
  np.testing.assert_allclose(pw.astype(np.float64).sum(0), full_dw, rtol=1e-5, atol=1e-5)
  if data_grad:
    px = np.asarray(layers.data_partials(op, x, w, dy, 4))
    perm_x = layers.order(layers.order_keys(rng.stream(key, "data"), 4, x.shape))
    np.testing.assert_array_equal(np.asarray(dx), numpy_ordered_sum(px, perm_x))
    np.testing.assert_allclose(px.astype(np.float64).sum(0), full_dx, rtol=1e-5, atol=1e-5)
  else:
    np.testing.assert_array_equal(dx, full_dx)  # the data gradient is XLA's own


@pytest.mark.parametrize("m", [3, 8, layers.NETWORK_MAX, layers.NETWORK_MAX + 1])
def test_ordered_sum_adds_in_the_stable_order_of_the_keys_ties_included(m):
  """The sorting network (m <= NETWORK_MAX) and lax.sort (above) add the same partials in the same order
  as numpy's stable argsort, also where keys tie (a tie keeps the partials' first order)."""
  gen = np.random.default_rng(m)
  partials = (gen.standard_normal((m, 300)) * 10.0 ** gen.integers(-3, 4, (m, 300))).astype(np.float32)
  keys = gen.integers(0, 4, (m, 300)).astype(np.uint32)  # 4 values: most columns have ties
  perm = np.argsort(keys, axis=0, kind="stable")
  got = np.asarray(jax.jit(layers.ordered_sum)(jnp.asarray(partials), jnp.asarray(keys)))
  np.testing.assert_array_equal(got, numpy_ordered_sum(partials, perm))
  np.testing.assert_array_equal(np.asarray(layers.order(jnp.asarray(keys))), perm)
  # and the order matters: the reversed order's sums differ somewhere
  assert not np.array_equal(got, numpy_ordered_sum(partials, perm[::-1]))


def constnet_like(n, h, cin, cout, k, stride):
  """op, x, w, dy of a conv whose input channels, filters and output-gradient channels are all identical."""
  dn = jax.lax.conv_dimension_numbers((n, h, h, cin), (k, k, cin, cout), ("NHWC", "HWIO", "NHWC"))
  op = layers.Call(jax.lax.conv_general_dilated, ((stride, stride), ((k // 2, k // 2),) * 2), (("dimension_numbers", dn),))
  kx, kd = jax.random.split(jax.random.key(5))
  x = jnp.broadcast_to(rng.normal(kx, (n, h, h, 1)), (n, h, h, cin))
  ho = (h - 1) // stride + 1
  dy = jnp.broadcast_to(rng.normal(kd, (n, ho, ho, 1)), (n, ho, ho, cout))
  return op, x, jnp.full((k, k, cin, cout), 0.05, jnp.float32), dy


def distinct(a, axis):
  return len({s.tobytes() for s in np.moveaxis(np.asarray(a), axis, 0)})


# The 1x1 stride-2 shortcuts from 32 and 128 channels are where a plain matrix product splits identical rows.
@pytest.mark.parametrize("shape", [(32, 8, 16, 16, 3, 1), (32, 8, 32, 64, 1, 2), (32, 8, 128, 256, 1, 2),
                                   (128, 16, 16, 32, 3, 2), (128, 16, 32, 64, 1, 2)])
def test_reorder_partials_of_a_constnet_like_conv_keep_every_channel_identical(shape):
  op, x, w, dy = constnet_like(*shape)
  pw = jax.jit(lambda x_, w_, d: layers.weight_partials(op, x_, w_, d, 8))(x, w, dy)
  px = jax.jit(lambda x_, w_, d: layers.data_partials(op, x_, w_, d, 8))(x, w, dy)
  k = shape[4]
  for g in range(8):
    assert distinct(px[g], -1) == 1
    for i in range(k):
      for j in range(k):
        assert (distinct(pw[g, i, j], 0), distinct(pw[g, i, j], 1)) == (1, 1), (g, i, j)
  # the partials are the groups' gradients: they add up to the full one
  full = np.asarray(layers.weight_gradient(op, x, w, dy), np.float64)
  np.testing.assert_allclose(np.asarray(pw, np.float64).sum(0), full, rtol=1e-5, atol=1e-5 * np.abs(full).max())


@pytest.mark.parametrize("features", [16, 32, 64])
def test_reorder_partials_of_identical_channels_are_bitwise_identical(features):
  """Identical output channels (identical filters, identical output gradients) get bitwise identical
  partial sums, so only the keyed order can tell them apart (a matrix product may round them differently)."""
  kx, kd = jax.random.split(jax.random.key(5))
  x = rng.normal(kx, (32, 8, 8, features))
  w = jnp.ones((3, 3, features, features), jnp.float32) / features  # ConstNet-like: every filter the same
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
  op = layers.Call(jax.lax.conv_general_dilated, ((1, 1), ((1, 1), (1, 1))), (("dimension_numbers", dn),))
  dy = jnp.broadcast_to(rng.normal(kd, op(x, w).shape[:-1] + (1,)), op(x, w).shape)  # same per channel
  pw = np.asarray(jax.jit(lambda x_, w_, d: layers.weight_partials(op, x_, w_, d, 8))(x, w, dy))
  assert all(np.array_equal(pw[..., 0], pw[..., c]) for c in range(features))


def spread_in_ulps(partials, keys=48):
  """Per element, (max - min) over keyed orders of the ordered sum, in ulps of the exact sum."""
  sums = np.stack([np.asarray(layers.ordered_sum(jnp.asarray(partials), layers.order_keys(
      jax.random.key(k), partials.shape[0], partials.shape[1:]))) for k in range(keys)])
  exact = partials.astype(np.float64).sum(0)
  return (sums.max(0) - sums.min(0)) / np.spacing(np.abs(exact).astype(np.float32))


def test_cancelling_partials_spread_further_and_some_elements_never_move():
  gen = np.random.default_rng(0)
  same_sign = gen.uniform(1.0, 2.0, (8, 2000)).astype(np.float32)
  # Two halves of the batch pulling opposite ways: the sum is ~2 % of a partial.
  cancelling = np.concatenate([same_sign[:4], -same_sign[:4] * np.float32(1.02)])[gen.permutation(8)]
  same, cancel = spread_in_ulps(same_sign), spread_in_ulps(cancelling)
  assert np.median(cancel) > 4 * max(np.median(same), 1.0), (np.median(same), np.median(cancel))
  assert 0 < np.mean(same == 0) < 1  # some elements come out bitwise the same in every order, others not


class TwoLayers(nn.Module):
  @nn.compact
  def __call__(self, x):
    init = initializers.lecun_normal()  # a flat draw: flax's default truncated normal of a conv kernel compiles slowly
    x = nn.relu(layers.Conv(4, (3, 3), padding=((1, 1), (1, 1)), kernel_init=init, name="conv")(x))
    return layers.Dense(3, kernel_init=init, name="head")(x.reshape(x.shape[0], -1))


def test_reorder_same_key_is_bitwise_equal_other_key_differs_and_off_is_flax():
  x = rng.normal(jax.random.key(0), (8, 5, 5, 2))
  params = TwoLayers().init(jax.random.key(1), x)["params"]
  loss = lambda p: jnp.sum(TwoLayers().apply({"params": p}, x) * jnp.arange(3.0))

  @jax.jit
  def grads(key):
    with layers.reordered(layers.Reorder(4), key):
      return jax.grad(loss)(params)

  a, b, c = grads(jax.random.key(5)), grads(jax.random.key(5)), grads(jax.random.key(6))
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
  for layer in ("conv", "head"):
    assert not np.array_equal(a[layer]["kernel"], c[layer]["kernel"])
    np.testing.assert_allclose(a[layer]["kernel"], c[layer]["kernel"], rtol=1e-5, atol=1e-6)
  # Outside a `reordered` block nothing is reordered, and apart from the CPU's row-tile padding of 1x1 convs
  # and dense layers and its stored conv inputs the layers trace exactly as flax's own.
  assert " sort[" not in str(jax.make_jaxpr(jax.grad(loss))(params))
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(layers, "Conv", nn.Conv)
    mp.setattr(layers, "Dense", nn.Dense)
    flax_own = str(jax.make_jaxpr(jax.grad(loss))(params))
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(layers, "has_tiled_rows", lambda *args: False)
    mp.setattr(layers, "saves_input", lambda *args: False)
    assert str(jax.make_jaxpr(jax.grad(loss))(params)) == flax_own


# ---- ulp: whole ulps, symmetric, with the configured spread -----------------------------------------------

@pytest.mark.parametrize("sigma", [0.5, 4.0])
def test_ulp_moves_are_whole_symmetric_ulps_with_the_configured_spread(sigma):
  g = np.random.default_rng(1).uniform(1.0, 2.0, 200_000).astype(np.float32)  # one ulp = 2^-23 here
  g[::2] *= -1
  moved = np.asarray(breakers.move_ulps(jnp.asarray(g), breakers.ulp_moves(jax.random.key(2), g.shape, sigma)))
  k = (np.abs(moved).astype(np.float64) - np.abs(g)) / 2.0 ** -23
  np.testing.assert_array_equal(k, np.round(k))  # whole ulps, away from 0 for k > 0 whatever the sign
  assert np.all(np.sign(moved) == np.sign(g))
  assert abs(k.mean()) < 4 * k.std() / np.sqrt(k.size)  # symmetric around 0
  z = np.random.default_rng(3).normal(size=2_000_000) * sigma  # the spread of round(N(0, sigma))
  assert abs(k.std() / np.round(z).std() - 1) < 0.02
  assert abs(np.mean(k != 0) - breakers.moved_fraction(sigma)) < 0.01


def test_ulp_moves_respect_zero_subnormals_and_non_finite_values():
  tiny_ = np.float32(np.finfo(np.float32).smallest_subnormal)
  g = jnp.asarray([0.0, -0.0, np.inf, -np.inf, np.nan, tiny_, tiny_, -tiny_, np.finfo(np.float32).max], jnp.float32)
  k = jnp.asarray([3, -3, 1, 1, 1, -1, 2, 2, 5], jnp.int32)
  out = np.asarray(breakers.move_ulps(g, k))
  np.testing.assert_array_equal(out[:5].view(np.uint32), np.asarray(g)[:5].view(np.uint32))  # unchanged bits
  # XLA:CPU may treat subnormals as 0 (denormals-are-zero), depending on the CPU and the fusion: then they are
  # kept as they are; otherwise a move below 0 stops at +0 and subnormals move by the smallest subnormal.
  kept = np.array_equal(out[5:8].view(np.uint32), np.asarray(g)[5:8].view(np.uint32))
  moved = out[5] == 0 and not np.signbit(out[5]) and out[6] == 3 * tiny_ and out[7] == -3 * tiny_
  assert kept or moved, out[5:8]
  assert out[8] == np.finfo(np.float32).max  # never overflows into inf


# ---- every accepted setting breaks a ConstNet's symmetry ---------------------------------------------------

@pytest.mark.parametrize("breaker", [
    {"rounding_noise_partials": 3},
    {"rounding_noise_partials": 8, "rounding_noise_tile": 4, "rounding_noise_data_grad": True},
    {"rounding_noise_mode": "ulp", "rounding_noise_scale": 0.45},
])
def test_every_accepted_setting_breaks_a_constnets_symmetry_within_50_steps(breaker):
  """The smallest accepted setting of each mode (and the tiled one) makes a tiny ConstNet's channels bitwise
  distinct."""
  cfg = tiny(rounding_noise=True, **breaker)
  ds = load(cfg.data)
  stream = TrainStream(ds, cfg.seed, cfg.train.batch_size)
  model = models.build(cfg.model, ds.num_classes)
  optimizer, lrs = optim.make(cfg.train), optim.learning_rates(cfg.train, 50)
  key = rng.root_key(cfg.seed)
  state = step_lib.init_state(model, optimizer(lrs[0]), jnp.asarray(stream.batch(0)["image"][:1]), key,
                              breakers.init_noise(cfg))
  assert set(symmetry.distinct_channels(state["params"]).values()) == {1}
  # Every 3x3 conv, the stem and the head end with all channels bitwise distinct. The 1x1 shortcuts are left
  # out: under reorder some of their channels stay bitwise equal for hundreds of steps (ConstNet 10-1 on
  # CIFAR-10, m = 8: 27 of 32 and 45 of 64 distinct after 150 steps; docs/results/rounding_noise).
  widths = {rng.path_name(path)[:-len("/kernel")]: leaf.shape[-2 if rng.path_name(path) == "head/kernel" else -1]
            for path, leaf in jax.tree_util.tree_flatten_with_path(state["params"])[0]
            if leaf.ndim >= 2 and "shortcut" not in rng.path_name(path)}
  distinct = lambda: {k: v for k, v in symmetry.distinct_channels(jax.device_get(state["params"])).items() if k in widths}
  train_step = step_lib.make_train_step(model, optimizer, breakers.grad_breakers(cfg))
  for t in range(50):
    state, _ = train_step(state, stream.batch(t), rng.stream(key, "step"), lrs[t])
    if t % 10 == 9 and distinct() == widths:
      break
  assert distinct() == widths, t
