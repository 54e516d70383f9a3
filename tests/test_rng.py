"""Named streams and flat draws: rng's draws are jax.random's numbers for the same key and shape."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodiverse import rng
from zerodiverse.models.dropout import Dropout

SHAPES = [(), (7,), (3, 5), (2, 3, 2, 4)]  # a draw of rank 4 costs seconds to compile as the shape


@pytest.mark.parametrize("partitionable", [True, False])
def test_flat_draws_are_the_numbers_jax_random_draws_for_the_shape(partitionable):
  before = jax.config.jax_threefry_partitionable
  jax.config.update("jax_threefry_partitionable", partitionable)
  try:
    for shape in SHAPES:
      key = rng.stream(rng.root_key(3), f"shape{len(shape)}")
      np.testing.assert_array_equal(rng.bits(key, shape), jax.random.bits(key, shape, jnp.uint32))
      np.testing.assert_array_equal(rng.normal(key, shape), jax.random.normal(key, shape, jnp.float32))
      np.testing.assert_array_equal(rng.bernoulli(key, 0.7, shape), jax.random.bernoulli(key, 0.7, shape))
      assert rng.normal(key, shape).shape == shape
    other = rng.normal(rng.root_key(4), (2, 3, 2, 4))  # the check can fail: another key, other numbers
    assert not np.array_equal(other, rng.normal(rng.stream(rng.root_key(3), "shape4"), (2, 3, 2, 4)))
  finally:
    jax.config.update("jax_threefry_partitionable", before)


@pytest.mark.parametrize("collection", ["dropout", "stem_dropout"])
def test_dropout_is_flax_dropout_bit_for_bit_forward_and_backward(collection):
  x = jax.random.normal(jax.random.key(0), (8, 6, 6, 16))
  key = jax.random.key(1)

  def run(module):
    f = lambda v: module.apply({}, v, deterministic=False, rngs={collection: key})
    y, vjp = jax.vjp(f, x)
    return y, vjp(jnp.cos(y))[0]

  ours, flax_own = run(Dropout(0.3, rng_collection=collection)), run(nn.Dropout(0.3, rng_collection=collection))
  for a, b in zip(ours, flax_own):
    np.testing.assert_array_equal(a, b)
  dropped = float(np.mean(np.asarray(ours[0]) == 0))
  assert 0.25 < dropped < 0.35, dropped
  np.testing.assert_array_equal(Dropout(0.3).apply({}, x, deterministic=True), x)
