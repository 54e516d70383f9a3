"""Metrics as one JSON object per line in WORKDIR/metrics.jsonl."""

import json
import os


class MetricsLog:
  """`enabled=False` (processes other than 0 of a multi-host job) reads but never writes."""

  def __init__(self, path: str, enabled: bool = True):
    self.path, self.enabled = path, enabled

  def records(self) -> list[dict]:
    """Every complete record; a last line cut off mid-write (a kill, a full disk) is not one."""
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      lines = f.read().split("\n")
    out = []
    for i, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        out.append(json.loads(line))
      except ValueError:
        if i == len(lines) - 1:  # no newline after it: the write never finished
          break
        raise
    return out

  def truncate_after(self, step: int) -> None:
    """Drops records past `step`: a resumed run re-logs the steps it recomputes after its checkpoint.

    The kept records go to a copy beside the file, which then replaces it in one rename, so a kill at any
    moment leaves either the old file or the new one, never a part of either.
    """
    if not self.enabled:
      return
    kept = [r for r in self.records() if r["step"] <= step]
    tmp = f"{self.path}.tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
