"""Model registry: `config.model.name` names a module here with `build(cfg, num_classes)`."""

import importlib
from zerodiverse.errors import ConfigError

NAMES = ("constnet", "leakynet", "mlp", "wrn", "resnet18", "resnet50")


def _module(name: str):
  if name not in NAMES:
    raise ConfigError(f"config.model.name={name!r} is not a model; choose one of {NAMES}")
  return importlib.import_module(f"zerodiverse.models.{name}")


def build(cfg, num_classes: int, dropout: float = 0.0):
  """The Flax module that `cfg` (config.model) describes, with residual-branch dropout at `dropout`."""
  return _module(cfg.name).build(cfg, num_classes, dropout)


def groups(model_name: str) -> tuple:
  """The named parameter groups of a model (what init noise and reports can select)."""
  return _module(model_name).GROUPS


def param_group(model_name: str, path: str) -> str:
  """The named part of the model that a parameter path belongs to (for breakers and reports)."""
  return _module(model_name).param_group(path)
