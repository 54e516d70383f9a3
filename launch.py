"""Runs an experiment config: one training run, or a sweep when the config has `arms`.

  python launch.py --config configs/quickstart.py --workdir workdirs/quickstart
  python launch.py --config configs/constnet_cifar10.py:smoke --workdir W --config.data.dir=DIR

Overrides are typed and checked against the config (`--config.model.depth=10`); a misspelt field is an
error. Re-running the same command in the same workdir resumes from the last checkpoint.
"""

import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config, metrics, checkpoints and summary.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Sweeps only: arms run in parallel processes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; overrides look like --config.train.steps=100")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config = _CONFIG.value
  from zerodiverse.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    if "arms" in config or "grid" in config:
      from zerodiverse import sweep  # pylint: disable=g-import-not-at-top
      return sweep.run(config, _WORKDIR.value, _WORKERS.value)
    # Determinism flags and jax.distributed must come before JAX creates its backend, before anything else.
    from zerodiverse import process  # pylint: disable=g-import-not-at-top
    process.start(config)
    from zerodiverse import backends  # pylint: disable=g-import-not-at-top
    summary = backends.train_and_evaluate(config, _WORKDIR.value)  # config.backend: jax or torch
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"final test accuracy {summary['final_test_accuracy']:.4f} (best {summary['best_test_accuracy']:.4f}), "
        f"{summary['steps']} steps in {summary['wall_seconds']:.0f}s, fingerprint {summary['param_fingerprint'][:16]}")
  return 0


def parse_flags(argv):
  """absl's parser, but a bad config file or override is one line on stderr and exit 2, not a traceback."""
  try:
    rest = flags.FLAGS(argv)
    "seed" in _CONFIG.value  # pylint: disable=pointless-statement  (config files load lazily: fail here)
    return rest
  except flags.Error as e:
    message = str(e)
  except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:  # from config_flags
    message = str(e.args[0] if e.args else e)
  print(f"error: {_one_line(message)}; see --helpshort", file=sys.stderr)
  sys.exit(2)


def _one_line(message: str) -> str:
  """The gist of a config_flags error: the last line of a traceback, a misspelt field with its suggestion."""
  message = message.replace("\\n", "\n").replace("\\'", "'")
  if "Traceback" in message:
    message = message.strip().splitlines()[-1]
  typo = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', message)
  if typo:
    return f"--config override names no field {typo.group(2)!r} (did you mean {typo.group(1)!r}?)"
  return " ".join(message.split())


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
