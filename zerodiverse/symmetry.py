"""How symmetric a network is (science.md section 5), per layer, cheap enough to log during training.

For every kernel of rank >= 2 ("layer" = its path without "/kernel"):
- `corr_out`, `corr_in`: mean pairwise Pearson correlation between output filters (slices along the last
  axis) and between input-channel slices (axis -2), the authors' metric; a pair involving a constant slice
  counts as 1 (so an all-zero kernel has correlation 1: nothing tells its channels apart);
- `spread`: relative channel spread ||W - mean_c W||_F / ||W||_F over the layer's feature channels (0 for
  an all-zero kernel); exactly 0 when the channels are bitwise identical;
- `distinct`: the number of bitwise-distinct feature channels.
A layer's feature channels are its output channels, except the classifier `head`, whose features are its
input rows (its outputs are the classes, which are not symmetric features).

On a fixed probe batch, for every sown intermediate activation x (B, ..., C): `act_var` = mean over batch
and space of (x - mean_c x)^2, 0 when all channels are identical, `act_var_rel` = act_var / mean(x^2), and
`dead` = the number of channels with no positive value on the whole batch (ReLU units that never fire).

Symmetry-breaking step of a layer: the first logged step at which its `spread` exceeds THRESHOLD (1e-3:
its channels differ by 0.1 % of the kernel's norm; bitwise-identical channels give exactly 0, and the
float32 roundings of a symmetric run cannot produce a nonzero spread, so the threshold only sets how far the
perturbation must have grown). Means are taken after subtracting the first channel, so identical channels
give exactly 0 spread and variance, not a rounding residue.
"""

import jax
import jax.numpy as jnp
import numpy as np

from zerodiverse.rng import path_name

THRESHOLD = 1e-3


def distinct_slices(array, axis: int) -> int:
  """The number of bitwise-distinct slices of `array` along `axis` (1 = all identical)."""
  a = np.moveaxis(np.asarray(array), axis, 0)
  rows = np.ascontiguousarray(a.reshape(a.shape[0], -1)).view(np.uint8).reshape(a.shape[0], -1)
  return len(np.unique(rows, axis=0))


def _kernels(params, head: str):
  """(layer, kernel, feature axis) for every kernel of rank >= 2."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = path_name(path)
    if np.ndim(leaf) < 2 or not name.endswith("kernel"):
      continue
    layer = name[:-len("/kernel")]
    yield layer, leaf, (-2 if layer == head else -1)


def distinct_channels(params, head: str = "head") -> dict:
  """{layer path: distinct feature channels} for every kernel of rank >= 2."""
  return {layer: distinct_slices(k, axis) for layer, k, axis in _kernels(params, head)}


def _rows(array, axis: int) -> jax.Array:
  a = jnp.moveaxis(jnp.asarray(array, jnp.float32), axis, 0)
  return a.reshape(a.shape[0], -1)


def mean_correlation(array, axis: int) -> jax.Array:
  """Mean pairwise Pearson correlation of the slices of `array` along `axis`; constant slices count as 1."""
  rows = _rows(array, axis)
  n = rows.shape[0]
  if n < 2:
    return jnp.ones((), jnp.float32)
  shifted = rows - rows[:, :1]
  centred = shifted - jnp.mean(shifted, axis=1, keepdims=True)
  norm = jnp.sqrt(jnp.sum(centred ** 2, axis=1))
  constant = norm <= 0
  z = centred / jnp.where(constant, 1.0, norm)[:, None]
  corr = jnp.clip(z @ z.T, -1.0, 1.0)
  corr = jnp.where(constant[:, None] | constant[None, :], 1.0, corr)
  upper = jnp.triu(jnp.ones((n, n), bool), 1)
  return jnp.sum(jnp.where(upper, corr, 0.0)) / (n * (n - 1) / 2)


def channel_spread(array, axis: int) -> jax.Array:
  """||W - mean_c W|| / ||W|| over the slices along `axis` (0 when identical or all zero)."""
  rows = _rows(array, axis)
  deviation = rows - rows[:1]
  deviation = deviation - jnp.mean(deviation, axis=0, keepdims=True)
  total = jnp.sqrt(jnp.sum(rows ** 2))
  return jnp.where(total > 0, jnp.sqrt(jnp.sum(deviation ** 2)) / jnp.where(total > 0, total, 1.0), 0.0)


def activation_variance(x) -> jax.Array:
  """Mean over batch and space of (x - mean_c x)^2 for x (..., C): 0 when every channel is identical."""
  x = jnp.asarray(x, jnp.float32)
  d = x - x[..., :1]
  d = d - jnp.mean(d, axis=-1, keepdims=True)
  return jnp.mean(d ** 2)


def weight_metrics(params, head: str = "head") -> dict:
  """{layer: {corr_out, corr_in, spread, distinct}} as Python numbers (the jitted part runs on device)."""
  kernels = {layer: (k, axis) for layer, k, axis in _kernels(params, head)}
  axes = {layer: axis for layer, (_, axis) in kernels.items()}
  stats = jax.device_get(_weight_stats_for(axes)({layer: k for layer, (k, _) in kernels.items()}))
  out = {}
  for layer, (k, axis) in kernels.items():
    out[layer] = {name: float(v) for name, v in stats[layer].items()}
    out[layer]["distinct"] = distinct_slices(jax.device_get(k), axis)
  return out


_COMPILED = {}


def _weight_stats_for(axes: dict):
  """A jitted stats function for one model's layer -> feature axis map (axes are static)."""
  key = tuple(sorted(axes.items()))
  if key not in _COMPILED:
    _COMPILED[key] = jax.jit(lambda ks: {
        layer: {"corr_out": mean_correlation(k, -1), "corr_in": mean_correlation(k, -2),
                "spread": channel_spread(k, axes[layer])} for layer, k in ks.items()})
  return _COMPILED[key]


def make_probe(model):
  """A jitted `(params, batch_stats, images) -> {intermediate: {act_var, act_var_rel, dead}}` (eval mode)."""

  def probe(params, batch_stats, images):
    _, state = model.apply({"params": params, "batch_stats": batch_stats}, images, train=False,
                           mutable=["intermediates"])
    out = {}
    for path, x in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
      name = path_name(path)
      name = name[:-2] if name.endswith("/0") else name  # sow keeps a tuple per name
      var = activation_variance(x)
      power = jnp.mean(jnp.asarray(x, jnp.float32) ** 2)
      out[name] = {"act_var": var, "act_var_rel": jnp.where(power > 0, var / jnp.where(power > 0, power, 1), 0.0),
                   "dead": jnp.sum(jnp.all(x <= 0, axis=tuple(range(x.ndim - 1))))}
    return out

  return jax.jit(probe)


def record(params, batch_stats, probe, images, head: str = "head") -> dict:
  """One metrics.jsonl record body: {"layers": weight metrics, "activations": probe metrics}."""
  acts = jax.device_get(probe(params, batch_stats, images))
  return {"layers": weight_metrics(params, head),
          "activations": {k: {m: float(v) for m, v in d.items()} for k, d in acts.items()}}


def breaking_steps(records: list, threshold: float = THRESHOLD) -> dict:
  """{layer: first step whose spread > threshold, or None} from the "symmetry" records of metrics.jsonl."""
  out = {}
  for r in sorted(records, key=lambda r: r["step"]):
    for layer, m in r["layers"].items():
      out.setdefault(layer, None)
      if out[layer] is None and m["spread"] > threshold:
        out[layer] = r["step"]
  return out
