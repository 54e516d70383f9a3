"""Burkholz & Dubatovka (NeurIPS 2019) looks-linear initialization: mirrored weights so a ReLU net is linear at init.

Since relu(g) - relu(-g) = g, a layer that feeds [z; -z] into a ReLU and reads the two halves with opposite
signs passes z through unchanged. In math layout (out x in) the kernels are
  first  [U; -U]               (outputs stacked; out = 2n, U is n x in),
  hidden [[U, -U], [-U, U]]    (in = 2m, out = 2n, U is n x m),
  last   [U, -U]               (in = 2m, U is out x m),
so the net computes U_L ... U_1 x at init; with square orthogonal U every singular value of the input-output
Jacobian is exactly 1. Here kernels are in Flax layout (in, out), i.e. the transposes of the above.

Mirrored halves are paired by position: unit j pairs with unit j + n. Odd widths cannot be mirrored and raise
ConfigError (no unpaired unit is added: it would make the net non-linear at init and break the isometry).
Convolutions get the mirrored matrix at the centre tap only (all other taps 0), so a conv starts as a 1x1
channel map and the spatial Jacobian stays block diagonal; a full random kernel would not be an isometry.
Biases: `mirrored_bias(base)` gives [b; -b] (0 by default in the models).
"""

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from zerodiverse.errors import ConfigError
from zerodiverse.inits.initializers import Initializer, _centre_tap

POSITIONS = ("first", "hidden", "last")
BASES = ("orthogonal", "gaussian")


def base_matrix(key, n_in: int, n_out: int, base: str = "orthogonal", scale: float = 1.0) -> jax.Array:
  """U in Flax layout (n_in, n_out): (semi-)orthogonal times `scale`, or N(0, scale^2 / n_in)."""
  if base == "orthogonal":
    return jinit.orthogonal(scale)(key, (n_in, n_out), jnp.float32)
  if base == "gaussian":
    return scale * jax.random.normal(key, (n_in, n_out), jnp.float32) / jnp.sqrt(n_in)
  raise ConfigError(f"looks_linear base={base!r}; choose one of {BASES}")


def mirror(u: jax.Array, position: str) -> jax.Array:
  """The looks-linear kernel (Flax layout) built from U (Flax layout) for a layer at `position`."""
  if position == "first":
    return jnp.concatenate([u, -u], axis=1)
  if position == "hidden":
    return jnp.block([[u, -u], [-u, u]])
  if position == "last":
    return jnp.concatenate([u, -u], axis=0)
  raise ConfigError(f"looks_linear position={position!r}; choose one of {POSITIONS}")


def _halves(shape, position: str) -> tuple:
  """(n_in, n_out) of U for a kernel of `shape`, or ConfigError if a mirrored side is odd."""
  n_in, n_out = shape[-2], shape[-1]
  if position in ("hidden", "last") and n_in % 2:
    raise ConfigError(f"looks_linear ({position}) needs an even number of inputs, got kernel shape {tuple(shape)}")
  if position in ("first", "hidden") and n_out % 2:
    raise ConfigError(f"looks_linear ({position}) needs an even number of outputs, got kernel shape {tuple(shape)}")
  return (n_in // 2 if position != "first" else n_in), (n_out // 2 if position != "last" else n_out)


def looks_linear(position: str = "hidden", base: str = "orthogonal", scale: float = 1.0) -> Initializer:
  """The looks-linear initializer for a dense or conv kernel at `position` (first, hidden, last)."""
  if position not in POSITIONS:
    raise ConfigError(f"looks_linear position={position!r}; choose one of {POSITIONS}")
  if base not in BASES:
    raise ConfigError(f"looks_linear base={base!r}; choose one of {BASES}")

  def init(key, shape, dtype=jnp.float32):
    n_in, n_out = _halves(shape, position)
    return _centre_tap(shape, mirror(base_matrix(key, n_in, n_out, base, scale), position), dtype)

  return init


def mirrored_bias(base: Initializer = jinit.zeros) -> Initializer:
  """[b; -b] for a bias of even length, b drawn from `base`."""

  def init(key, shape, dtype=jnp.float32):
    if shape[-1] % 2:
      raise ConfigError(f"a mirrored bias needs an even length, got shape {tuple(shape)}")
    b = base(key, (shape[-1] // 2,), dtype)
    return jnp.concatenate([b, -b])

  return init
