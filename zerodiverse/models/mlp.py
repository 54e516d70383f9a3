"""A one-hidden-layer ReLU MLP: the paper's shallow model for diversity vs noise (science.md section 4).

`unique_features` = k duplicates whole hidden units: hidden unit d copies unit d mod k in both its incoming
weights (the hidden kernel's columns) and its outgoing weights (the head kernel's rows), so duplicates get
identical gradients and stay identical under exact SGD, as the paper's duplicated features do. Duplicating
only the incoming weights would not do: a random head sends each copy a different gradient. 0 = all units
distinct. Both layers draw He-normal (the hidden one from config.model.init) with zero biases.
"""

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers
from zerodiverse.errors import ConfigError


class MLP(nn.Module):
  num_classes: int
  width: int = 512
  hidden_init: str = "he_normal"  # config.model.init
  unique_features: int = 0

  def __post_init__(self):
    inits.get(self.hidden_init)  # an unknown name fails here, at build time
    if not 0 <= self.unique_features <= self.width:
      raise ConfigError(f"config.model.unique_features={self.unique_features}: must be in [0, width={self.width}]")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    hidden_init, head_init = inits.get(self.hidden_init), inits.get("he_normal")
    if self.unique_features:
      hidden_init = inits.get("k_unique", k=self.unique_features, base=hidden_init)
      head_init = _rows_tiled(self.unique_features, head_init)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(layers.Dense(self.width, kernel_init=hidden_init, name="hidden")(x))
    self.sow("intermediates", "output", x)
    return layers.Dense(self.num_classes, kernel_init=head_init, name="head")(x)


def _rows_tiled(k: int, base):
  """`base` with input row d replaced by row d mod k: the outgoing weights of duplicated hidden units."""

  def init(key, shape, dtype=jnp.float32):
    return base(key, shape, dtype)[jnp.arange(shape[0]) % k]

  return init


GROUPS = ("hidden", "head")


def param_group(name: str) -> str:
  return "head" if name.startswith("head/") else "hidden"


def build(cfg, num_classes: int, dropout: float = 0.0) -> nn.Module:
  if dropout:
    raise ConfigError(f"config.breaker.dropout={dropout}: the mlp has no residual branch; set it to 0")
  return MLP(num_classes=num_classes, width=cfg.width, hidden_init=cfg.init,
             unique_features=cfg.get("unique_features", 0))
