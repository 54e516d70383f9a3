"""Fixup (Zhang, Dauphin & Ma, ICLR 2019): He init rescaled so a BN-free ResNet's output variance stays O(1).

With L residual branches of m layers each, every layer but the last of a branch is He-initialized and scaled
by L^(-1/(2m-2)); the last layer of each branch and the classifier start at 0; a scalar multiplier (1) and
scalar biases (0) sit in each branch. The scalars are parameters of the models' blocks.
"""

import jax.numpy as jnp

from zerodiverse.errors import ConfigError
from zerodiverse.inits.initializers import Initializer, he_normal


def fixup_scale(num_branches: int, branch_layers: int) -> float:
  """L^(-1/(2m-2)): the factor applied to the He std of the first m-1 layers of each branch."""
  if num_branches < 1 or branch_layers < 2:
    raise ConfigError(f"Fixup needs >= 1 residual branch of >= 2 layers, got L={num_branches}, m={branch_layers}")
  return num_branches ** (-1.0 / (2 * branch_layers - 2))


def fixup(num_branches: int, branch_layers: int) -> Initializer:
  """He normal (fan-in, gain 2) times fixup_scale(L, m)."""
  scale = fixup_scale(num_branches, branch_layers)
  he = he_normal()

  def init(key, shape, dtype=jnp.float32):
    return (scale * he(key, shape, jnp.float32)).astype(dtype)

  return init
