"""Symmetry breakers, each switched on only through `config.breaker` and drawing from its own key stream.

Every breaker is off by default; off means *no operation at all* in the traced step, so a run with every
breaker off is bitwise the run without breaker code. Keys: a breaker named B draws, for parameter path P at
step t, from stream(stream(fold_in(stream(root, "step"), t), B), P) (rng.stream = fold_in of a name hash),
so switching one breaker on never changes the init, the data order (host side, keyed by seed and step
alone), dropout masks, or another breaker's numbers.

- `init_noise`: eps * N(0, 1) * scale added at init to the chosen parameter groups (see inits.perturb),
  stream "init_noise" below the root key.
- `dropout`: dropout built into the model (ConstNet's residual branches, LeakyNet's block layers); draws
  from the per-step "dropout" stream. `stem_dropout`: ConstNet's dropout after the stem, stream "stem_dropout".
- `grad_noise`: every step, g <- g + eps * N(0, 1), independently per gradient element (absolute scale).
- `rounding_noise`: the float32 rounding differences of nondeterministic GPU reductions, in one of two modes
  (`rounding_noise_mode`):
  - `reorder` (default): every Conv and Dense of the models (zerodiverse.layers) forms its weight gradient as
    `rounding_noise_partials` partial sums over groups of the batch and adds them in float32 in an order drawn
    per output element (`rounding_noise_tile` > 1: shared by that many consecutive output channels);
    `rounding_noise_data_grad` does the same to the data gradient, over groups of output channels. The forward
    pass is unchanged. zerodiverse.layers says what this models and what not.
  - `ulp`: every gradient element moves by k of its own ulps, k = round(N(0, sigma)) drawn per element, sigma =
    `rounding_noise_scale` (in ulps), on the float's bit pattern: zeros, infinities and NaNs stay as they are
    (a reordered sum of zeros is zero), the sign never flips, a move below 0 stops at 0. It models a reduction's
    error as a discrete number of ulps of the result, independent per element, without its dependence on the
    summands (e.g. larger errors where partial sums cancel, none where they are exact).
  Both are keyed by the step and the parameter's path, so a run replays bitwise, unlike the GPU; their
  parameters (m, tile, sigma) are to be calibrated against a GPU measurement of the same layers. A setting
  under which (almost) no element can change is refused: float32 arithmetic silently absorbs perturbations
  below half an ulp (1 + u * 2^-25 is exactly 1), so such a breaker would be a no-op.
"""

import contextlib
import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from zerodiverse import layers, models, rng
from zerodiverse.errors import ConfigError

NAMES = ("init_noise", "grad_noise", "dropout", "stem_dropout", "rounding_noise")
ROUNDING_MODES = ("reorder", "ulp")
# Refuse an ulp sigma under which fewer than a quarter of the elements move: a gradient moved by one ulp is
# often absorbed again when lr * g is added to a much larger weight, and at sigma = 0.2 (1.2 % moved) a tiny
# ConstNet's head kept 20 of its 64 rows identical for 50 steps.
MIN_MOVED = 0.25
MAX_ULPS = 2.0 ** 20  # beyond that a move is a relative change of 1/8, not a rounding: use grad_noise


def switched_on(breaker) -> list:
  """[(name, scale)] of the breakers `breaker` (config.breaker, or its dict) switches on, in NAMES order;
  rounding_noise's scale is its sigma in ulps (mode ulp) or its number of partial sums (mode reorder)."""
  def scale(k):
    if k != "rounding_noise":
      return float(breaker[k])
    if breaker.get("rounding_noise_mode", "reorder") == "ulp":
      return float(breaker.get("rounding_noise_scale", 1.0))
    return float(breaker.get("rounding_noise_partials", 8))
  return [(k, scale(k)) for k in NAMES if breaker.get(k)]


@dataclasses.dataclass(frozen=True)
class InitNoise:
  eps: float
  scale: str
  select: Callable[[str], bool]


def init_noise(config) -> InitNoise:
  """The init-noise breaker of `config`: groups are 'all' or a comma-separated list of the model's groups."""
  groups = {g.strip() for g in config.breaker.init_noise_groups.split(",") if g.strip()}
  if not groups:
    raise ConfigError("config.breaker.init_noise_groups is empty; use 'all' or e.g. 'residual,stem'")
  if "all" in groups:
    select = lambda name: True
  else:
    known = set(models.groups(config.model.name))
    if groups - known:
      raise ConfigError(f"config.breaker.init_noise_groups={config.breaker.init_noise_groups!r}: "
                       f"unknown groups {sorted(groups - known)}; {config.model.name} has {sorted(known)} or 'all'")
    select = lambda name: models.param_group(config.model.name, name) in groups
  return InitNoise(float(config.breaker.init_noise), config.breaker.init_noise_scale, select)


@dataclasses.dataclass(frozen=True)
class GradBreakers:
  """The per-step gradient-space breakers; 0 / None = off."""
  grad_noise: float = 0.0
  rounding_ulps: float = 0.0  # sigma of the ulp mode; 0 = off
  reorder: layers.Reorder | None = None  # the reorder mode's settings; None = off


def moved_fraction(sigma: float) -> float:
  """P(round(N(0, sigma)) != 0): the share of elements an ulp sigma moves."""
  return math.erfc(0.5 / (sigma * math.sqrt(2.0)))


def rounding_breaker(b, batch_size: int) -> GradBreakers:
  """The rounding-noise part of `b` (config.breaker), refused with one line where it could not act."""
  mode = b.get("rounding_noise_mode", "reorder")
  if mode not in ROUNDING_MODES:
    raise ConfigError(f"config.breaker.rounding_noise_mode={mode!r}: one of {ROUNDING_MODES}")
  if mode == "ulp":
    sigma = float(b.get("rounding_noise_scale", 1.0))
    if not math.isfinite(sigma) or sigma <= 0 or moved_fraction(sigma) < MIN_MOVED:
      raise ConfigError(f"config.breaker.rounding_noise_scale={sigma}: round(N(0, sigma)) is 0 for more than "
                        f"{1 - MIN_MOVED:.0%} of the elements, so almost nothing would move; use sigma >= 0.45 ulps")
    if sigma > MAX_ULPS:
      raise ConfigError(f"config.breaker.rounding_noise_scale={sigma}: more than 2^20 ulps is not a rounding "
                        "error; use config.breaker.grad_noise for large noise")
    return GradBreakers(rounding_ulps=sigma)
  m, tile, data_grad = b.get("rounding_noise_partials", 8), b.get("rounding_noise_tile", 1), \
      bool(b.get("rounding_noise_data_grad", False))
  if not isinstance(m, int) or m < 3:
    raise ConfigError(f"config.breaker.rounding_noise_partials={m}: float addition is commutative, so one or two "
                      "partial sums give the same result in every order; use an integer >= 3, e.g. 8")
  if m > batch_size:
    raise ConfigError(f"config.breaker.rounding_noise_partials={m}: more partial sums than the batch has "
                      f"examples ({batch_size}); use at most config.train.batch_size")
  if not isinstance(tile, int) or tile < 1:
    raise ConfigError(f"config.breaker.rounding_noise_tile={tile}: output channels per shared order, an integer >= 1")
  if tile > 1 and not data_grad:
    raise ConfigError(f"config.breaker.rounding_noise_tile={tile}: identical channels of one tile get the same "
                      "partials in the same order, so their symmetry could never break; set "
                      "config.breaker.rounding_noise_data_grad=True or rounding_noise_tile=1")
  return GradBreakers(reorder=layers.Reorder(m, tile, data_grad))


def grad_breakers(config) -> GradBreakers:
  """The gradient breakers of `config.breaker` (grad_noise eps, rounding_noise on/off and its mode)."""
  b = config.breaker
  eps = float(b.get("grad_noise", 0.0))
  if eps < 0:
    raise ConfigError(f"config.breaker.grad_noise={eps}: a noise scale >= 0 (0 = off)")
  rounding = rounding_breaker(b, config.train.batch_size) if b.get("rounding_noise", False) else GradBreakers()
  return dataclasses.replace(rounding, grad_noise=eps)


def add_grad_noise(key: jax.Array, grads, eps: float):
  """g + eps * N(0, 1), each leaf from the stream of its path below `key`."""
  return rng.per_path(key, grads, lambda k, _, g: g + (eps * rng.normal(k, g.shape, jnp.float32)).astype(g.dtype))


def ulp_moves(key: jax.Array, shape, sigma: float) -> jax.Array:
  """round(sigma * N(0, 1)) as int32: how many ulps each element moves."""
  return jnp.round(sigma * rng.normal(key, shape, jnp.float32)).astype(jnp.int32)


def move_ulps(g: jax.Array, k: jax.Array) -> jax.Array:
  """g moved by k of its own ulps on the bit pattern, away from 0 for k > 0: |g|'s bits + k, clipped to
  [0, largest finite], sign kept; zeros, infinities and NaNs unchanged (and subnormals, on backends that
  treat them as zero, such as XLA:CPU)."""
  if g.dtype != jnp.float32:
    raise TypeError(f"move_ulps works on float32, got {g.dtype}")
  bits = lax.bitcast_convert_type(g, jnp.int32)
  magnitude = jnp.clip((bits & 0x7FFFFFFF) + k, 0, 0x7F7FFFFF)
  moved = lax.bitcast_convert_type((bits & jnp.int32(-2 ** 31)) | magnitude, jnp.float32)
  return jnp.where(jnp.isfinite(g) & (g != 0), moved, g)


def add_rounding_noise(key: jax.Array, grads, sigma: float):
  """Every element moved by round(N(0, sigma)) ulps, each leaf from the stream of its path below `key`."""
  return rng.per_path(key, grads, lambda k, _, g: move_ulps(g, ulp_moves(k, g.shape, sigma)))


def apply_to_grads(grads, step_key: jax.Array, breakers: GradBreakers):
  """The gradient breakers in a fixed order (grad_noise, then rounding_noise's ulp mode); off ones add no
  operation. The reorder mode acts inside the backward pass (see `reordering`)."""
  if breakers.grad_noise:
    grads = add_grad_noise(rng.stream(step_key, "grad_noise"), grads, breakers.grad_noise)
  if breakers.rounding_ulps:
    grads = add_rounding_noise(rng.stream(step_key, "rounding_noise"), grads, breakers.rounding_ulps)
  return grads


def reordering(step_key: jax.Array, breakers: GradBreakers):
  """The context the forward and backward pass run in: the reorder mode's layers.reordered, or nothing."""
  if breakers.reorder is None:
    return contextlib.nullcontext()
  return layers.reordered(breakers.reorder, rng.stream(step_key, "rounding_noise"))
