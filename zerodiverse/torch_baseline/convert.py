"""Parameters between Flax and PyTorch layouts, by name: the torch twin starts from the JAX numbers.

Flax `{"stage1_block0": {"conv": {"kernel"}}}` <-> torch `"stage1_block0.conv.weight"`. Layouts: a conv
kernel (kh, kw, in, out) <-> (out, in, kh, kw); a dense kernel (in, out) <-> (out, in); BN scale/bias <->
weight/bias, batch_stats mean/var <-> running_mean/running_var. Copies are exact (no arithmetic).
"""

import numpy as np
import torch

# torch leaf name -> (Flax collection, Flax leaf name), for leaves of rank 1 (BN, dense bias, LeakyNet's b).
_VECTOR = {"bias": ("params", "bias"), "running_mean": ("batch_stats", "mean"),
           "running_var": ("batch_stats", "var")}


def _to_torch_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    return np.transpose(array, (3, 2, 0, 1))
  if array.ndim == 2:
    return array.T
  return array


def _to_flax_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    return np.transpose(array, (2, 3, 1, 0))
  if array.ndim == 2:
    return array.T
  return array


def _flax_location(torch_name: str, ndim: int) -> tuple:
  """(collection, path tuple) of the Flax leaf behind a torch state-dict entry."""
  *modules, leaf = torch_name.split(".")
  if leaf == "weight":
    collection, flax_leaf = "params", ("kernel" if ndim >= 2 else "scale")
  elif leaf in _VECTOR:
    collection, flax_leaf = _VECTOR[leaf]
  else:
    collection, flax_leaf = "params", leaf  # a bare parameter (e.g. LeakyNet's scalar shift `b`)
  return collection, tuple(modules) + (flax_leaf,)


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _set(tree: dict, path, value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def load_flax(module: torch.nn.Module, params, batch_stats=None) -> None:
  """Copies Flax `params` (and `batch_stats`; None keeps the module's) into `module`, every entry found."""
  variables = {"params": params, "batch_stats": batch_stats}
  state = module.state_dict()
  new = {}
  for name, tensor in state.items():
    if name.endswith("num_batches_tracked"):
      new[name] = tensor
      continue
    collection, path = _flax_location(name, tensor.ndim)
    if variables[collection] is None:
      new[name] = tensor
      continue
    try:
      value = np.asarray(_get(variables[collection], path))
    except KeyError as e:
      raise KeyError(f"torch {name}: no Flax {collection} leaf {'/'.join(path)}") from e
    value = _to_torch_layout(value)
    if tuple(value.shape) != tuple(tensor.shape):
      raise ValueError(f"torch {name} has shape {tuple(tensor.shape)}, Flax {'/'.join(path)} gives {value.shape}")
    new[name] = torch.from_numpy(np.array(value, copy=True)).to(tensor.dtype)
  module.load_state_dict(new)


def to_flax(module: torch.nn.Module) -> tuple[dict, dict]:
  """(params, batch_stats) of `module` as NumPy trees with the Flax names and layouts."""
  out = {"params": {}, "batch_stats": {}}
  for name, tensor in module.state_dict().items():
    if name.endswith("num_batches_tracked"):
      continue
    collection, path = _flax_location(name, tensor.ndim)
    _set(out[collection], path, _to_flax_layout(tensor.detach().cpu().numpy()).copy())
  return out["params"], out["batch_stats"]


def grads_to_flax(module: torch.nn.Module) -> dict:
  """The gradients of `module`'s parameters as a NumPy tree with Flax names and layouts."""
  out = {}
  for name, p in module.named_parameters():
    _set(out, _flax_location(name, p.ndim)[1], _to_flax_layout(p.grad.detach().cpu().numpy()).copy())
  return out
