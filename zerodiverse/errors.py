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
