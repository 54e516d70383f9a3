"""Initializer registry: `get("he_normal", mode="fan_out")` returns a `(key, shape, dtype) -> array`."""

from zerodiverse.inits import fixup, initializers, looks_linear, risotto, zero_init
from zerodiverse.inits.perturb import perturb
from zerodiverse.errors import ConfigError

REGISTRY = {
    "he_normal": initializers.he_normal,
    "lecun_normal": initializers.lecun_normal,
    "orthogonal": initializers.orthogonal,
    "delta_orthogonal": initializers.delta_orthogonal,
    "zeros": initializers.zeros,
    "channel_average": initializers.channel_average,
    "dirac": initializers.dirac,
    "identical_features": initializers.identical_features,
    "k_unique": initializers.k_unique,
    "looks_linear": looks_linear.looks_linear,
    "mirrored_bias": looks_linear.mirrored_bias,
    "zero_init": zero_init.zero_init,
    "fixup": fixup.fixup,
}


def get(name: str, **kwargs) -> initializers.Initializer:
  """The initializer `name` built with `kwargs`; `base=<name>` (for identical_features, k_unique) may be a name."""
  if name not in REGISTRY:
    raise ConfigError(f"unknown initializer {name!r}; choose one of {sorted(REGISTRY)}")
  base = kwargs.get("base")
  if isinstance(base, str) and name != "looks_linear":
    kwargs["base"] = get(base)
  return REGISTRY[name](**kwargs)


__all__ = ["REGISTRY", "get", "initializers", "perturb"]
