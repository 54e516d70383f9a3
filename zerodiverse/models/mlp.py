"""A one-hidden-layer ReLU MLP: the paper's shallow model for feature diversity vs init noise.

`unique_features` = k duplicates whole hidden units: hidden unit d copies unit d mod k in both its incoming
weights (the hidden kernel's columns) and its outgoing weights (the head kernel's rows), so copies get
identical gradients and stay bitwise identical under exact SGD, as the paper's duplicated features do.
Duplicating only the incoming weights would not do: a random head sends each copy a different gradient.
0 = all units distinct. Both layers draw He-normal (the hidden one from config.model.hidden_init), zero biases.

The head rows of a group of g copies are divided by sqrt(g). A copied unit then adds g identical terms
h_u w_u / sqrt(g) to each logit, sqrt(g) h_u w_u in all, whose variance g Var(h w) summed over the k
groups is width * Var(h w): the logits at init have the same variance for every k, as for distinct units.
Unscaled, the group would add g h_u w_u and the logits' std would grow as sqrt(g) (16x at k = 1 of 256).

Learning rate: no per-k rescaling. While the copies are identical the net is a width-k network whose unit u
has outgoing weight v_u = sqrt(g) w_u; each of the g rows takes the step -lr h_u delta, so v_u moves g times
as fast as a width-k network's head weight would at the same lr, and its incoming weights (shared, fed by a
1/sqrt(g) head row) move as with lr/g. Summed over the `width` rows, the head's tangent kernel is the same as
a width-`width` network's of distinct units (sum_d h_d h_d'), so the logits move at the full network's
pace; only the hidden layer is slowed, by the smaller head rows. We keep this, not an lr per k: after noise
separates the copies, every row is an ordinary parameter of the width-`width` network, and arms at the same
eps differ only in how many features they start with. The width-k networks (width = k, unique_features = 0)
are the control for "a network with k features trained at the same lr".
"""

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers
from zerodiverse.errors import ConfigError


class MLP(nn.Module):
  num_classes: int
  width: int = 512
  hidden_init: str = "he_normal"  # config.model.hidden_init
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
      head_init = duplicated_rows(self.unique_features, head_init)
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(layers.Dense(self.width, kernel_init=hidden_init, name="hidden")(x))
    self.sow("intermediates", "output", x)
    return layers.Dense(self.num_classes, kernel_init=head_init, name="head")(x)


def duplicated_rows(k: int, base):
  """`base` with input row d replaced by row d mod k and divided by sqrt(the number of rows sharing it)."""

  def init(key, shape, dtype=jnp.float32):
    unit = jnp.arange(shape[0]) % k
    copies = jnp.bincount(unit, length=k)[unit]
    return base(key, shape, dtype)[unit] / jnp.sqrt(copies.astype(dtype))[:, None]

  return init


GROUPS = ("hidden", "head")


def param_group(name: str) -> str:
  return "head" if name.startswith("head/") else "hidden"


def build(cfg, num_classes: int, dropout: float = 0.0) -> nn.Module:
  if dropout:
    raise ConfigError(f"config.breaker.dropout={dropout}: the mlp has no residual branch; set it to 0")
  return MLP(num_classes=num_classes, width=cfg.width, hidden_init=cfg.hidden_init,
             unique_features=cfg.get("unique_features", 0))
