"""Runs an experiment config: one training run, or a sweep when the config has `arms`.

  python launch.py --config configs/quickstart.py --workdir workdirs/quickstart
  python launch.py --config configs/constnet_cifar10.py:smoke --workdir W --config.data.dir=DIR

Overrides are typed and checked against the config (`--config.model.depth=10`); a misspelt field is an
error. Re-running the same command in the same workdir resumes from the last checkpoint.
"""

import sys

from absl import app, flags, logging

from zerodiverse import cli

_WORKERS = flags.DEFINE_integer("workers", 1, "Sweeps only: arms run in parallel processes.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; overrides look like --config.train.steps=100")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  config = cli.CONFIG.value
  cli.length_from_command_line(config, sys.argv[1:])
  if "arms" in config or "grid" in config:
    from zerodiverse import sweep  # pylint: disable=g-import-not-at-top
    from zerodiverse.errors import UserError  # pylint: disable=g-import-not-at-top
    try:
      return sweep.run(config, cli.WORKDIR.value, _WORKERS.value)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  from zerodiverse import run  # pylint: disable=g-import-not-at-top
  return run.main(config, cli.WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
