"""config.backend picks the framework that trains a run: "jax" (zerodiverse.train) or "torch" (the PyTorch
twin, zerodiverse.torch_baseline, which needs the `torch` extra). Every other config field means the same."""

from zerodiverse.errors import ConfigError

NAMES = ("jax", "torch")


def check(config) -> str:
  name = config.get("backend", "jax")
  if name not in NAMES:
    raise ConfigError(f"config.backend={name!r} is not one of {NAMES}; set --config.backend=jax or torch")
  return name


def train_and_evaluate(config, workdir: str) -> dict:
  """Runs `config` in `workdir` with the trainer of config.backend; call after determinism.apply."""
  if check(config) == "torch":
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError as e:
      raise ConfigError("config.backend='torch' needs PyTorch: pip install -e '.[torch]'") from e
    from zerodiverse.torch_baseline import trainer  # pylint: disable=g-import-not-at-top
  else:
    from zerodiverse.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.train_and_evaluate(config, workdir)
