"""LeakyNet against the rules of the authors' LRNet (remodel.py): every initial kernel, linearity of the i/1
strings up to the head's activation, and an independent forward pass with the same weights."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from zerodiverse import models, rng, symmetry
from zerodiverse.errors import ConfigError
from zerodiverse.models import leakynet
from zerodiverse.train.step import cross_entropy

A = 0.01                      # LeakyReLU slope
G = math.sqrt(2) * (1 + A)    # the authors' gain
DEPTH, N = 16, 4              # 12 block layers, 4 per stage
X = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype(np.float32)


def build(code, depth=DEPTH, dropout=0.0, **kw):
  return leakynet.LeakyNet(num_classes=10, code=code, depth=depth, width=1, dropout=dropout, **kw)


@functools.lru_cache(maxsize=None)
def init(code, seed=0, depth=DEPTH):
  """The initial variables (cached: several tests read the same string's). Eager, not jitted: the strings
  share every layer shape, so each op compiles once for all of them."""
  return build(code, depth).init(jax.random.key(seed), X[:1])


def layer_shapes(depth=DEPTH):
  """(name, in, out) of the stem and every block layer, width 1: 16, then 16/32/64 per stage."""
  n = (depth - 4) // 3
  shapes, cin = [("stem", 3, 16)], 16
  for i in range(3 * n):
    cout = 16 * 2 ** (i // n)
    shapes.append((f"layer{i}", cin, cout))
    cin = cout
  return shapes


def centre_tap(char, cin, cout, odd):
  """The deterministic part of a kernel (3, 3, in, out) by the rules: identity (d copies d mod in) for
  i and k, average 1/in otherwise; phase -1 and 1/a on odd layers; 0.99 of it for the noisy characters."""
  w = np.zeros((3, 3, cin, cout))
  if char in "ik":
    w[1, 1, np.arange(cout) % cin, np.arange(cout)] = 1.0
  else:
    w[1, 1] = 1.0 / cin
  if odd:
    w *= -1.0 / A
  return w if char in "i1" else 0.99 * w


def kernel(params, name):
  return np.asarray((params[name] if name == "stem" else params[name]["conv"])["kernel"], np.float64)


def assert_normal(noise, var, what):
  """Mean 0 and variance `var`, each within 5 standard errors of the sample size."""
  n = noise.size
  assert abs(noise.mean()) < 5 * math.sqrt(var / n), (what, noise.mean())
  assert abs(noise.var() / var - 1) < 5 * math.sqrt(2 / (n - 1)), (what, noise.var() / var)


@pytest.mark.parametrize("code", leakynet.PAPER_GRID + ("k_kxkx_kkxx_1ihk",))
def test_every_initial_kernel_follows_the_rules(code):
  params = init(code)["params"]
  chars = code.replace("_", "")
  assert sorted(params) == sorted(["stem", "head"] + [f"layer{i}" for i in range(12)])
  assert set(params["stem"]) == {"kernel"}  # a plain conv: no b, no BN
  for i in range(12):
    assert set(params[f"layer{i}"]) == ({"bias", "conv", "bn"} if i % 2 else {"bias", "conv"})
    assert float(params[f"layer{i}"]["bias"]) == 0.0
  assert not np.any(params["head"]["kernel"]) and not np.any(params["head"]["bias"])
  for (name, cin, cout), char in zip(layer_shapes(), chars):
    odd = name != "stem" and int(name[5:]) % 2 == 1
    w = kernel(params, name)
    assert w.shape == (3, 3, cin, cout), name
    fan_in = 9 * cin
    if char in "i1":
      np.testing.assert_allclose(w, centre_tap(char, cin, cout, odd), rtol=1e-6, atol=0, err_msg=name)
    elif char == "h":  # N(0, g / fan_in): no phase, no 1/a
      assert_normal(w, G / fan_in, name)
    else:  # k and any other character: 0.99 of the i / 1 tap plus N(0, 0.01 g / fan_in)
      assert_normal(w - centre_tap(char, cin, cout, odd), 0.01 * G / fan_in, name)


def block_outputs(code, *xs):
  """The last block layer's output (after its BN, before the head's activation), BN in train mode."""
  apply = functools.partial(build(code).apply, train=True, mutable=["batch_stats", "intermediates"])
  return [np.asarray(apply(init(code), x)[1]["intermediates"]["layer11"]["output"][0], np.float64) for x in xs]


@pytest.mark.parametrize("code", leakynet.PAPER_GRID)
def test_i_and_1_strings_are_linear_up_to_the_head_activation(code):
  # BN in train mode normalizes by batch statistics, so the net is not additive, but a linear map followed
  # by train-mode BN is odd: negating the batch negates the output. Any unpaired LeakyReLU breaks that.
  y, y_neg = block_outputs(code, X, -X)
  error = np.abs(y + y_neg).max() / np.abs(y).max()
  if "h" in code:
    assert error > 0.1  # the random string is not linear: the check can fail
  else:
    assert error < 1e-5, error


def test_a_pair_of_identity_layers_maps_x_to_minus_x():
  model = build("i_ii_ii_ii", depth=10)
  variables = model.init(jax.random.key(0), X[:1])
  _, state = model.apply(variables, X, mutable=["intermediates"])  # eval mode: BN is x / sqrt(1 + eps)
  out = np.asarray(state["intermediates"]["layer1"]["output"][0]) * np.sqrt(1 + 1e-5)
  np.testing.assert_allclose(out, -X[..., np.arange(16) % 3], rtol=1e-5, atol=1e-6)


def reference_logits(params, x, code, depth=DEPTH):
  """LRNet's forward written out in jax.numpy from the rules, BN in train mode (biased batch variance)."""
  n = (depth - 4) // 3

  def conv(h, w, stride):
    return lax.conv_general_dilated(h, w, (stride, stride), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def leaky(z):
    return jnp.where(z >= 0, z, A * z)

  h = conv(x, params["stem"]["kernel"], 1)
  for i in range(len(code.replace("_", "")) - 1):
    p = params[f"layer{i}"]
    h = leaky(conv(h + p["bias"], p["conv"]["kernel"], 2 if i in (n, 2 * n) else 1))
    if i % 2:
      mean = h.mean((0, 1, 2))
      var = ((h - mean) ** 2).mean((0, 1, 2))
      h = (h - mean) / jnp.sqrt(var + 1e-5) * p["bn"]["scale"] + p["bn"]["bias"]
  return leaky(h).mean((1, 2)) @ params["head"]["kernel"] + params["head"]["bias"]


def perturbed(params, seed=1):
  """Random head (the init's is 0), nonzero b_i and BN affine, so every path carries gradient."""
  keys = iter(jax.random.split(jax.random.key(seed), 64))
  out = jax.tree.map(lambda v: v, params)
  out["head"]["kernel"] = 0.1 * rng.normal(next(keys), params["head"]["kernel"].shape)
  for name, layer in out.items():
    if name.startswith("layer"):
      layer["bias"] = 0.05 * rng.normal(next(keys), ())
      if "bn" in layer:
        layer["bn"]["scale"] = 1 + 0.1 * rng.normal(next(keys), layer["bn"]["scale"].shape)
        layer["bn"]["bias"] = 0.1 * rng.normal(next(keys), layer["bn"]["bias"].shape)
  return out


@pytest.mark.parametrize("code", ["1_ii_11_ii", "k_kx_1i_hx"])  # the second has every character
def test_an_independent_forward_gives_the_same_logits_and_gradients(code):
  model = build(code, depth=10)
  variables = init(code, depth=10)
  params = perturbed(variables["params"])
  labels = jnp.arange(8) % 10

  def module_loss(p):
    logits, _ = model.apply({"params": p, "batch_stats": variables["batch_stats"]}, X, train=True,
                            mutable=["batch_stats"])
    return cross_entropy(logits, labels).mean(), logits

  def reference_loss(p):
    logits = reference_logits(p, X, code, depth=10)
    return cross_entropy(logits, labels).mean(), logits

  (_, logits), grads = jax.jit(jax.value_and_grad(module_loss, has_aux=True))(params)
  (_, ref_logits), ref_grads = jax.jit(jax.value_and_grad(reference_loss, has_aux=True))(params)
  assert np.abs(ref_logits).max() > 0.01
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)
  # Elementwise within rtol 1e-4, plus 1e-5 of the largest gradient: a scalar b_i's gradient is a sum over
  # every activation that cancels to far below its terms, so float32 summation order shows there first.
  scale = max(np.abs(np.asarray(r)).max() for r in jax.tree.leaves(ref_grads))
  for (path, g), r in zip(jax.tree_util.tree_flatten_with_path(grads)[0], jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))


def test_dropout_comes_after_the_activation_and_before_bn_from_the_dropout_key():
  model = build("h_hh_hh_hh", depth=10, dropout=0.5)
  variables = init("h_hh_hh_hh", depth=10)
  apply = jax.jit(lambda key: model.apply(variables, X, train=True, mutable=["batch_stats", "intermediates"],
                                          rngs={"dropout": key})[1]["intermediates"])

  def outputs(key):
    inter = apply(jax.random.key(key))
    return np.asarray(inter["layer0"]["output"][0]), np.asarray(inter["layer1"]["output"][0])

  (even, odd), (even_again, _), (other, _) = outputs(7), outputs(7), outputs(8)
  np.testing.assert_array_equal(even, even_again)
  assert not np.array_equal(even, other)
  assert 0.45 < np.mean(even == 0) < 0.55  # a layer without BN: the dropped activations are 0
  # An odd layer normalizes after dropout: the dropped entries all become BN(0) = -mean / std of the channel.
  c = odd[..., 0].ravel()
  values, counts = np.unique(c, return_counts=True)
  assert values[counts.argmax()] != 0 and 0.45 < counts.max() / c.size < 0.55


def test_averaging_layers_make_identical_channels():
  variables = init("1_iiii_11ii_iiii")
  _, state = build("1_iiii_11ii_iiii").apply(variables, X, train=True, mutable=["batch_stats", "intermediates"])
  inter = state["intermediates"]
  assert symmetry.distinct_slices(inter["output"][0], -1) == 1  # the stem (sown at the top)
  assert symmetry.distinct_channels(variables["params"])["layer4/conv"] == 1
  assert symmetry.distinct_slices(inter["layer11"]["output"][0], -1) == 1
  assert "leakynet" in models.NAMES


@pytest.mark.parametrize("bad,depth", [("1_iiii_iiii_iii", 16), ("1_iiii_iiii_iiiii", 16), ("1_ii ii", 7),
                                       ("1_iiii_iiii_iiii", 15), ("", 16)])
def test_bad_init_strings_name_the_field(bad, depth):
  with pytest.raises(ConfigError, match="config.model"):
    build(bad, depth=depth)
