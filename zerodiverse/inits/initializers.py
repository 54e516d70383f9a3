"""Initializers as pure functions `(key, shape, dtype) -> array`, in Flax layout.

Dense kernels are (in, out); conv kernels are (*spatial, in, out). "Centre tap" initializers fill the
spatial centre (index k // 2 on each spatial axis) and leave the other taps 0, so a conv starts as a 1x1
channel mixing; for a dense kernel the centre tap is the matrix itself.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit
from zerodiverse import rng
from zerodiverse.errors import ConfigError

Initializer = Callable[..., jax.Array]


def _centre_tap(shape, matrix: jax.Array, dtype) -> jax.Array:
  """A kernel of `shape` that is 0 except `matrix` (in, out) at the spatial centre."""
  if len(shape) < 2:
    raise ConfigError(f"centre-tap initializers need a kernel of rank >= 2, got shape {tuple(shape)}")
  if len(shape) == 2:
    return matrix.astype(dtype)
  centre = tuple(k // 2 for k in shape[:-2])
  return jnp.zeros(shape, dtype).at[centre].set(matrix.astype(dtype))


FAN_MODES = ("fan_in", "fan_out", "fan_avg")


def variance_scaling_normal(scale: float, mode: str) -> Initializer:
  """jax.nn.initializers.variance_scaling(scale, mode, "normal") bit for bit, its normal drawn flat
  (rng.normal), which XLA:CPU compiles several times faster for a conv kernel."""
  if mode not in FAN_MODES:
    raise ConfigError(f"fan mode {mode!r}: choose one of {FAN_MODES}")

  def init(key, shape, dtype=jnp.float32):
    if len(shape) < 2:
      raise ConfigError(f"variance scaling needs a kernel of rank >= 2, got shape {tuple(shape)}")
    receptive = math.prod(shape) / shape[-2] / shape[-1]  # as jax computes the fans, in Python floats
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return rng.normal(key, shape, dtype) * jnp.sqrt(jnp.array(scale / fan, dtype=dtype))

  return init


def he_normal(scale: float = 2.0, mode: str = "fan_in") -> Initializer:
  """N(0, scale / fan) with an untruncated normal (the paper's baselines), fan_in or fan_out."""
  return variance_scaling_normal(scale, mode)


def lecun_normal(scale: float = 1.0) -> Initializer:
  return variance_scaling_normal(scale, "fan_in")


def orthogonal(scale: float = 1.0) -> Initializer:
  return jinit.orthogonal(scale)


def delta_orthogonal(scale: float = 1.0) -> Initializer:
  """Xiao et al. 2018: a random orthogonal centre tap, zero elsewhere; needs in <= out."""
  base = jinit.delta_orthogonal(scale)

  def init(key, shape, dtype=jnp.float32):
    if len(shape) == 2:
      return jinit.orthogonal(scale)(key, shape, dtype)
    if shape[-2] > shape[-1]:
      raise ConfigError(f"delta_orthogonal needs in <= out channels, got kernel shape {tuple(shape)}")
    return base(key, shape, dtype)

  return init


def zeros() -> Initializer:
  return jinit.zeros


def channel_average() -> Initializer:
  """Every (in, out) entry of the centre tap is 1/in: each output channel is the mean of the inputs."""

  def init(key, shape, dtype=jnp.float32):
    del key
    n_in, n_out = shape[-2], shape[-1]
    return _centre_tap(shape, jnp.full((n_in, n_out), 1.0 / n_in), dtype)

  return init


def dirac(gain: float = 1.0) -> Initializer:
  """Identity centre tap scaled by `gain`; output channel d copies input d mod in (cyclic when out > in)."""

  def init(key, shape, dtype=jnp.float32):
    del key
    n_in, n_out = shape[-2], shape[-1]
    out = jnp.arange(n_out)
    matrix = jnp.zeros((n_in, n_out)).at[out % n_in, out].set(gain)
    return _centre_tap(shape, matrix, dtype)

  return init


def k_unique(k: int, base: Initializer) -> Initializer:
  """`k` distinct output filters drawn from `base` at the full shape's scale, tiled: channel d = filter d mod k."""
  if k < 1:
    raise ConfigError(f"k_unique needs k >= 1, got {k}")

  def init(key, shape, dtype=jnp.float32):
    n_out = shape[-1]
    if k > n_out:
      raise ConfigError(f"k_unique: k={k} exceeds the {n_out} output channels of shape {tuple(shape)}")
    filters = base(key, shape, dtype)[..., :k]
    return filters[..., jnp.arange(n_out) % k]

  return init


def identical_features(base: Initializer) -> Initializer:
  """One filter drawn from `base` once and copied to every output channel (k_unique with k = 1)."""
  return k_unique(1, base)
