"""Initializers: Flax layout, the exact structure each promises, and the statistics of the random ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodiverse import inits
from zerodiverse.errors import ConfigError
from zerodiverse.inits import perturb
from zerodiverse.symmetry import distinct_slices

KEY = jax.random.key(0)
CONV = (3, 3, 16, 32)
DENSE = (64, 128)


@pytest.mark.parametrize("name,kwargs", [
    ("he_normal", {}), ("he_normal", {"mode": "fan_out"}), ("lecun_normal", {}), ("orthogonal", {}),
    ("delta_orthogonal", {}), ("zeros", {}), ("channel_average", {}), ("dirac", {"gain": 2.0}),
    ("identical_features", {"base": "he_normal"}), ("k_unique", {"k": 4, "base": "lecun_normal"}),
])
@pytest.mark.parametrize("shape", [CONV, DENSE])
def test_every_initializer_returns_flax_layout(name, kwargs, shape):
  w = inits.get(name, **kwargs)(KEY, shape, jnp.float32)
  assert w.shape == shape and w.dtype == jnp.float32


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling_normal_is_jaxs_bit_for_bit(mode):
  for shape, dtype in [(CONV, jnp.float32), (DENSE, jnp.float32), ((7, 7, 3, 8), jnp.float32), ((1, 1, 24, 8), jnp.bfloat16)]:
    for scale in (2.0, 1.0 / 3):
      ours = inits.initializers.variance_scaling_normal(scale, mode)(KEY, shape, dtype)
      jaxs = jax.nn.initializers.variance_scaling(scale, mode, "normal")(KEY, shape, dtype)
      assert ours.dtype == jaxs.dtype
      np.testing.assert_array_equal(ours, jaxs)
  with pytest.raises(ConfigError, match="fan mode"):
    inits.initializers.variance_scaling_normal(2.0, "fan_sum")


@pytest.mark.parametrize("mode,fan", [("fan_in", 9 * 16), ("fan_out", 9 * 32)])
def test_he_normal_is_untruncated_with_variance_2_over_fan(mode, fan):
  w = np.asarray(inits.get("he_normal", mode=mode)(KEY, (3, 3, 16, 32 * 64)))
  if mode == "fan_out":  # fan_out counts the output channels of the shape actually drawn
    fan = 9 * 32 * 64
  n = w.size
  assert abs(w.var() - 2 / fan) < 4 * (2 / fan) * np.sqrt(2 / n)  # 4 standard errors of a variance
  assert np.abs(w).max() > 2.5 * np.sqrt(2 / fan)  # a truncated normal stops at 2 std


def test_lecun_normal_variance():
  w = np.asarray(inits.get("lecun_normal")(KEY, (256, 4096)))
  assert abs(w.var() - 1 / 256) < 4 * (1 / 256) * np.sqrt(2 / w.size)


def test_orthogonal_columns_are_orthonormal():
  w = np.asarray(inits.get("orthogonal")(KEY, DENSE))
  np.testing.assert_allclose(w @ w.T, np.eye(64), atol=1e-5)  # 64 orthonormal rows of a 128-dim space


def test_delta_orthogonal_has_an_orthogonal_centre_and_zero_elsewhere():
  w = np.array(inits.get("delta_orthogonal")(KEY, CONV))
  centre = w[1, 1]
  np.testing.assert_allclose(centre @ centre.T, np.eye(16), atol=1e-5)
  w[1, 1] = 0
  assert not w.any()
  with pytest.raises(ConfigError, match="in <= out"):
    inits.get("delta_orthogonal")(KEY, (3, 3, 32, 16))


def test_zeros_are_zero():
  assert not np.asarray(inits.get("zeros")(KEY, CONV)).any()


def test_channel_average_centre_tap_is_one_over_in():
  w = np.array(inits.get("channel_average")(KEY, CONV))
  assert np.all(w[1, 1] == np.float32(1 / 16))
  w[1, 1] = 0
  assert not w.any()
  x = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
  np.testing.assert_allclose(x @ np.asarray(inits.get("channel_average")(KEY, (16, 7))),
                             np.repeat(x.mean(1, keepdims=True), 7, 1), rtol=1e-5)


def test_dirac_copies_input_channels_cyclically_with_gain():
  w = np.array(inits.get("dirac", gain=-100.0)(KEY, (3, 3, 4, 10)))
  expected = np.zeros((4, 10), np.float32)
  expected[np.arange(10) % 4, np.arange(10)] = -100.0
  np.testing.assert_array_equal(w[1, 1], expected)
  w[1, 1] = 0
  assert not w.any()


def test_identical_features_channels_are_bitwise_equal():
  w = np.asarray(inits.get("identical_features", base="he_normal")(KEY, CONV))
  assert distinct_slices(w, -1) == 1
  assert np.std(w[..., 0]) > 0  # one random filter, not a constant


@pytest.mark.parametrize("k", [1, 3, 8, 32])
def test_k_unique_has_exactly_k_distinct_filters_tiled(k):
  w = np.asarray(inits.get("k_unique", k=k, base="he_normal")(KEY, CONV))
  assert distinct_slices(w, -1) == k
  np.testing.assert_array_equal(w[..., k:], w[..., :32 - k])  # channel d = filter d mod k
  with pytest.raises(ConfigError, match="exceeds"):
    inits.get("k_unique", k=33, base="he_normal")(KEY, CONV)


def test_unknown_initializer_is_a_clear_error():
  with pytest.raises(ConfigError, match="unknown initializer 'hee_normal'"):
    inits.get("hee_normal")


PARAMS = {"conv": {"kernel": jnp.zeros((3, 3, 64, 256))}, "bn": {"scale": jnp.ones((512,))}}


def test_perturb_eps_zero_returns_the_input_bitwise():
  assert perturb(KEY, PARAMS, 0.0) is PARAMS


@pytest.mark.parametrize("scale", ["fan_in", "absolute"])
def test_perturb_noise_has_mean_zero_and_std_eps_times_scale(scale):
  eps = 1e-3
  out = perturb(KEY, PARAMS, eps, scale)
  noise = np.asarray(out["conv"]["kernel"], np.float64)
  std = eps * (1 / np.sqrt(9 * 64) if scale == "fan_in" else 1.0)
  n = noise.size
  assert abs(noise.mean()) < 4 * std / np.sqrt(n)
  assert abs(noise.std() / std - 1) < 4 * np.sqrt(1 / (2 * n))
  vector_noise = np.asarray(out["bn"]["scale"], np.float64) - 1  # vectors: scale 1 in both modes
  assert abs(vector_noise.std() / eps - 1) < 0.15


def test_perturb_draws_per_parameter_path_so_selection_does_not_change_draws():
  both = perturb(KEY, PARAMS, 1e-2)
  conv_only = perturb(KEY, PARAMS, 1e-2, select=lambda name: name.startswith("conv"))
  np.testing.assert_array_equal(both["conv"]["kernel"], conv_only["conv"]["kernel"])
  np.testing.assert_array_equal(conv_only["bn"]["scale"], PARAMS["bn"]["scale"])
  other_key = perturb(jax.random.key(1), PARAMS, 1e-2)
  assert not np.array_equal(both["conv"]["kernel"], other_key["conv"]["kernel"])
