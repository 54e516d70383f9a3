"""What a process does before JAX creates its backend: determinism flags, then multi-host start-up."""

from zerodiverse import determinism, parallel


def start(config) -> dict:
  """Applies config.determinism and starts jax.distributed if config.parallel asks; returns the flags in force."""
  in_force = determinism.apply(config.determinism, config.get("tf32", False))
  parallel.initialize(config.parallel)
  return in_force
