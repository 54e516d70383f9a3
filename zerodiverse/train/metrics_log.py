"""Metrics as one JSON object per line in WORKDIR/metrics.jsonl."""

import json
import os


class MetricsLog:

  def __init__(self, path: str):
    self.path = path

  def records(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_after(self, step: int) -> None:
    """Drops records past `step`: a resumed run re-logs the steps it recomputes after its checkpoint."""
    kept = [r for r in self.records() if r["step"] <= step]
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)

  def write(self, record: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
