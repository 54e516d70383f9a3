"""config.backend picks the framework that trains a run: "jax" (zerodiverse.train) or "torch" (the PyTorch
twin, zerodiverse.torch_baseline, which needs the `torch` extra). Every other config field means the same.

A backend is a class built as `Backend(config, dataset, stream, num_steps)` that holds the run's state and
supplies what zerodiverse.run cannot do without a framework: `train_step(step)` (metrics with "loss",
"accuracy", "grad_norm", "finite"), `evaluate()`, `lr(step)`, `host(value)`, `host_variables()` (params and
batch stats in Flax names and layout), `open_checkpoints(dir)` (`steps()`, `path(step)`, `close()`),
`save(ckpts, step, wall_seconds)`, `restore(ckpts, step)` (returns the wall seconds), `determinism()`,
`device()`, `summary_fields()` and the class method `is_writer()`.
"""

import os

from zerodiverse.errors import ConfigError

NAMES = ("jax", "torch")


def check(config) -> str:
  name = config.get("backend", "jax")
  if name not in NAMES:
    raise ConfigError(f"config.backend={name!r} is not one of {NAMES}; set --config.backend=jax or torch")
  if name == "torch":
    # These breakers draw from JAX key streams inside the JAX step; the twin has no equivalent.
    for field, off in (("grad_noise", 0.0), ("rounding_noise", False), ("stem_dropout", 0.0)):
      if config.breaker.get(field, off) != off:
        raise ConfigError(f"config.breaker.{field}={config.breaker[field]} is not available with "
                          "config.backend='torch' (its symmetry is broken by GPU kernels); set it off or use jax")
    if config.data.name == "imagenet2012":
      raise ConfigError("config.data.name='imagenet2012' is not available with config.backend='torch' (the twin "
                        "reads the in-memory data sets: digits, cifar10, cifar100); use config.backend='jax'")
    if config.parallel.get("num_devices", 0) > 1:
      raise ConfigError(f"config.parallel.num_devices={config.parallel.num_devices}: config.backend='torch' runs "
                        "on one device; set it to 0 or 1, or use config.backend='jax'")
  return name


def load(name: str):
  """The backend class of config.backend=`name` (imported only when asked for)."""
  if name not in NAMES:
    raise ConfigError(f"config.backend={name!r} is not one of {NAMES}; set --config.backend=jax or torch")
  if name == "torch":
    # JAX only computes the initial numbers there: leave the GPU's memory to torch (before JAX's backend starts).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError as e:
      raise ConfigError("config.backend='torch' needs PyTorch: pip install -e '.[torch]'") from e
    from zerodiverse.torch_baseline import trainer  # pylint: disable=g-import-not-at-top
    return trainer.TorchBackend
  from zerodiverse.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.JaxBackend
