"""zerodiverse.layers on CPU: bitwise identical channels stay identical through every conv shape of ConstNet's
stages (forward, data and weight gradients), the layers' gradients (1x1 convs and dense layers called with
their input channels padded to whole row tiles) equal flax's own up to float32 rounding, and a conv whose weight
gradient reads a stored copy of its input computes flax's numbers bit for bit, in both modes of autodiff."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodiverse import determinism, layers, rng
from zerodiverse.symmetry import distinct_slices as distinct

# (batch, input size, in channels, out channels, kernel, stride): the convs of WRN-10-1 and WRN-16-4 on 8x8
# inputs; the 1x1 shortcuts from 32 and 128 channels are the ones XLA:CPU's own matrix product splits.
STAGE_CONVS = [(32, 8, 16, 16, 3, 1), (32, 8, 16, 32, 3, 2), (32, 8, 16, 32, 1, 2), (32, 4, 32, 32, 3, 1),
               (32, 4, 32, 64, 3, 2), (32, 4, 32, 64, 1, 2), (32, 2, 64, 64, 3, 1), (32, 8, 16, 64, 1, 1),
               (32, 8, 64, 128, 1, 2), (32, 4, 128, 256, 3, 2), (32, 4, 128, 256, 1, 2), (64, 8, 32, 64, 1, 2)]


@pytest.mark.parametrize("n,size,cin,cout,k,stride", STAGE_CONVS)
def test_identical_channels_stay_bitwise_identical_through_a_stage_conv(n, size, cin, cout, k, stride):
  assert jax.default_backend() == "cpu"  # the suite runs on CPU; GPU and TPU keep XLA's own ops
  conv = layers.Conv(cout, (k, k), (stride, stride), padding=((k // 2, k // 2),) * 2, use_bias=False,
                     kernel_init=nn.initializers.constant(0.05))
  gen = np.random.default_rng(0)
  x = jnp.asarray(np.repeat(gen.normal(size=(n, size, size, 1)), cin, -1), jnp.float32)
  params = conv.init(jax.random.key(0), x)
  y, vjp = jax.vjp(lambda p, x_: conv.apply(p, x_), params, x)
  dy = jnp.asarray(np.repeat(gen.normal(size=y.shape[:3] + (1,)), cout, -1), jnp.float32)
  dparams, dx = jax.jit(vjp)(dy)
  dw = dparams["params"]["kernel"]
  assert distinct(y, -1) == 1 and distinct(dx, -1) == 1
  for i in range(k):
    for j in range(k):
      assert distinct(dw[i, j], 0) == 1 and distinct(dw[i, j], 1) == 1, (i, j)


def test_identical_features_stay_bitwise_identical_through_a_dense_layer():
  dense = layers.Dense(10, kernel_init=nn.initializers.constant(0.05))
  gen = np.random.default_rng(0)
  x = jnp.asarray(np.repeat(gen.normal(size=(64, 1)), 32, -1), jnp.float32)
  params = dense.init(jax.random.key(0), x)
  dparams = jax.jit(jax.grad(lambda p: jnp.sum(jnp.sin(dense.apply(p, x)))))(params)
  assert distinct(dparams["params"]["kernel"], 0) == 1


class Net(nn.Module):
  padding: object
  stride: int
  conv: type = layers.Conv
  dense: type = layers.Dense

  @nn.compact
  def __call__(self, x):
    x = nn.relu(self.conv(6, (3, 3), (self.stride, self.stride), padding=self.padding, use_bias=False)(x))
    x = self.conv(8, (1, 1), (self.stride, self.stride), padding="VALID")(x)
    return self.dense(3)(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("padding,stride", [(((1, 1), (1, 1)), 2), ("SAME", 1), ("SAME", 2), ("VALID", 3)])
def test_cpu_gradients_equal_xlas_own_up_to_rounding(padding, stride):
  """Strided, SAME and VALID convs on odd sizes, a 1x1 conv and a dense layer: parameter and input gradients."""
  net, plain = Net(padding, stride), Net(padding, stride, nn.Conv, nn.Dense)
  x = rng.normal(jax.random.key(0), (10, 7, 7, 3))
  gen = np.random.default_rng(1)  # random parameters of init's shapes (compiling flax's initializers takes seconds)
  params = jax.tree.map(lambda s: jnp.asarray(gen.normal(size=s.shape) * 0.3, jnp.float32),
                        jax.eval_shape(net.init, jax.random.key(1), x)["params"])
  grad = lambda m: jax.jit(jax.grad(lambda p, x_: jnp.sum(jnp.sin(m.apply({"params": p}, x_))), (0, 1)))(params, x)
  ours, xlas = grad(net), grad(plain)
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(xlas)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * float(jnp.abs(b).max()))


def test_cpu_convolutions_are_xlas_own_not_ynnpacks():
  assert set(determinism.CPU_XLA_FLAGS) <= set(determinism.in_force("deterministic")["xla_flags"].split())
  conv = nn.Conv(4, (3, 3), use_bias=False)
  x = jnp.ones((2, 6, 6, 3))
  params = conv.init(jax.random.key(0), x)
  text = jax.jit(jax.grad(lambda p: jnp.sum(conv.apply(p, x)))).lower(params).compile().as_text()
  assert " convolution(" in text and "__ynn_fusion" not in text


def bits(a):
  return np.asarray(a).view(np.uint32)


def conv_op(stride, padding, x_shape, w_shape) -> layers.Call:
  """An NHWC / HWIO conv_general_dilated call for these shapes, as the layers hold one."""
  numbers = jax.lax.conv_dimension_numbers(x_shape, w_shape, ("NHWC", "HWIO", "NHWC"))
  return layers.Call(jax.lax.conv_general_dilated, ((stride, stride), padding),
                     (("dimension_numbers", numbers), ("precision", jax.lax.Precision.HIGHEST)))


def test_materialized_is_the_same_bits_even_for_negative_zero():
  a = jnp.asarray([1.5, -0.0, 0.0, -2.0, np.inf, -np.inf, np.nan], jnp.float32)
  np.testing.assert_array_equal(bits(jax.jit(layers.materialized)(a)), bits(a))
  nan_first = a[::-1]  # the second branch: the finite entries keep their bits too
  np.testing.assert_array_equal(bits(jax.jit(layers.materialized)(nan_first)), bits(nan_first))


@pytest.mark.parametrize("stride,padding", [(1, "SAME"), (2, ((1, 1), (1, 1))), (1, "VALID")])
def test_conv_saving_input_gives_the_plain_convs_bits_in_reverse_and_forward_mode(stride, padding):
  op = conv_op(stride, padding, (2, 9, 9, 4), (3, 3, 4, 5))
  x = jax.nn.relu(rng.normal(jax.random.key(0), (2, 9, 9, 4)))  # ReLU: the -0.0 and +0.0 a BN-ReLU produces
  w = rng.normal(jax.random.key(1), (3, 3, 4, 5))
  assert layers.saves_input(op, x, w)
  saving = lambda x_, w_: layers.conv_saving_input(op, x_, w_)
  y, vjp = jax.vjp(op, x, w)
  dy = rng.normal(jax.random.key(2), y.shape)
  ours_y, ours_vjp = jax.vjp(saving, x, w)
  np.testing.assert_array_equal(bits(ours_y), bits(y))
  for ours, xlas in zip(jax.jit(ours_vjp)(dy), jax.jit(vjp)(dy)):
    np.testing.assert_array_equal(bits(ours), bits(xlas))
  dx, dw = rng.normal(jax.random.key(3), x.shape), rng.normal(jax.random.key(4), w.shape)
  np.testing.assert_array_equal(bits(jax.jit(lambda *a: jax.jvp(saving, a[:2], a[2:])[1])(x, w, dx, dw)),
                                bits(jax.jit(lambda *a: jax.jvp(op, a[:2], a[2:])[1])(x, w, dx, dw)))
  grad_x_only = jax.jit(jax.grad(lambda x_: jnp.sum(jnp.sin(saving(x_, w)))))(x)  # a symbolic-zero tangent for w
  xlas_x_only = jax.jit(jax.grad(lambda x_: jnp.sum(jnp.sin(op(x_, w)))))(x)
  np.testing.assert_array_equal(bits(grad_x_only), bits(xlas_x_only))


@pytest.mark.parametrize("size,stride,padding", [(8, 2, "VALID"), (7, 2, "SAME"), (7, 3, ((0, 0), (0, 0)))])
def test_a_strided_1x1_conv_is_the_unstrided_conv_of_the_subsample(size, stride, padding):
  """The forward bit for bit (one product per output pixel either way); the gradients through the layer are
  checked against flax's own above (test_cpu_gradients_equal_xlas_own_up_to_rounding, strides 2 and 3)."""
  x = rng.normal(jax.random.key(0), (4, size, size, 6))
  w = rng.normal(jax.random.key(1), (1, 1, 6, 5))
  op = conv_op(stride, padding, x.shape, w.shape)
  unit, sub = layers.unstrided(op, x)
  assert unit.args == ((1, 1), "VALID") and sub.shape[1] == -(-size // stride)
  np.testing.assert_array_equal(bits(jax.jit(unit)(sub, w)), bits(jax.jit(op)(x, w)))
  assert layers.unstrided(layers.Call(op.primitive, ((stride, stride), ((1, 1), (1, 1))), op.kwargs), x)[1] is x
