"""Named PRNG streams: every random choice of a run comes from (seed, stream name[, step or path]).

Streams are derived by folding a stable hash of their name into the root key, so switching one source of
randomness on or off (a breaker, dropout, augmentation) never changes the numbers drawn by another.
"""

import math
import zlib

import jax
import jax.numpy as jnp


def stable_hash(name: str) -> int:
  """A 31-bit hash of `name` that is the same in every process and Python version (unlike hash())."""
  return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def root_key(seed: int) -> jax.Array:
  return jax.random.key(seed)


def stream(key: jax.Array, name: str) -> jax.Array:
  """The key of the named stream below `key`."""
  return jax.random.fold_in(key, stable_hash(name))


def path_name(path) -> str:
  """'stage1/block0/conv/kernel' for a jax key path: the name a parameter's streams are keyed by."""
  return "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)


def per_path(key: jax.Array, tree, fn):
  """fn(stream(key, path name), path name, leaf) for every leaf: each parameter draws from its own stream,
  so which leaves are touched never changes the numbers any one of them gets."""
  return jax.tree_util.tree_map_with_path(lambda path, leaf: fn(stream(key, path_name(path)), path_name(path), leaf),
                                          tree)


def numpy_seed(seed: int, name: str, *counters: int) -> list[int]:
  """Entropy for np.random.default_rng: host-side streams (data order, augmentation) keyed the same way."""
  return [int(seed), stable_hash(name), *map(int, counters)]


# Draws of a shape taken as one flat vector and reshaped. JAX's threefry gives element i of a shape (row-major)
# the bits of counter i in both of its modes, so these are the numbers jax.random draws for `shape` itself; but
# XLA:CPU compiles a rank-1 draw many times faster than a rank-4 or rank-5 one (jax 0.10: 0.27 s against
# 3.6-9 s for the reorder breaker's sort keys), and every kernel, gradient and activation here has rank 4.

def bits(key: jax.Array, shape: tuple, dtype=jnp.uint32) -> jax.Array:
  """jax.random.bits(key, shape, dtype), drawn flat."""
  return jax.random.bits(key, (math.prod(shape),), dtype).reshape(shape)


def normal(key: jax.Array, shape: tuple, dtype=jnp.float32) -> jax.Array:
  """jax.random.normal(key, shape, dtype), drawn flat."""
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def bernoulli(key: jax.Array, p, shape: tuple) -> jax.Array:
  """jax.random.bernoulli(key, p, shape), drawn flat."""
  return jax.random.bernoulli(key, p, (math.prod(shape),)).reshape(shape)
