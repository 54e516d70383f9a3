"""Named PRNG streams: every random choice of a run comes from (seed, stream name[, step or path]).

Streams are derived by folding a stable hash of their name into the root key, so switching one source of
randomness on or off (a breaker, dropout, augmentation) never changes the numbers drawn by another.
"""

import zlib

import jax


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
