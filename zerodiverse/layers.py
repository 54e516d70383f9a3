"""Conv and Dense whose backward pass is laid out for the CPU, or adds its reductions' partial sums in a keyed
order.

`Conv` and `Dense` are flax's nn.Conv and nn.Dense with the primitive call routed through a small child
module (no parameters of its own; the parameter tree is nn.Conv's / nn.Dense's). The forward is always the
primitive call flax would make. The backward:

- by default, XLA's own (what nn.Conv / nn.Dense give). Inside `matmul_conv_backward()`, on CPU, a plain 2-D
  conv (NHWC, no dilation or groups) forms its weight gradient as one matrix product: the kh * kw shifted,
  strided views of the padded input, side by side, contracted with the output gradient over N * Ho * Wo
  (`matmul_weight_gradient`); its data gradient is XLA's transposed conv, a forward conv with the flipped
  kernel. It is several times faster than XLA:CPU's backward-filter convolution and equals it up to float32
  rounding, but it is not the default because it can round identical channels differently (see there).
- inside `reordered(settings, key)` (the train step enters it when the `reorder` rounding breaker is on), a
  jax.custom_vjp forms the weight gradient as `settings.partials` partial sums, one per contiguous group of
  the batch, each by XLA's own transposed op (so identical channels get bitwise identical partials and
  only the keyed order tells them apart), and adds them in float32 in an order drawn per output element (shared by `settings.tile` consecutive output channels if > 1); with
  `settings.data_grad` the data gradient too, its partials over groups of output channels.

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
  bits = jax.random.bits(key, draw, jnp.uint32)
  return jnp.repeat(bits, tile, axis=-1)[..., :shape[-1]] if tile > 1 else bits


def order(keys: jax.Array) -> jax.Array:
  """The permutation `ordered_sum` adds the partials in: argsort of the keys along axis 0 (stable)."""
  return jnp.argsort(keys, axis=0, stable=True)


def ordered_sum(partials: jax.Array, keys: jax.Array) -> jax.Array:
  """sum_i partials[order(keys)[i]], added left to right in the partials' dtype (one rounding per addition).
  One stable sort carries the partials with their keys, so no gather is needed."""
  p = lax.sort((keys, partials), dimension=0, is_stable=True, num_keys=1)[1]
  acc = p[0]
  for i in range(1, p.shape[0]):
    acc = acc + p[i]
  return acc


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


def conv_patches(x, kernel_shape, out_shape, strides, padding) -> jax.Array:
  """(N, Ho, Wo, kh * kw * Cin): the input each kernel tap sees at each output position, for a 2-D NHWC
  convolution: kh * kw shifted, strided views of the padded input."""
  kh, kw = kernel_shape[:2]
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], (kh, kw), strides, padding)
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  ho, wo = out_shape[1:3]
  views = [xp[:, i:i + strides[0] * (ho - 1) + 1:strides[0], j:j + strides[1] * (wo - 1) + 1:strides[1], :]
           for i in range(kh) for j in range(kw)]
  return jnp.stack(views, axis=3).reshape(x.shape[0], ho, wo, kh * kw * x.shape[-1])


def weight_partials(op: Call, x, w, dy, m: int) -> jax.Array:
  """(m, *w.shape): the weight gradient of y = op(x, w) from each of m contiguous groups of the batch (axis 0,
  groups of group_size examples; an empty last group gives zeros), each by XLA's own transposed op, the one
  the step uses without the breaker. That op computes every output channel the same way, so identical
  channels get bitwise identical partials and only the keyed order of the sum can tell them apart (a matrix
  product can round identical columns differently: see `matmul_conv_backward`)."""
  size = group_size(x.shape[0], m)
  return jnp.stack([jax.vjp(lambda w_: op(x[a:a + size], w_), w)[1](dy[a:a + size])[0]
                    if a < x.shape[0] else jnp.zeros_like(w) for a in range(0, m * size, size)])


def matmul_weight_gradient(op: Call, x, w, dy) -> jax.Array:
  """The weight gradient of a plain conv as one matrix product: its shifted input views against dy over N *
  Ho * Wo (fast on CPU, but it may round identical output channels differently)."""
  lhs = conv_patches(x, w.shape, dy.shape, *op.args).reshape(-1, w.size // w.shape[-1])
  return lax.dot_general(lhs, dy.reshape(-1, dy.shape[-1]), (((0,), (0,)), ((), ()))).reshape(w.shape)


def data_partials(op, x, w, dy, m: int) -> jax.Array:
  """(m', *x.shape): the data gradient of y = op(x, w) from each contiguous group of output channels (the
  last axis of w and y)."""
  size = group_size(w.shape[-1], m)
  return jnp.stack([jax.vjp(lambda x_: op(x_, w[..., a:a + size]), x)[1](dy[..., a:a + size])[0]
                    if a < w.shape[-1] else jnp.zeros_like(x) for a in range(0, m * size, size)])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def reordered_op(op, settings: Reorder, x, w, key):
  """op(x, w), whose backward adds the partial sums of its reductions in an order keyed by `key`."""
  return op(x, w)


def _fwd(op, settings, x, w, key):
  return op(x, w), (x, w, key)


def _bwd(op, settings, res, dy):
  x, w, key = res
  pw = weight_partials(op, x, w, dy, settings.partials)
  dw = ordered_sum(pw, order_keys(rng.stream(key, "weight"), settings.partials, w.shape, settings.tile))
  if settings.data_grad:
    px = data_partials(op, x, w, dy, settings.partials)
    dx = ordered_sum(px, order_keys(rng.stream(key, "data"), settings.partials, x.shape))
  else:
    dx = jax.vjp(lambda x_: op(x_, w), x)[1](dy)[0]
  return dx, dw, None


reordered_op.defvjp(_fwd, _bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def matmul_backward_conv(op: Call, x, w):
  """op(x, w) for a plain conv, whose weight gradient is one matrix product (matmul_weight_gradient) and
  whose data gradient is XLA's transposed conv (a forward conv with the flipped kernel)."""
  return op(x, w)


def _conv_fwd(op, x, w):
  return op(x, w), (x, w)


def _conv_bwd(op, res, dy):
  x, w = res
  return jax.vjp(lambda x_: op(x_, w), x)[1](dy)[0], matmul_weight_gradient(op, x, w, dy)


matmul_backward_conv.defvjp(_conv_fwd, _conv_bwd)

_MATMUL_BACKWARD = contextvars.ContextVar("zerodiverse_matmul_conv_backward", default=False)


@contextlib.contextmanager
def matmul_conv_backward():
  """Within this block (at trace time) plain convs on CPU form their weight gradient as one matrix product.
  Off by default: it is several times faster than XLA:CPU's backward-filter convolution, but in a symmetric
  ConstNet it gave two bitwise-identical output channels different roundings (a 260-step tiny run ended with
  2 distinct channels in one conv and no breaker), so it would break symmetry by itself."""
  token = _MATMUL_BACKWARD.set(True)
  try:
    yield
  finally:
    _MATMUL_BACKWARD.reset(token)


def uses_matmul_backward(op: Call, x, w) -> bool:
  """Inside `matmul_conv_backward()`, on CPU, for a plain conv. GPU and TPU keep XLA's convolutions (cuDNN's
  deterministic and nondeterministic kernels are what the determinism modes contrast)."""
  return _MATMUL_BACKWARD.get() and jax.default_backend() == "cpu" and op.is_plain_conv(x, w)


def _layer_call(module: nn.Module, primitive, lhs, rhs, *args, **kwargs):
  """primitive(lhs, rhs, ...) as flax calls it: reordered if a `reordered` block is active, a conv on CPU with
  its weight gradient as one matrix product inside `matmul_conv_backward()`, else the primitive itself."""
  op = Call(primitive, args, tuple(sorted(kwargs.items())))
  active = _ACTIVE.get()
  if active is not None:
    settings, key = active
    return reordered_op(op, settings, lhs, rhs, rng.stream(key, "/".join(module.path[:-1] + ("kernel",))))
  if uses_matmul_backward(op, lhs, rhs):
    return matmul_backward_conv(op, lhs, rhs)
  return primitive(lhs, rhs, *args, **kwargs)


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
