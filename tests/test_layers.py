"""zerodiverse.layers on CPU: inside matmul_conv_backward a conv's weight gradient is one matrix product, equal
to XLA's own up to float32 rounding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodiverse import layers


class Net(nn.Module):
  padding: object
  stride: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(layers.Conv(6, (3, 3), (self.stride, self.stride), padding=self.padding, use_bias=False)(x))
    x = layers.Conv(4, (1, 1), padding="VALID")(x)
    return layers.Dense(3)(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("padding,stride", [(((1, 1), (1, 1)), 2), ("SAME", 1)])
def test_cpu_conv_backward_is_a_matmul_equal_to_xlas_up_to_rounding(padding, stride):
  assert jax.default_backend() == "cpu"  # the suite runs on CPU; GPU and TPU keep XLA's convolutions
  net = Net(padding, stride)
  x = jax.random.normal(jax.random.key(0), (10, 7, 7, 3))
  params = net.init(jax.random.key(1), x)["params"]
  loss = lambda p: jnp.sum(jnp.sin(net.apply({"params": p}, x)))
  with layers.matmul_conv_backward():
    fast_fn = jax.jit(jax.grad(loss)).lower(params).compile()
  xla_fn = jax.jit(jax.grad(loss)).lower(params).compile()
  # XLA's backward has a weight-gradient convolution per conv layer; ours has a matrix product instead.
  count = lambda fn: fn.as_text().count(" convolution(")
  assert count(fast_fn) <= count(xla_fn) - 2, (count(fast_fn), count(xla_fn))
  fast, slow = fast_fn(params), xla_fn(params)
  for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(slow)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * float(jnp.abs(b).max()))
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(slow)))
