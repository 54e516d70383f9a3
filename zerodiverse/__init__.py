"""zerodiverse: feature diversity and explicit, seeded symmetry breaking at initialization, in JAX/Flax."""

__version__ = "0.1.0"
