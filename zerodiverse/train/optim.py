"""The paper's optimizer: SGD, momentum 0.9 (no Nesterov), weight decay coupled (added to the gradient
before momentum, as PyTorch's SGD does) on every parameter, and a step schedule."""

import optax
from zerodiverse.errors import ConfigError


def schedule(cfg, total_steps: int) -> optax.Schedule:
  """lr, multiplied by `lr_drop_factor` at each fraction `lr_drop_at` of the total steps."""
  boundaries = {}
  for fraction in cfg.lr_drop_at:
    if not 0 < fraction < 1:
      raise ConfigError(f"config.train.lr_drop_at={tuple(cfg.lr_drop_at)}: every entry must be a fraction in (0, 1)")
    step = int(round(fraction * total_steps))
    boundaries[step] = boundaries.get(step, 1.0) * cfg.lr_drop_factor
  return optax.piecewise_constant_schedule(cfg.lr, boundaries)


def make(cfg, total_steps: int) -> optax.GradientTransformation:
  return optax.chain(
      optax.add_decayed_weights(cfg.weight_decay),
      optax.sgd(schedule(cfg, total_steps), momentum=cfg.momentum, nesterov=False),
  )
