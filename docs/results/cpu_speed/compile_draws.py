"""Compile time of XLA:CPU for JAX random draws of a conv-sized shape, drawn as the shape or flat.

    python docs/results/cpu_speed/compile_draws.py

Prints, per draw, the seconds of `jit(...).lower(key).compile()` (best of 3, each in a fresh jit) for the
shape itself and for zerodiverse.rng's flat draw, and whether the two give the same numbers.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from zerodiverse import determinism

determinism.apply("deterministic")

from zerodiverse import rng  # pylint: disable=g-import-not-at-top,wrong-import-position
from zerodiverse.inits import initializers  # pylint: disable=g-import-not-at-top,wrong-import-position

CASES = {  # name: (as jax draws it, drawn flat)
    "bits (8, 3, 3, 16, 4): reorder sort keys": (
        lambda k: jax.random.bits(k, (8, 3, 3, 16, 4), jnp.uint32), lambda k: rng.bits(k, (8, 3, 3, 16, 4))),
    "bits (8, 32, 8, 8, 16): data-gradient sort keys": (
        lambda k: jax.random.bits(k, (8, 32, 8, 8, 16), jnp.uint32), lambda k: rng.bits(k, (8, 32, 8, 8, 16))),
    "bernoulli (32, 8, 8, 16): a dropout mask": (
        lambda k: jax.random.bernoulli(k, 0.9, (32, 8, 8, 16)), lambda k: rng.bernoulli(k, 0.9, (32, 8, 8, 16))),
    "He normal (3, 3, 16, 16): a conv kernel": (
        lambda k: jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")(k, (3, 3, 16, 16)),
        lambda k: initializers.he_normal()(k, (3, 3, 16, 16))),
    "normal (3, 3, 64, 64): grad noise of a kernel": (
        lambda k: jax.random.normal(k, (3, 3, 64, 64)), lambda k: rng.normal(k, (3, 3, 64, 64))),
}


def compile_seconds(fn) -> float:
  best = float("inf")
  for _ in range(3):
    lowered = jax.jit(lambda k: fn(k)).lower(jax.random.key(0))  # a fresh jit: no in-memory cache
    t0 = time.perf_counter()
    lowered.compile()
    best = min(best, time.perf_counter() - t0)
  return best


def main():
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}")
  print("| draw | as the shape, s | flat, s | same numbers |")
  print("|---|---|---|---|")
  for name, (shaped, flat) in CASES.items():
    same = np.array_equal(np.asarray(shaped(jax.random.key(1))), np.asarray(flat(jax.random.key(1))))
    print(f"| {name} | {compile_seconds(shaped):.3f} | {compile_seconds(flat):.3f} | {same} |", flush=True)


if __name__ == "__main__":
  main()
