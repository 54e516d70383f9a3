"""How symmetric a network is: the number of bitwise-distinct feature channels of each layer."""

import numpy as np

from zerodiverse.inits.perturb import path_name

import jax


def distinct_slices(array, axis: int) -> int:
  """The number of bitwise-distinct slices of `array` along `axis` (1 = all identical)."""
  a = np.moveaxis(np.asarray(array), axis, 0)
  rows = np.ascontiguousarray(a.reshape(a.shape[0], -1)).view(np.uint8).reshape(a.shape[0], -1)
  return len(np.unique(rows, axis=0))


def distinct_channels(params, head: str = "head") -> dict:
  """{layer path: distinct feature channels} for every kernel of rank >= 2.

  A kernel's feature channels are its output channels (last axis), except the classifier `head`, whose
  features are its input rows (its outputs are the classes, which are not symmetric features).
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = path_name(path)
    if np.ndim(leaf) < 2 or not name.endswith("kernel"):
      continue
    layer = name[:-len("/kernel")]
    out[layer] = distinct_slices(leaf, 0 if layer == head else -1)
  return out
