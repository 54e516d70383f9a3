"""The command line of launch.py and of the instruments that train from a config (zerodiverse.lyapunov):
--config (a config file and variant, with typed --config.field overrides) and --workdir, and a parser that
turns a bad config file or override into one line on stderr and exit 2 instead of a traceback."""

import re
import sys

from absl import flags
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:variant]).",
                                         lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config, metrics, checkpoints and summary.")
flags.mark_flags_as_required(["config", "workdir"])
_CONFIG_SPEC = []  # the --config value as given, for error messages


def length_from_command_line(config, args) -> None:
  """--config.train.steps=N on a config that trains for epochs (or the other way round) wins: the field the
  command line sets > 0 is the training length, and the other one is set to 0."""
  given = {field for field in ("steps", "epochs")
           if any(a.split("=")[0] == f"--config.train.{field}" for a in args)}
  if len(given) == 1:
    field = given.pop()
    if (config.train[field] or 0) > 0:
      config.train["epochs" if field == "steps" else "steps"] = 0


def parse_flags(argv):
  """absl's parser, but a bad config file or override is one line on stderr and exit 2, not a traceback."""
  _CONFIG_SPEC[:] = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")] or \
                    [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
  from zerodiverse.defaults import RENAMED  # pylint: disable=g-import-not-at-top
  for arg in argv:
    field = arg.split("=", 1)[0][len("--config."):] if arg.startswith("--config.") else None
    if field in RENAMED:
      print(f"error: --config.{field}: {RENAMED[field]}", file=sys.stderr)
      sys.exit(2)
  try:
    rest = flags.FLAGS(argv)
    "seed" in CONFIG.value  # pylint: disable=pointless-statement  (config files load lazily: fail here)
    return rest
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError, SyntaxError) as e:  # config_flags
    message = _config_file_error(e)
  print(f"error: {_one_line(message)}; see --helpshort", file=sys.stderr)
  sys.exit(2)


def _config_file_error(e: Exception) -> str:
  """What went wrong loading --config: the file and line of a syntax error, the variants a file offers."""
  if isinstance(e, SyntaxError):
    return f"{e.filename}:{e.lineno}: {e.msg} (a syntax error in the config file)"
  cause = e.__cause__ or e.__context__
  if isinstance(cause, SyntaxError):
    return _config_file_error(cause)
  message = str(e) if isinstance(e, flags.Error) else str(e.args[0] if e.args else e)
  spec = _CONFIG_SPEC[0] if _CONFIG_SPEC else ""
  if "positional argument" in message and ":" in spec:
    path, variant = spec.rsplit(":", 1)
    offered = variants(path)
    return (f"{path} has no variant {variant!r}; " +
            (f"its variants: {', '.join(offered)}" if offered else f"it takes none: --config {path}"))
  return message


def variants(path: str) -> list:
  """The variants a config file's docstring names (`configs/NAME.py:VARIANT`)."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return []
  name = re.escape(path.split("/")[-1])
  return sorted(set(re.findall(rf"configs/{name}:([a-z0-9_]+)", text)))


def _one_line(message: str) -> str:
  """The gist of a config_flags error: the last line of a traceback, a misspelt field with its suggestion."""
  message = message.replace("\\n", "\n").replace("\\'", "'")
  if "Traceback" in message:
    message = message.strip().splitlines()[-1]
  typo = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', message)
  if typo:
    return f"--config override names no field {typo.group(2)!r} (did you mean {typo.group(1)!r}?)"
  return " ".join(message.split())
