"""How symmetric a network is, per layer, cheap enough to log during training (one "symmetry" record).

Weights, for every kernel of rank >= 2 ("layer" = its path without "/kernel"; for ConstNet these are the
layers the authors' correlation.py measures: the stem, every block conv, the stage-entry shortcuts and the
head). The authors' three correlations, each logged as -log|corr| (0 = perfectly correlated):
- `neglog_corr_forward`: mean pairwise Pearson correlation between output filters (slices along the last
  axis); `neglog_corr_backward`: between input-channel slices (axis -2); `neglog_corr_kernel`: between the
  individual kh x kw kernels (one per input-output pair; a dense kernel's "kernels" are single numbers, so
  it reads 1, as in their code). A pair involving a constant slice counts as correlation 1 (their NaN -> 1).
  All pairs are used, exactly, in O(rows x length) (the mean of z_i . z_j over pairs is
  (|sum z|^2 - sum |z|^2) / 2 per pair count), so the authors' unseeded subsample to 5000 rows is not needed.
  |corr| is floored at float32's epsilon (the resolution at which it is computed), so -log|corr| is finite
  (at most 15.9) and the records stay strict JSON.
- `spread`: ||W - mean_c W||_F / ||W||_F over the layer's feature channels (0 for an all-zero kernel; exactly
  0 when the channels are bitwise identical); `distinct`: the number of bitwise-distinct feature channels.
  A layer's feature channels are its output channels, except the classifier `head`'s: its input rows.
- The record's `diversity`: the authors' network Diversity, the sum over layers of log sqrt(1 - backward^2),
  with 1 - backward^2 floored at float32's epsilon (a symmetric layer contributes log sqrt(eps) = -7.97, not
  -inf).

Activations on a fixed probe batch, for every sown intermediate x (B, ..., C): `act_var` = mean over batch
and space of (x - mean_c x)^2 (0 when all channels are identical), `act_var_rel` = act_var / mean(x^2), and
`dead` = the number of channels with no positive value on the whole batch (ReLU units that never fire).
For the representation each stage passes on (the intermediates sown as "output": the stem's, every block's,
the MLP's hidden layer), after normalization (each channel standardized over batch and space, what BN with
batch statistics computes before its scale and shift; so channels that differ only in scale or offset, or by
+0/-0, are the same):
- `func_spread`: across-channel std over the overall std of the normalized activations (0 when identical);
- `func_distinct`: the number of functionally distinct channels: channel i is new if it differs from every
  earlier channel by more than TOLERANCE (in units of its std) somewhere on the probe (at most MAX_ROWS
  batch-space positions, a fixed stride through the batch).
A residual branch alone ("residual") is not measured functionally: a branch of size 1e-12 is as diverse as
it likes and invisible in the sum it is added to.

Breaking step of a layer (`breaking_steps`): the first logged step at which its `func_spread` reaches
THRESHOLD. The authors' symmetry-break epoch (`break_epoch`, their train.py): the epoch at whose end test
accuracy exceeds 50 % for the 4th time (their counter of epochs above 50 % is never reset, and they stop
once it is more than 3). Means are taken after subtracting the first channel, so identical channels give
exactly 0, not a rounding residue.
"""

import functools
import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from zerodiverse import determinism
from zerodiverse.rng import path_name

THRESHOLD = 1e-2  # func_spread at which a layer counts as broken: its channels differ by 1 % of their std
TOLERANCE = 1e-3  # normalized channels closer than this everywhere are one functional channel
MAX_ROWS = 1024  # batch-space positions compared for func_distinct
ACCURACY_THRESHOLD = 0.5  # the authors' symmetry-break rule: test accuracy above this ...
EPOCHS_ABOVE = 3  # ... for more than this many epochs
REPRESENTATION = "output"  # the sown name of what a stage passes on
EPS = float(np.finfo(np.float32).eps)


def distinct_slices(array, axis: int) -> int:
  """The number of bitwise-distinct slices of `array` along `axis` (1 = all identical)."""
  a = np.moveaxis(np.asarray(array), axis, 0)
  rows = np.ascontiguousarray(a.reshape(a.shape[0], -1)).view(np.uint8).reshape(a.shape[0], -1)
  return len(np.unique(rows, axis=0))


def kernels(params, head: str = "head"):
  """(layer, kernel, feature axis) for every kernel of rank >= 2."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = path_name(path)
    if np.ndim(leaf) < 2 or not name.endswith("kernel"):
      continue
    layer = name[:-len("/kernel")]
    yield layer, leaf, (-2 if layer == head else -1)


def distinct_channels(params, head: str = "head") -> dict:
  """{layer path: distinct feature channels} for every kernel of rank >= 2."""
  return {layer: distinct_slices(k, axis) for layer, k, axis in kernels(params, head)}


def _rows(array, axis: int) -> jax.Array:
  a = jnp.moveaxis(jnp.asarray(array, jnp.float32), axis, 0)
  return a.reshape(a.shape[0], -1)


def mean_correlation(array, axis: int) -> jax.Array:
  """Mean pairwise Pearson correlation of the slices of `array` along `axis` over all pairs; a pair with a
  constant slice counts as 1."""
  rows = _rows(array, axis)
  n = rows.shape[0]
  if n < 2:
    return jnp.ones((), jnp.float32)
  shifted = rows - rows[:, :1]
  centred = shifted - jnp.mean(shifted, axis=1, keepdims=True)
  norm = jnp.sqrt(jnp.sum(centred ** 2, axis=1))
  constant = norm <= 0
  z = centred / jnp.where(constant, 1.0, norm)[:, None]
  m = n - jnp.sum(constant)
  varying = (jnp.sum(jnp.sum(z, axis=0) ** 2) - jnp.sum(z ** 2)) / 2  # sum of z_i . z_j over pairs i < j
  pairs = n * (n - 1) / 2
  return jnp.clip((varying + pairs - m * (m - 1) / 2) / pairs, -1.0, 1.0)


def kernel_correlation(kernel) -> jax.Array:
  """Mean pairwise correlation between the individual kh x kw kernels (one per input-output pair)."""
  k = jnp.asarray(kernel)
  return mean_correlation(k.reshape(-1, k.shape[-2] * k.shape[-1]), -1)


def neglog(corr) -> jax.Array:
  """-log|corr|, with |corr| floored at float32's epsilon (finite: at most 15.9)."""
  return 0.0 - jnp.log(jnp.maximum(jnp.abs(corr), EPS))  # 0 - (+0) is +0: a correlation of 1 reads 0, not -0


def channel_spread(array, axis: int) -> jax.Array:
  """||W - mean_c W|| / ||W|| over the slices along `axis` (0 when identical or all zero)."""
  rows = _rows(array, axis)
  deviation = rows - rows[:1]
  deviation = deviation - jnp.mean(deviation, axis=0, keepdims=True)
  total = jnp.sqrt(jnp.sum(rows ** 2))
  return jnp.where(total > 0, jnp.sqrt(jnp.sum(deviation ** 2)) / jnp.where(total > 0, total, 1.0), 0.0)


def _ratio(num, den) -> jax.Array:
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def across_channels(x, axis: int = -1) -> jax.Array:
  """x minus its mean over the channels along `axis` (moved last), with the first channel subtracted first,
  so that identical channels give exactly 0 (float32's mean of ten copies of 0.1 is not 0.1)."""
  x = jnp.moveaxis(jnp.asarray(x, jnp.float32), axis, -1)
  d = x - x[..., :1]
  return d - jnp.mean(d, axis=-1, keepdims=True)


def activation_variance(x) -> jax.Array:
  """Mean over batch and space of (x - mean_c x)^2 for x (..., C): 0 when every channel is identical."""
  return jnp.mean(across_channels(x) ** 2)


def relative_activation_variance(x) -> jax.Array:
  return _ratio(activation_variance(x), jnp.mean(jnp.asarray(x, jnp.float32) ** 2))


def dead_channels(x) -> jax.Array:
  """How many channels of x (..., C) have no positive value on the whole probe (ReLU units that never fire)."""
  return jnp.sum(jnp.all(x <= 0, axis=tuple(range(x.ndim - 1))))


def normalized(x) -> jax.Array:
  """Each channel of x (..., C) standardized over all other axes (a constant channel becomes +0)."""
  x = jnp.asarray(x, jnp.float32).reshape(-1, x.shape[-1])
  d = x - jnp.mean(x, axis=0)
  std = jnp.sqrt(jnp.mean(d ** 2, axis=0))
  return jnp.where(std > 0, d / jnp.where(std > 0, std, 1.0), 0.0)


def functional_spread(x) -> jax.Array:
  """Across-channel std over overall std of x after normalization: 0 when the channels agree up to scale."""
  z = normalized(x)
  return jnp.sqrt(_ratio(activation_variance(z), jnp.mean(z ** 2)))


def functional_distinct(x, tolerance: float = TOLERANCE, max_rows: int = MAX_ROWS) -> jax.Array:
  """How many channels of x differ, after normalization, from every earlier one by more than `tolerance`."""
  z = normalized(x)
  z = z[::-(-z.shape[0] // max_rows)]
  gap = jax.lax.map(lambda column: jnp.max(jnp.abs(z - column[:, None]), axis=0), z.T)  # (C, C)
  earlier = jnp.tril(jnp.ones(gap.shape, bool), -1)
  return jnp.sum(~jnp.any(earlier & (gap <= tolerance), axis=1))


# The registry: a new metric is one function and one entry. All are traced under jit, one scalar each.
WEIGHT_METRICS = {  # f(kernel, feature axis), for every kernel of rank >= 2
    "neglog_corr_forward": lambda k, axis: neglog(mean_correlation(k, -1)),
    "neglog_corr_backward": lambda k, axis: neglog(mean_correlation(k, -2)),
    "neglog_corr_kernel": lambda k, axis: neglog(kernel_correlation(k)),
    "spread": channel_spread,
}
ACTIVATION_METRICS = {  # f(x (..., C)), for every sown intermediate
    "act_var": activation_variance,
    "act_var_rel": relative_activation_variance,
    "dead": dead_channels,
}
REPRESENTATION_METRICS = {  # f(x (..., C)), for the intermediates sown as REPRESENTATION
    "func_spread": functional_spread,
    "func_distinct": functional_distinct,
}


def diversity(layers: dict) -> float:
  """The authors' network Diversity from one record's weight metrics: sum of log sqrt(1 - backward^2)."""
  total = 0.0
  for m in layers.values():
    backward2 = math.exp(-2 * m["neglog_corr_backward"])
    total += 0.5 * math.log(max(1.0 - backward2, EPS))
  return total


def weight_metrics(params, head: str = "head") -> dict:
  """{layer: {WEIGHT_METRICS..., distinct}} as Python numbers (the jitted part runs on device)."""
  out = {}
  for layer, k, axis in kernels(params, head):
    out[layer] = {name: float(v) for name, v in jax.device_get(_weight_stats()(k, axis)).items()}
    out[layer]["distinct"] = distinct_slices(jax.device_get(k), axis)
  return out


# A few small reductions per layer: XLA's backend optimizations would hardly speed them up, and without them
# the compile that every run pays per kernel shape, at its first symmetry record, takes about half as long.
@functools.cache
def _weight_stats():
  """One layer's WEIGHT_METRICS as `(kernel, axis) -> {name: value}`, compiled once per kernel shape: layers
  of one shape (most of a deep network's) and runs of other depths share the program. Made at first use,
  since the compiler options are known only once XLA is up."""
  stats = lambda kernel, axis: {name: f(kernel, axis) for name, f in WEIGHT_METRICS.items()}
  return jax.jit(stats, static_argnums=1, compiler_options=determinism.fast_compile())


def intermediates(model, params, batch_stats, images) -> dict:
  """{sown name: array} of the model in eval mode on `images` (traceable)."""
  _, state = model.apply({"params": params, "batch_stats": batch_stats}, images, train=False,
                         mutable=["intermediates"])
  out = {}
  for path, x in jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]:
    name = path_name(path)
    out[name[:-2] if name.endswith("/0") else name] = x  # sow keeps a tuple per name
  return out


def is_representation(name: str) -> bool:
  """Whether a sown intermediate is what a stage passes on (measured functionally)."""
  return name.split("/")[-1] == REPRESENTATION


def make_probe(model):
  """A jitted `(params, batch_stats, images) -> {intermediate: {metric: value}}` (eval mode)."""

  def probe(params, batch_stats, images):
    out = {}
    for name, x in intermediates(model, params, batch_stats, images).items():
      metrics = dict(ACTIVATION_METRICS)
      if is_representation(name):
        metrics.update(REPRESENTATION_METRICS)
      out[name] = {m: f(x) for m, f in metrics.items()}
    return out

  return jax.jit(probe)


def record(params, batch_stats, probe, images, head: str = "head") -> dict:
  """One metrics.jsonl record body: {"layers": weight metrics, "diversity", "activations": probe metrics}."""
  acts = jax.device_get(probe(params, batch_stats, images))
  layers = weight_metrics(params, head)
  return {"layers": layers, "diversity": diversity(layers),
          "activations": {k: {m: v.item() for m, v in d.items()} for k, d in acts.items()}}


def breaking_steps(records: list, threshold: float = THRESHOLD) -> dict:
  """{layer: first step whose func_spread >= threshold, or None} from the "symmetry" records."""
  out = {}
  for r in sorted(records, key=lambda r: r["step"]):
    for layer, m in r["activations"].items():
      if "func_spread" not in m:
        continue
      out.setdefault(layer, None)
      if out[layer] is None and m["func_spread"] >= threshold:
        out[layer] = r["step"]
  return out


def format_step(step) -> str:
  """A breaking step for a table: 'never' for a layer that did not break."""
  return "never" if step is None else f"{step:g}"


def breaking_summary(steps: dict) -> dict:
  """Median and maximum over the layers that broke, and how many never did."""
  broke = [s for s in steps.values() if s is not None]
  return {"median": statistics.median(broke) if broke else None, "max": max(broke) if broke else None,
          "never": len(steps) - len(broke), "layers": len(steps)}


def functional_channels(records: list) -> dict:
  """{layer: func_distinct} of the last symmetry record (the run's final weights)."""
  if not records:
    return {}
  last = max(records, key=lambda r: r["step"])
  return {k: m["func_distinct"] for k, m in last["activations"].items() if "func_distinct" in m}


def break_epoch(test_records: list, steps_per_epoch: int, accuracy: float = ACCURACY_THRESHOLD,
                epochs_above: int = EPOCHS_ABOVE):
  """The authors' symmetry-break epoch (1-based: epochs done) from the test records at epoch ends: the
  epoch at which test accuracy has exceeded `accuracy` for more than `epochs_above` epochs; None if never."""
  at_epoch_end = {r["step"]: r["accuracy"] for r in test_records if r["step"] and not r["step"] % steps_per_epoch}
  above = 0
  for step in sorted(at_epoch_end):
    above += at_epoch_end[step] > accuracy
    if above > epochs_above:
      return step // steps_per_epoch
  return None
