"""Explicit, keyed perturbation of parameters: the `init_noise` symmetry breaker.

noise(leaf) = eps * N(0, 1) * scale(leaf), where scale is
- "fan_in": 1 / sqrt(fan_in), fan_in = product of all but the last axis (the LeCun std of a kernel of that
  shape; meaningful even for a kernel that is all 0, as ConstNet's residual convs are); 1 for vectors;
- "absolute": 1.
Each parameter draws from fold_in(key, hash(its path)), so which parameters are chosen never changes the
noise any one of them receives. eps == 0 returns the input itself, bitwise.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp

from zerodiverse import rng
from zerodiverse.errors import ConfigError

SCALES = ("fan_in", "absolute")


def leaf_scale(shape, scale: str) -> float:
  if scale == "absolute":
    return 1.0
  if scale == "fan_in":
    return 1.0 / math.sqrt(math.prod(shape[:-1])) if len(shape) >= 2 else 1.0
  raise ConfigError(f"unknown noise scale {scale!r}; choose one of {SCALES}")


def perturb(key: jax.Array, params, eps: float, scale: str = "fan_in",
            select: Callable[[str], bool] = lambda name: True):
  """Adds eps * N(0, 1) * scale to every leaf whose path name passes `select`."""
  if scale not in SCALES:
    raise ConfigError(f"unknown noise scale {scale!r}; choose one of {SCALES}")
  if eps == 0:
    return params

  def add_noise(leaf_key, name, leaf):
    if not select(name):
      return leaf
    noise = rng.normal(leaf_key, leaf.shape, jnp.float32)
    return (leaf + eps * leaf_scale(leaf.shape, scale) * noise).astype(leaf.dtype)

  return rng.per_path(key, params, add_noise)
