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
- `rounding_noise`: every step, g <- g * (1 + u * r), u ~ Uniform[-1, 1] independently per element, r =
  `rounding_noise_scale` (default 2^-24, half a float32 ulp at 1.0; float32 round-to-nearest has relative
  error at most 2^-24).

What `rounding_noise` models: the run-to-run differences of nondeterministic GPU reductions (atomic adds in
a different order each run), whose result differs from the exact sum by a few float32 roundings, i.e. a
relative perturbation of order 2^-24 per gradient element, different for different channels. That is the
one property that matters for symmetry: identical channels receive gradients that
are no longer bitwise identical. It is plain arithmetic on keys, so it runs the same on CPU, GPU and TPU.

What it does not model: real reduction errors are (a) not independent per element (they are correlated
along a reduction, depend on the magnitudes of the summands and can be many ulps for long sums with
cancellation), (b) not only in the weight gradients (forward activations, BatchNorm statistics and the
backward pass through activations are perturbed too, and compound within a step), (c) not uniform (a
rounding error is a discrete multiple of an ulp, possibly 0), and (d) not keyed: a nondeterministic run
cannot be replayed, while this one is bitwise reproducible from the seed. It is a lower bound on the
perturbation of the real thing, applied at one place.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from zerodiverse import models, rng
from zerodiverse.errors import ConfigError

ROUNDING_DISTRIBUTION = "uniform[-1, 1]"
NAMES = ("init_noise", "grad_noise", "dropout", "stem_dropout", "rounding_noise")
DEFAULT_ROUNDING_SCALE = 2.0 ** -24


def switched_on(breaker) -> list:
  """[(name, scale)] of the breakers `breaker` (config.breaker, or its dict) switches on, in NAMES order;
  rounding_noise's scale is its r."""
  return [(k, float(breaker.get("rounding_noise_scale", DEFAULT_ROUNDING_SCALE)) if k == "rounding_noise"
           else float(breaker[k])) for k in NAMES if breaker.get(k)]


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
  """The per-step gradient-space breakers; 0 = off."""
  grad_noise: float = 0.0
  rounding_noise: float = 0.0  # r; 0 = off


def grad_breakers(config) -> GradBreakers:
  """The gradient breakers of `config.breaker` (grad_noise eps, rounding_noise on/off and its scale)."""
  b = config.breaker
  eps = float(b.get("grad_noise", 0.0))
  if eps < 0:
    raise ConfigError(f"config.breaker.grad_noise={eps}: a noise scale >= 0 (0 = off)")
  r = 0.0
  if b.get("rounding_noise", False):
    r = dict(switched_on(b))["rounding_noise"]
    if not 0 < r < 1:
      raise ConfigError(f"config.breaker.rounding_noise_scale={r}: a relative scale in (0, 1), e.g. 2**-24")
  return GradBreakers(eps, r)


def add_grad_noise(key: jax.Array, grads, eps: float):
  """g + eps * N(0, 1), each leaf from the stream of its path below `key`."""
  return rng.per_path(key, grads, lambda k, _, g: g + (eps * jax.random.normal(k, g.shape, jnp.float32)).astype(g.dtype))


def rounding_factors(key: jax.Array, grads, r: float):
  """The factors 1 + u * r, u ~ Uniform[-1, 1], that `add_rounding_noise` multiplies into the gradients."""
  return rng.per_path(key, grads, lambda k, _, g: 1 + r * jax.random.uniform(k, g.shape, jnp.float32, -1.0, 1.0))


def add_rounding_noise(key: jax.Array, grads, r: float):
  """g * (1 + u * r), u ~ Uniform[-1, 1], each leaf from the stream of its path below `key`."""
  factors = rounding_factors(key, grads, r)
  return jax.tree_util.tree_map(lambda g, f: (g * f).astype(g.dtype), grads, factors)


def apply_to_grads(grads, step_key: jax.Array, breakers: GradBreakers):
  """The gradient breakers in a fixed order (grad_noise, then rounding_noise); off ones add no operation."""
  if breakers.grad_noise:
    grads = add_grad_noise(rng.stream(step_key, "grad_noise"), grads, breakers.grad_noise)
  if breakers.rounding_noise:
    grads = add_rounding_noise(rng.stream(step_key, "rounding_noise"), grads, breakers.rounding_noise)
  return grads
