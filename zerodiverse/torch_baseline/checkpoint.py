"""Torch checkpoints: one file per step (WORKDIR/checkpoints/step_N.pt) of plain state dicts and numbers,
written atomically and read back with torch.load(weights_only=True) (no pickled code is ever executed)."""

import os
import re

import torch

_NAME = re.compile(r"^step_(\d+)\.pt$")


class Checkpointer:

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory, self.max_to_keep = directory, max_to_keep
    os.makedirs(directory, exist_ok=True)

  def steps(self) -> list[int]:
    return sorted(int(m.group(1)) for m in map(_NAME.match, os.listdir(self.directory)) if m)

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def path(self, step: int) -> str:
    return os.path.join(self.directory, f"step_{step}.pt")

  def save(self, step: int, tree: dict) -> None:
    tmp = self.path(step) + ".tmp"
    torch.save(tree, tmp)
    os.replace(tmp, self.path(step))
    for old in self.steps()[:-self.max_to_keep]:
      os.remove(self.path(old))

  def restore(self, step: int, map_location=None) -> dict:
    return torch.load(self.path(step), map_location=map_location, weights_only=True)

  def close(self) -> None:
    """Saves are synchronous: nothing is left to wait for."""
