"""Conv and Dense whose backward pass is laid out for the CPU, or adds its reductions' partial sums in a keyed
order.

`Conv` and `Dense` are flax's nn.Conv and nn.Dense with the primitive call routed through a small child
module (no parameters of its own; the parameter tree is nn.Conv's / nn.Dense's). The forward is the
primitive call flax would make, bit for bit; on CPU a strided 1x1 conv makes it as the unstrided conv of its
input's strided subsample (`unstrided`: the same products, over only the positions it reads). The backward:

- by default, XLA's own (flax's call), except on CPU for a 1x1 conv or a dense layer: there the weight
  gradient is one matrix product over the batch whose rows are the input channels, and XLA:CPU's GEMM rounds
  a few trailing rows differently from the rest, so bitwise identical input channels (ConstNet's) would get
  different gradients and the kernel itself would break the symmetry. The layer makes the call with the
  input channels zero-padded to whole register tiles (`tiled_call`), so XLA's own weight gradient has no
  remainder rows. Every other conv is flax's call: with the CPU flags of zerodiverse.determinism (XLA's own
  convolutions rather than YNNPACK's) its forward, data and weight gradients keep identical channels
  identical and its weight gradient is several times faster than YNNPACK's backward-filter convolution.
  On CPU every conv's weight gradient also reads a stored copy of its input (`conv_saving_input`): the same
  ops on the same values, without XLA's slow fused recomputation of the input. GPU and TPU keep flax's
  calls throughout.
- inside `reordered(settings, key)` (the train step enters it when the `reorder` rounding breaker is on), a
  jax.custom_vjp forms the weight gradient as `settings.partials` partial sums, one per contiguous group of
  the batch, each by the default path's `weight_gradient` (so identical channels get bitwise identical
  partials and only the keyed order tells them apart), and adds them in float32 in an order drawn per output
  element (shared by `settings.tile` consecutive output channels if > 1); with `settings.data_grad` the data
  gradient too, its partials over groups of output channels.

What it models: split-K accumulation with atomics in cuDNN's nondeterministic backward kernels
(backward-filter ALGO_0/ALGO_3, backward-data ALGO_0) and cuBLAS matrix products, where each thread block's
partial sum is computed in a fixed order and the order in which the partials are added varies. The result
differs from the fixed-order sum by a few roundings of the partial sums: nothing when they are exactly
representable in every order, more when they cancel, differently per element, i.e. the arithmetic itself
rather than a noise model of it. What it does not model: the size and number of a real kernel's blocks (m
and the tile are settings, to be calibrated against a GPU measurement of the same layer), reductions
outside convs and dense layers (BatchNorm statistics, bias gradients, the loss), run-to-run variation (the
order is keyed by the step and the parameter's path, so a run replays bitwise), and the forward pass, which
is deterministic in cuDNN too.
"""

import contextlib
import contextvars
import dataclasses
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from zerodiverse import rng


@dataclasses.dataclass(frozen=True)
class Reorder:
  """m partial sums per reduction; `tile` output channels share one order; `data_grad` reorders dx too."""
  partials: int
  tile: int = 1
  data_grad: bool = False


_ACTIVE = contextvars.ContextVar("zerodiverse_reorder", default=None)


@contextlib.contextmanager
def reordered(settings: Reorder, key: jax.Array):
  """Within this block (at trace time) every Conv and Dense reorders its backward reductions; the layer
  whose kernel has path P draws its orders from rng.stream(key, P), as the gradient breakers do."""
  token = _ACTIVE.set((settings, key))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def group_size(n: int, m: int) -> int:
  """Examples per group when n rows are cut into m contiguous groups (the last may be shorter or empty)."""
  return -(-n // m)


def order_keys(key: jax.Array, m: int, shape: tuple, tile: int = 1) -> jax.Array:
  """(m, *shape) uint32 random sort keys: partial i of an element is added in the rank of its key (a uniformly
  random order per element), shared within tiles of `tile` along the last axis."""
  draw = (m, *shape[:-1], -(-shape[-1] // tile))
  bits = rng.bits(key, draw, jnp.uint32)
  return jnp.repeat(bits, tile, axis=-1)[..., :shape[-1]] if tile > 1 else bits


def order(keys: jax.Array) -> jax.Array:
  """The permutation `ordered_sum` adds the partials in: argsort of the keys along axis 0 (stable)."""
  return jnp.argsort(keys, axis=0, stable=True)


def ordered_sum(partials: jax.Array, keys: jax.Array) -> jax.Array:
  """sum_i partials[order(keys)[i]], added left to right in the partials' dtype (one rounding per addition).
  Up to NETWORK_MAX partials the keys carry the partials through `sorting_network` (elementwise selects,
  which XLA fuses into one pass: on XLA:CPU ~170x faster than lax.sort along a short leading axis of
  millions of columns); above it one stable lax.sort does. Both give the stable order, so the same sums."""
  if partials.shape[0] <= NETWORK_MAX:
    p = sorting_network(keys, partials)
  else:
    p = lax.sort((keys, partials), dimension=0, is_stable=True, num_keys=1)[1]
  acc = p[0]
  for i in range(1, partials.shape[0]):
    acc = acc + p[i]
  return acc


NETWORK_MAX = 16  # m(m-1)/2 compare-exchanges: 120 at 16, compiled in 0.3 s on XLA:CPU


def sorting_network(keys: jax.Array, values: jax.Array) -> list:
  """values' slices along axis 0, in the stable order of keys': an odd-even transposition sort, whose
  compare-exchanges swap adjacent slices only where the keys are strictly out of order, so ties keep
  their first order, as a stable sort does. m rounds sort any m keys."""
  m = keys.shape[0]
  k, v = list(keys), list(values)
  for r in range(m):
    for i in range(r % 2, m - 1, 2):
      swap = k[i] > k[i + 1]
      k[i], k[i + 1] = jnp.where(swap, k[i + 1], k[i]), jnp.where(swap, k[i], k[i + 1])
      v[i], v[i + 1] = jnp.where(swap, v[i + 1], v[i]), jnp.where(swap, v[i], v[i + 1])
  return v


@dataclasses.dataclass(frozen=True)
class Call:
  """primitive(lhs, rhs, *args, **kwargs): a conv or dense layer's primitive call with its static arguments."""
  primitive: Callable
  args: tuple = ()
  kwargs: tuple = ()  # sorted (name, value) pairs

  def __call__(self, lhs, rhs):
    return self.primitive(lhs, rhs, *self.args, **dict(self.kwargs))

  def is_plain_conv(self, x, w) -> bool:
    """A 2-D NHWC/HWIO convolution without dilation or feature groups (what the models use)."""
    kw = dict(self.kwargs)
    return (self.primitive is lax.conv_general_dilated and x.ndim == 4 and len(self.args) == 2
            and kw.get("dimension_numbers") == lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
            and tuple(kw.get("lhs_dilation") or (1, 1)) == (1, 1) and tuple(kw.get("rhs_dilation") or (1, 1)) == (1, 1)
            and kw.get("feature_group_count", 1) == 1)

  def is_pointwise_conv(self, x, w) -> bool:
    """A plain conv with a 1x1 kernel: one matrix product of the (strided) input with the kernel."""
    return self.is_plain_conv(x, w) and tuple(w.shape[:2]) == (1, 1)

  def is_plain_dense(self, x, w) -> bool:
    """x @ w contracting x's last axis with a 2-D w's first, no batch axes (what nn.Dense calls)."""
    return (self.primitive is lax.dot_general and w.ndim == 2 and len(self.args) == 1
            and tuple(map(tuple, self.args[0][0])) == ((x.ndim - 1,), (0,)) and not any(self.args[0][1]))


# Rows of a CPU matrix product's output that the GEMM kernel computes in full register tiles all add in the
# same order; a remainder of a few rows past the last full tile goes through another kernel, which rounds them
# differently (measured on AVX2: row counts of 1-3 mod 6 above 6 split identical rows into two classes). Padding
# the rows with zeros to a multiple of this keeps every row in a full tile for tiles of 2, 3, 4, 6, 8, 12 or 24.
ROW_TILE = 24


def tiled_call(op: Call, x, w) -> jax.Array:
  """op(x, w) for a 1x1 conv or a dense layer with the input channels (x's last axis, w's contracted axis)
  zero-padded to a multiple of ROW_TILE: the same values (the padding adds exact zeros), and XLA's weight
  gradient of it is the matrix product over the batch with whole row tiles, cut back to w's rows, so
  identical input channels get bitwise identical gradients. Plain JAX ops: every transform applies."""
  if op.primitive is lax.conv_general_dilated:
    op, x = unstrided(op, x)
  extra = -x.shape[-1] % ROW_TILE
  pad_w = [(0, 0)] * w.ndim
  pad_w[w.ndim - 2] = (0, extra)  # HWIO's I, or a dense kernel's input rows
  return call(op, jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)]), jnp.pad(w, pad_w))


def call(op: Call, x, w) -> jax.Array:
  """op(x, w), as `conv_saving_input` where `saves_input`."""
  return conv_saving_input(op, x, w) if saves_input(op, x, w) else op(x, w)


def unstrided(op: Call, x) -> tuple:
  """(op', x') with op'(x', w) == op(x, w) for a 1x1 conv: a stride > 1 as the unstrided conv of x's strided
  subsample (a 1x1 conv has no padding under "SAME" or "VALID"). The shortcut's BN-ReLU, channel padding and
  stored copy (`conv_saving_input`) then cover only the positions the conv reads: a quarter at stride 2."""
  strides, padding = op.args
  zero_padding = padding in ("SAME", "VALID") or all(tuple(p) == (0, 0) for p in padding)
  if tuple(strides) == (1, 1) or not zero_padding:
    return op, x
  return dataclasses.replace(op, args=((1, 1), "VALID")), x[:, ::strides[0], ::strides[1]]


def materialized(a: jax.Array) -> jax.Array:
  """`a`, as the output of a conditional, which XLA does not fuse its producer into. XLA removes a conditional
  whose branches both return the operand as it is; with a second branch of x * 1 + 0 it keeps it (measured on
  XLA:CPU, jax 0.10.2). That branch is taken only if a's first element is NaN, and returns the same bits there
  too, -0.0 included (tests/test_layers.py)."""
  first = a.ravel()[0]
  return lax.cond(first == first, lambda b: b, lambda b: b * 1.0 + 0.0, a)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def conv_saving_input(op: Call, x, w) -> jax.Array:
  """op(x, w), whose weight gradient reads a stored copy of x.

  XLA:CPU computes a conv's weight gradient as an Eigen convolution with the examples as features, so it
  rewrites x with the batch innermost; left alone it fuses x's producer (BN and ReLU, recomputed) into that
  rewrite, which then runs several times slower than the rewrite of a stored array (about a quarter of a
  WRN-10-1 step on 2 cores; docs/results/cpu_speed). The tangent is op(dx, w) + op(x, dw) with the second x
  `materialized`: the same values, so the same gradients; a custom_jvp, so forward and reverse mode both apply."""
  return op(x, w)


@functools.partial(conv_saving_input.defjvp, symbolic_zeros=True)
def _conv_saving_input_jvp(op, primals, tangents):
  x, w = primals
  dx, dw = tangents
  zero = jax.custom_derivatives.SymbolicZero
  parts = (([] if isinstance(dx, zero) else [op(dx, w)])
           + ([] if isinstance(dw, zero) else [op(materialized(x), dw)]))
  y = op(x, w)
  return y, functools.reduce(jnp.add, parts) if parts else jnp.zeros_like(y)


def forward(op: Call, x, w) -> jax.Array:
  """The layer's forward: on CPU `tiled_call` for a 1x1 conv or a dense layer; then `call` (on CPU, every
  plain conv as `conv_saving_input`)."""
  return tiled_call(op, x, w) if has_tiled_rows(op, x, w) else call(op, x, w)


def weight_gradient(op: Call, x, w, dy) -> jax.Array:
  """dL/dw of y = forward(op, x, w), by XLA's transposed ops."""
  return jax.vjp(lambda w_: forward(op, x, w_), w)[1](dy)[0]


def data_gradient(op: Call, x, w, dy) -> jax.Array:
  """dL/dx of y = forward(op, x, w), by XLA's transposed ops (for a conv, a forward conv, flipped kernel)."""
  return jax.vjp(lambda x_: forward(op, x_, w), x)[1](dy)[0]


def groups(a: jax.Array, m: int, axis: int) -> jax.Array:
  """(m, ...): `a` cut along `axis` into m contiguous groups of group_size entries, zero-padded at the end
  (the last group may be partly or wholly padding), the groups stacked on a new leading axis."""
  axis %= a.ndim
  size = group_size(a.shape[axis], m)
  pad = [(0, 0)] * a.ndim
  pad[axis] = (0, m * size - a.shape[axis])
  a = jnp.pad(a, pad)
  return jnp.moveaxis(a.reshape(a.shape[:axis] + (m, size) + a.shape[axis + 1:]), axis, 0)


def weight_partials(op: Call, x, w, dy, m: int) -> jax.Array:
  """(m, *w.shape): the weight gradient of y = op(x, w) from each of m contiguous groups of the batch (axis 0,
  groups of group_size examples; padding rows are zeros, so an empty last group gives zeros), each by
  `weight_gradient`, the one the step uses without the breaker. It computes every output and input channel
  the same way, so identical channels get bitwise identical partials and only the keyed order of the sum can
  tell them apart. One weight gradient batched over the groups (jax.vmap): the program compiles one,
  whatever m, and XLA:CPU runs it about as fast as the unbatched one, where a lax.map loop over the groups
  was 25-60x slower per conv. Identical channels stay identical in the batched form (tests/test_breakers)."""
  return jax.vmap(lambda a, b: weight_gradient(op, a, w, b))(groups(x, m, 0), groups(dy, m, 0))


def data_partials(op, x, w, dy, m: int) -> jax.Array:
  """(m, *x.shape): the data gradient of y = op(x, w) from each of m contiguous groups of output channels
  (the last axis of w and y; padding channels are zeros), batched as `weight_partials`."""
  return jax.vmap(lambda a, b: data_gradient(op, x, a, b))(groups(w, m, -1), groups(dy, m, -1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def reordered_op(op, settings: Reorder, x, w, key):
  """forward(op, x, w), whose backward adds the partial sums of its reductions in an order keyed by `key`."""
  return forward(op, x, w)


def _fwd(op, settings, x, w, key):
  return forward(op, x, w), (x, w, key)


def _bwd(op, settings, res, dy):
  x, w, key = res
  pw = weight_partials(op, x, w, dy, settings.partials)
  dw = ordered_sum(pw, order_keys(rng.stream(key, "weight"), settings.partials, w.shape, settings.tile))
  if settings.data_grad:
    px = data_partials(op, x, w, dy, settings.partials)
    dx = ordered_sum(px, order_keys(rng.stream(key, "data"), settings.partials, x.shape))
  else:
    dx = data_gradient(op, x, w, dy)
  return dx, dw, None


reordered_op.defvjp(_fwd, _bwd)


def on_cpu() -> bool:
  return jax.default_backend() == "cpu"


def has_tiled_rows(op: Call, x, w) -> bool:
  """On CPU, a 1x1 conv or a dense layer; every other op, and every op on GPU and TPU, is flax's own call."""
  return on_cpu() and (op.is_pointwise_conv(x, w) or op.is_plain_dense(x, w))


def saves_input(op: Call, x, w) -> bool:
  """On CPU, a plain conv (a 1x1 one does too, inside `tiled_call`); on GPU and TPU, nothing."""
  return on_cpu() and op.is_plain_conv(x, w)


def _layer_call(module: nn.Module, primitive, lhs, rhs, *args, **kwargs):
  """primitive(lhs, rhs, ...) as flax calls it: reordered if a `reordered` block is active, else `forward`."""
  op = Call(primitive, args, tuple(sorted(kwargs.items())))
  active = _ACTIVE.get()
  if active is not None:
    settings, key = active
    return reordered_op(op, settings, lhs, rhs, rng.stream(key, "/".join(module.path[:-1] + ("kernel",))))
  return forward(op, lhs, rhs)


class ConvGeneralDilated(nn.Module):
  """lax.conv_general_dilated for nn.Conv's `conv_general_dilated_cls`."""

  def __call__(self, lhs, rhs, *args, **kwargs):
    return _layer_call(self, lax.conv_general_dilated, lhs, rhs, *args, **kwargs)


class DotGeneral(nn.Module):
  """lax.dot_general for nn.Dense's `dot_general_cls`."""

  def __call__(self, lhs, rhs, *args, **kwargs):
    return _layer_call(self, lax.dot_general, lhs, rhs, *args, **kwargs)


Conv = functools.partial(nn.Conv, conv_general_dilated_cls=ConvGeneralDilated)
Dense = functools.partial(nn.Dense, dot_general_cls=DotGeneral)
