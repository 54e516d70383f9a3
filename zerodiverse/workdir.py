"""A run's workdir: one process at a time (a lock), one config (config.json), one data set (data.json).

The lock is an flock on WORKDIR/lock, so the kernel releases it when the holder dies, however it dies; the
file names the holder (host, pid, start time) for the message a second process prints.
"""

import datetime
import errno
import fcntl
import hashlib
import json
import os
import socket

import numpy as np

from zerodiverse import record
from zerodiverse.errors import WorkdirError

# Fields that may change when a run resumes: where it runs, not what it computes.
RESUMABLE_ELSEWHERE = ("parallel",)
LOCK = "lock"


def make(workdir: str) -> None:
  """Creates `workdir`, or a WorkdirError naming what is in the way."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f"--workdir={workdir} is a file, not a folder; choose another --workdir")
  os.makedirs(workdir, exist_ok=True)


class Lock:
  """Held for the life of a run; `Lock(workdir).acquire()` fails at once, naming the holder, if taken."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK)
    self.fd = None

  def acquire(self) -> "Lock":
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      raise WorkdirError(f"--workdir={os.path.dirname(self.path)} is in use by {holder(self.path)}; wait for "
                         "it to finish or stop it, or choose another --workdir") from None
    os.ftruncate(fd, 0)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": started}).encode())
    self.fd = fd
    return self

  def release(self) -> None:
    if self.fd is not None:
      os.close(self.fd)  # closing drops the flock
      self.fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def holder(path: str) -> str:
  """'pid 123 on host h (since ...)' from a lock file, as well as it can be read."""
  try:
    with open(path) as f:
      h = json.load(f)
    return f"pid {h['pid']} on host {h['host']} (since {h['started']})"
  except (OSError, ValueError, KeyError, TypeError):
    return "another process"


def check_free(workdir: str) -> None:
  """A WorkdirError if `workdir` is a file or a live process holds its lock; writes nothing."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    make(workdir)
  holder_now = in_use(workdir)
  if holder_now:
    raise WorkdirError(f"--workdir={workdir} is in use by {holder_now}; wait for it to finish or stop it, "
                       "or choose another --workdir")


def in_use(workdir: str) -> str | None:
  """The holder of `workdir`'s lock if a live process holds it, else None (takes nothing)."""
  path = os.path.join(workdir, LOCK)
  if not os.path.exists(path):
    return None
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # fails while a run holds it exclusively
    return None
  except OSError as e:
    if e.errno not in (errno.EAGAIN, errno.EACCES):
      raise
    return holder(path)
  finally:
    os.close(fd)


def read_json(path: str, what: str):
  """The JSON object in `path` (None if absent), or a WorkdirError saying the file is damaged."""
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise WorkdirError(f"{path} is not valid JSON ({what}; {e.__class__.__name__}); restore it, or move the "
                       "workdir aside and choose a new --workdir") from None


def claim(config, workdir: str, write: bool = True) -> None:
  """Writes config.json, or checks that the one already there is this config (resume); never overwrites.
  `write=False` only checks (before the data is read).

  A run may resume on another device count (config.parallel); it then agrees with an uninterrupted run
  within float32 tolerance rather than bitwise.
  """
  path = os.path.join(workdir, "config.json")
  resolved = json.loads(config.to_json())
  stored = read_json(path, "the config of the run in this workdir")
  if stored is None:
    if write:
      record.write_json(path, resolved)
    return
  for key in RESUMABLE_ELSEWHERE:
    stored.pop(key, None)
    resolved.pop(key, None)
  if stored != resolved:
    diff = first_difference(stored, resolved)
    raise WorkdirError(f"--workdir={workdir} holds a run with another config ({diff}); "
                       "rerun with the same config to resume it, or choose a new --workdir")


def claim_data(workdir: str, data_record: dict, write: bool = True) -> None:
  """Writes data.json (what the run reads and its fingerprint), or refuses data that changed since;
  `write=False` only checks."""
  path = os.path.join(workdir, "data.json")
  stored = read_json(path, "the fingerprint of the data this run started on")
  if stored is None:
    if write:
      record.write_json(path, data_record)
  elif stored.get("fingerprint") != data_record["fingerprint"]:
    raise WorkdirError(f"the data changed since this run started in {workdir} ({data_record['source']}: "
                       f"fingerprint {str(stored.get('fingerprint'))[:12]} then, {data_record['fingerprint'][:12]} "
                       "now); put the original files back to resume, or choose a new --workdir")


def first_difference(a, b, prefix="config") -> str:
  for key in sorted(set(a) | set(b)):
    x, y = a.get(key, "<unset>"), b.get(key, "<unset>")
    if isinstance(x, dict) and isinstance(y, dict):
      if x != y:
        return first_difference(x, y, f"{prefix}.{key}")
    elif x != y:
      return f"{prefix}.{key}: stored {x!r}, now {y!r}"
  return "no difference"


def data_record(dataset) -> dict:
  """What a run reads, with a sha256 over the arrays it holds (in memory) or the sizes of its splits
  (streamed), so a resume can tell that the files under the same data.dir were replaced."""
  digest = hashlib.sha256()
  arrays = [getattr(dataset, k, None) for k in ("train_images", "train_labels", "test_images", "test_labels")]
  if all(a is not None for a in arrays):
    for a in arrays:
      a = np.ascontiguousarray(a)
      digest.update(f"{a.dtype.str}|{a.shape}|".encode())
      digest.update(memoryview(a).cast("B"))
  else:
    digest.update(f"{len(dataset.train)}|{len(dataset.test)}".encode())
  return {"source": dataset.source, "fingerprint": digest.hexdigest()}
