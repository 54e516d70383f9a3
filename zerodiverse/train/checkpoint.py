"""Orbax checkpoints of the whole run state: params, optimizer state, batch stats, step, keys, data position."""

import contextlib
import logging
import os
import sys

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = directory
    with _absl_quiet():  # a damaged step's warning; restore says what is wrong with it
      self.manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep))

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: dict) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, step: int, like: dict) -> dict:
    """The checkpoint at `step`, with the structure, shapes and dtypes of `like`."""
    if not os.listdir(self.path(step)):
      raise FileNotFoundError(f"{self.path(step)} is empty")  # said here: orbax would log a warning first
    _drop_late_reports_of_failed_restores()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    _FAILED_RESTORES.add(self.path(step))  # before: some of those reports come while the restore fails
    with _absl_quiet():
      restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    _FAILED_RESTORES.discard(self.path(step))
    return restored

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


# Step folders whose restore failed (or is under way). When one array's read fails, the reads of the others
# still in flight fail too, later, in tensorstore's threads and asyncio's tasks: each would print a traceback
# ("Event loop is closed": they call back into the event loop orbax has closed; "Task exception was never
# retrieved", naming the folder) for a failure the caller reports anyway, in one line.
_FAILED_RESTORES = set()


def _drop_late_reports_of_failed_restores() -> None:
  """From its first restore on, this process drops exactly those reports; every other unraisable exception
  and asyncio log still reaches the hook and handlers that were there before."""
  previous = sys.unraisablehook
  if not getattr(previous, "drops_callbacks_into_a_closed_loop", False):

    def hook(unraisable):
      error = unraisable.exc_value
      if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
        previous(unraisable)

    hook.drops_callbacks_into_a_closed_loop = True
    sys.unraisablehook = hook
  asyncio_logger = logging.getLogger("asyncio")
  if not any(isinstance(f, _LateReadFailures) for f in asyncio_logger.filters):
    asyncio_logger.addFilter(_LateReadFailures())


class _LateReadFailures(logging.Filter):

  def filter(self, record):
    message = record.getMessage()
    return not (message.split("\n", 1)[0].endswith("exception was never retrieved") and  # a Task's or Future's
                any(path in message for path in _FAILED_RESTORES))


@contextlib.contextmanager
def _absl_quiet():
  """Mutes orbax's warnings about a damaged step (a missing metadata file): the run says what it does about it."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)
