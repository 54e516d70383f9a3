"""The paper's optimizer: SGD, momentum 0.9 (no Nesterov), weight decay coupled (added to the gradient
before momentum, as PyTorch's SGD does) on every parameter, and a step schedule.

The learning rate is an input of the train step, evaluated from the schedule on the host: one compiled step
then serves every learning rate, schedule and length of training."""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from zerodiverse.errors import ConfigError

Optimizer = Callable[[jax.typing.ArrayLike], optax.GradientTransformation]


def schedule(cfg, total_steps: int) -> optax.Schedule:
  """lr, multiplied by `lr_drop_factor` at each fraction `lr_drop_at` of the total steps."""
  boundaries = {}
  for fraction in cfg.lr_drop_at:
    if not 0 < fraction < 1:
      raise ConfigError(f"config.train.lr_drop_at={tuple(cfg.lr_drop_at)}: every entry must be a fraction in (0, 1)")
    step = int(round(fraction * total_steps))
    boundaries[step] = boundaries.get(step, 1.0) * cfg.lr_drop_factor
  return optax.piecewise_constant_schedule(cfg.lr, boundaries)


def learning_rates(cfg, total_steps: int) -> np.ndarray:
  """The schedule's float32 value at every step, computed as optax computes it inside a step."""
  return np.asarray(jax.jit(schedule(cfg, total_steps))(jnp.arange(total_steps, dtype=jnp.int32)))


def make(cfg) -> Optimizer:
  """The update rule at a given learning rate (a traced scalar inside the step). The rate enters as a constant
  schedule so that the optimizer state keeps optax's step count, as with the schedule itself."""
  def at(lr):
    return optax.chain(
        optax.add_decayed_weights(cfg.weight_decay),
        optax.sgd(lambda count: lr, momentum=cfg.momentum, nesterov=False),
    )
  return at
