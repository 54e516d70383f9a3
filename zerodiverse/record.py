"""What makes a run reproducible: the parameter fingerprint, versions, device, and the summary file."""

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import sys

import jax
import numpy as np

from zerodiverse import symmetry
from zerodiverse.rng import path_name

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml-collections", "numpy",
            "tensorflow-datasets", "torch")


def param_fingerprint(params) -> str:
  """sha256 over every leaf in tree-flatten order (sorted keys): its path, dtype, shape and raw bytes."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f"{path_name(path)}|{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def versions() -> dict:
  found = {"python": sys.version.split()[0], "platform": platform.platform()}
  for name in PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def device() -> dict:
  devices = jax.devices()
  return {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices),
          "host_cpus": os.cpu_count()}


def strict(obj):
  """`obj` with every NaN or infinite float as None: strict JSON, which has no NaN or Infinity."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: strict(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict(v) for v in obj]
  return obj


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically (a reader never sees half a file), as strict JSON."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(strict(obj), f, indent=2, sort_keys=True, allow_nan=False)
    f.write("\n")
  os.replace(tmp, path)


def run_summary(config, params, records: list, num_steps: int, steps_per_epoch: int, wall_seconds: float,
                data_source: str, determinism: dict, device: dict, resumed_from: int,
                breaking_threshold: float = symmetry.THRESHOLD, break_accuracy: float = symmetry.ACCURACY_THRESHOLD,
                break_epochs_above: int = symmetry.EPOCHS_ABOVE) -> dict:
  """summary.json of a finished run, for either backend: `params` in Flax names and layout, `records` the
  run's metrics.jsonl (its last "test" record is the final evaluation). The symmetry fields come from the
  records alone (zerodiverse/symmetry.py); the thresholds they use are written beside them."""
  evals = [r for r in records if r["split"] == "test"]
  probes = [r for r in records if r["split"] == "symmetry"]
  breaking = symmetry.breaking_steps(probes, breaking_threshold)
  return {
      "final_test_accuracy": evals[-1]["accuracy"],
      "final_test_loss": evals[-1]["loss"],
      "best_test_accuracy": max(r["accuracy"] for r in evals),
      "steps": num_steps,
      "epochs": num_steps / steps_per_epoch,
      "wall_seconds": wall_seconds,
      "param_fingerprint": param_fingerprint(params),
      "distinct_channels": symmetry.distinct_channels(params),
      "functional_channels": symmetry.functional_channels(probes),
      "symmetry_breaking_step": breaking,
      "symmetry_breaking": symmetry.breaking_summary(breaking),
      "symmetry_threshold": breaking_threshold,
      "symmetry_break_epoch": symmetry.break_epoch(evals, steps_per_epoch, break_accuracy, break_epochs_above),
      "symmetry_break_rule": {"accuracy_above": break_accuracy, "epochs_more_than": break_epochs_above},
      "seed": config.seed,
      "model": config.model.to_dict(),
      "breaker": config.breaker.to_dict(),
      "data": data_source,
      "determinism": determinism,
      "versions": versions(),
      "device": device,
      "resumed_from_step": resumed_from or None,
  }
