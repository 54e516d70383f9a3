"""Symmetry breakers, each switched on only through the config and drawing from its own key stream.

`init_noise`: eps * N(0, 1) * scale added at init to the chosen parameter groups (see inits.perturb).
Residual-branch dropout (`breaker.dropout`) is built into the model and draws from the "dropout" stream.
"""

import dataclasses
from typing import Callable

from zerodiverse import models
from zerodiverse.errors import ConfigError


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
