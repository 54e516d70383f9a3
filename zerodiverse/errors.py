"""Errors caused by the user's input, reported by launch.py as one line and a non-zero exit."""


class UserError(ValueError):
  """Bad config, missing data, an occupied workdir, a diverged run: the message says what and how to fix it."""


class ConfigError(UserError):
  pass


class DataError(UserError):
  pass


class WorkdirError(UserError):
  pass


class Diverged(UserError):
  pass


class UnreadableCheckpoint(Exception):
  """A checkpoint that a reader could not read (damaged or incomplete); the message is its reason, in one line.
  Not a UserError: the run sets the step aside and resumes from an older one."""


def one_line(error: BaseException) -> str:
  """An exception's class and the start of its first line, for messages that must stay on one line."""
  first = str(error).splitlines()[0][:120] if str(error) else ""
  return f"{error.__class__.__name__}: {first}" if first else error.__class__.__name__
