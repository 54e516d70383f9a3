"""What makes a run reproducible: the parameter fingerprint, versions, device, and the summary file."""

import hashlib
import importlib.metadata
import json
import os
import platform
import sys

import jax
import numpy as np

from zerodiverse.inits.perturb import path_name

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


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically (a reader never sees half a file)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)
