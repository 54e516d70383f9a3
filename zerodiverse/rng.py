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


def numpy_seed(seed: int, name: str, *counters: int) -> list[int]:
  """Entropy for np.random.default_rng: host-side streams (data order, augmentation) keyed the same way."""
  return [int(seed), stable_hash(name), *map(int, counters)]
