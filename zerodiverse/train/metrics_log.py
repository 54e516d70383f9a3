"""Metrics as one JSON object per line in WORKDIR/metrics.jsonl."""

import json
import os


class MetricsLog:
  """`enabled=False` (processes other than 0 of a multi-host job) reads but never writes."""

  def __init__(self, path: str, enabled: bool = True):
    self.path, self.enabled = path, enabled

  def records(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_after(self, step: int) -> None:
    """Drops records past `step`: a resumed run re-logs the steps it recomputes after its checkpoint."""
    if not self.enabled:
      return
    kept = [r for r in self.records() if r["step"] <= step]
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
