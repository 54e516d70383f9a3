"""ZerO (Zhao, Schaefer & Anandkumar, TMLR 2022): deterministic init from zeros, ones and Hadamard matrices.

For a kernel mapping Q inputs to P outputs (math layout P x Q):
  P == Q: identity;  P < Q: partial identity (output i copies input i);
  P > Q: c * I* H_m I*, the top-left P x Q block of the 2^m Hadamard matrix H_m, m = ceil(log2 P).
The two scale conventions differ by sqrt(2):
  "paper":    c = 2^(-(m-1)/2) (Algorithm 1 of the paper), so for P = 2^m the columns have squared norm 2;
  "notebook": c = 2^(-m/2) (the official notebook's normalized Hadamard), so for P = 2^m the columns are
              orthonormal.
Conv kernels get the matrix at the centre tap. The last layer of each residual branch is set to 0 by the
models (not here). Nothing is random: symmetry is broken by the Hadamard sign structure, not by noise.
"""

import math

import jax.numpy as jnp
import numpy as np

from zerodiverse.errors import ConfigError
from zerodiverse.inits.initializers import Initializer, _centre_tap

CONVENTIONS = ("paper", "notebook")


def hadamard(m: int) -> np.ndarray:
  """The 2^m x 2^m Sylvester Hadamard matrix (entries +-1)."""
  h = np.ones((1, 1))
  for _ in range(m):
    h = np.block([[h, h], [h, -h]])
  return h


def zero_matrix(n_in: int, n_out: int, convention: str = "paper") -> np.ndarray:
  """The ZerO matrix in Flax layout (n_in, n_out)."""
  if convention not in CONVENTIONS:
    raise ConfigError(f"zero_init convention={convention!r}; choose one of {CONVENTIONS}")
  if n_out <= n_in:
    return np.eye(n_in, n_out)
  m = math.ceil(math.log2(n_out))
  c = 2.0 ** (-(m - 1) / 2) if convention == "paper" else 2.0 ** (-m / 2)
  return (c * hadamard(m)[:n_out, :n_in]).T


def zero_init(convention: str = "paper") -> Initializer:
  if convention not in CONVENTIONS:
    raise ConfigError(f"zero_init convention={convention!r}; choose one of {CONVENTIONS}")

  def init(key, shape, dtype=jnp.float32):
    del key
    return _centre_tap(shape, jnp.asarray(zero_matrix(shape[-2], shape[-1], convention)), dtype)

  return init
