"""Model registry: `config.model.name` names a module here with `build(cfg, num_classes)`."""

import importlib
from zerodiverse.errors import ConfigError
from zerodiverse.models import batchnorm

NAMES = ("constnet", "leakynet", "mlp", "wrn", "resnet18", "resnet50")


def _module(name: str):
  if name not in NAMES:
    raise ConfigError(f"config.model.name={name!r} is not a model; choose one of {NAMES}")
  return importlib.import_module(f"zerodiverse.models.{name}")


def build(cfg, num_classes: int, dropout: float = 0.0, stem_dropout: float = 0.0):
  """The Flax module that `cfg` (config.model) describes, with the dropout breakers built into the model:
  `dropout` (ConstNet's residual branches, LeakyNet's block layers) and `stem_dropout` (ConstNet only)."""
  if not stem_dropout:
    return _module(cfg.name).build(cfg, num_classes, dropout)
  if cfg.name != "constnet":
    raise ConfigError(f"config.breaker.stem_dropout={stem_dropout}: only constnet has a stem dropout; set it to 0")
  return _module(cfg.name).build(cfg, num_classes, dropout, stem_dropout)


def for_run(config, num_classes: int):
  """The model of a run (config.model with config.breaker's dropouts), checked against config.train."""
  model = build(config.model, num_classes, config.breaker.dropout, config.breaker.get("stem_dropout", 0.0))
  batchnorm.check_batch(config.model.get("bn_group_size", 0) or 0, config.train.batch_size)
  return model


def groups(model_name: str) -> tuple:
  """The named parameter groups of a model (what init noise and reports can select)."""
  return _module(model_name).GROUPS


def param_group(model_name: str, path: str) -> str:
  """The named part of the model that a parameter path belongs to (for breakers and reports)."""
  return _module(model_name).param_group(path)
