"""Looks-linear, ZerO, Fixup and RISOTTO initializers: the algebraic claims each one makes at init."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodiverse import inits, rng
from zerodiverse.errors import ConfigError
from zerodiverse.inits import fixup, risotto, zero_init


def mlp_jacobian_svals(kernel_init, depth: int, width: int, first, last, key) -> np.ndarray:
  """Singular values of the input-output Jacobian of a bias-free ReLU MLP (ReLU after every layer but the last)."""
  keys = jax.random.split(key, depth)
  kernels = [first(keys[0], (width, 2 * width))]
  kernels += [kernel_init(k, (2 * width, 2 * width)) for k in keys[1:-1]]
  kernels.append(last(keys[-1], (2 * width, width)))

  def f(x):
    for w in kernels[:-1]:
      x = jax.nn.relu(x @ w)
    return x @ kernels[-1]

  x = rng.normal(jax.random.key(1), (width,))
  return np.linalg.svd(np.asarray(jax.jit(jax.jacfwd(f))(x), np.float64), compute_uv=False)


def test_looks_linear_orthogonal_depth30_is_an_exact_isometry_and_he_is_not():
  ll = lambda pos: inits.get("looks_linear", position=pos, base="orthogonal")
  sv = mlp_jacobian_svals(ll("hidden"), 30, 32, ll("first"), ll("last"), jax.random.key(0))
  np.testing.assert_allclose(sv, 1.0, atol=1e-5)
  he = inits.get("he_normal")
  sv_he = mlp_jacobian_svals(he, 30, 32, he, inits.get("lecun_normal"), jax.random.key(0))
  spread = sv_he.max() / sv_he.min()
  assert spread > 1e6, spread  # measured 5.9e8 at this seed (s_max 1.6, s_min 2.7e-9)


def test_looks_linear_layout_and_odd_widths():
  u = inits.get("looks_linear", position="hidden")(jax.random.key(0), (6, 4))
  a = u[:3, :2]
  np.testing.assert_array_equal(u, np.block([[a, -a], [-a, a]]))
  first = inits.get("looks_linear", position="first", base="gaussian")(jax.random.key(0), (3, 8))
  np.testing.assert_array_equal(first[:, :4], -first[:, 4:])
  conv = inits.get("looks_linear", position="hidden")(jax.random.key(0), (3, 3, 4, 4))
  assert np.count_nonzero(np.asarray(conv)[[0, 0, 2, 2], [0, 2, 0, 2]]) == 0  # only the centre tap is set
  with pytest.raises(ConfigError, match="even"):
    inits.get("looks_linear", position="first")(jax.random.key(0), (4, 5))
  with pytest.raises(ConfigError, match="even"):
    inits.get("looks_linear", position="last")(jax.random.key(0), (5, 4))


def test_zero_hadamard_columns_orthonormal_in_notebook_convention_and_sqrt2_in_papers():
  for n_in, n_out in [(16, 64), (3, 16), (8, 8 * 4)]:
    notebook = zero_init.zero_matrix(n_in, n_out, "notebook")
    paper = zero_init.zero_matrix(n_in, n_out, "paper")
    np.testing.assert_allclose(notebook @ notebook.T, np.eye(n_in), atol=1e-12)
    np.testing.assert_allclose(paper @ paper.T, 2 * np.eye(n_in), atol=1e-12)
  np.testing.assert_array_equal(zero_init.zero_matrix(8, 8), np.eye(8))
  np.testing.assert_array_equal(zero_init.zero_matrix(8, 4), np.eye(8, 4))  # partial identity
  conv = inits.get("zero_init")(None, (3, 3, 4, 4))
  np.testing.assert_array_equal(conv[1, 1], np.eye(4))
  assert float(jnp.abs(conv).sum()) == 4.0


def test_fixup_scale_formula_and_std():
  assert fixup.fixup_scale(16, 2) == pytest.approx(16 ** -0.5)
  assert fixup.fixup_scale(16, 3) == pytest.approx(16 ** -0.25)
  w = inits.get("fixup", num_branches=9, branch_layers=2)(jax.random.key(0), (3, 3, 64, 64))
  expected = math.sqrt(2 / (9 * 64)) / 3
  assert float(jnp.std(w)) == pytest.approx(expected, rel=0.03)
  with pytest.raises(ConfigError):
    fixup.fixup_scale(4, 1)


@pytest.mark.parametrize("n_in,n_out", [(8, 8), (4, 8)])
def test_risotto_block_is_an_isometry_on_the_mirrored_state(n_in, n_out):
  """Branch W2 relu(W1 relu(x)) plus skip (identity or Ws relu(x)) maps [y; -y] to [U y; -U y], U orthonormal columns."""
  k = jax.jit(risotto.block_kernels, static_argnums=(1, 2))(jax.random.key(3), n_in, n_out)
  w1, w2 = k["conv1"][1, 1], k["conv2"][1, 1]

  def block(y):
    x = jnp.concatenate([y, -y])
    h = jax.nn.relu(x)
    skip = x if k["shortcut"] is None else h @ k["shortcut"][0, 0]
    out = skip + jax.nn.relu(h @ w1) @ w2
    return out

  y = rng.normal(jax.random.key(4), (n_in,))
  out = block(y)
  np.testing.assert_allclose(out[:n_out], -out[n_out:], atol=1e-6)  # stays mirrored
  sv = np.linalg.svd(np.asarray(jax.jit(jax.jacfwd(lambda y: block(y)[:n_out]))(y)), compute_uv=False)
  np.testing.assert_allclose(sv, 1.0, atol=1e-5)
  with pytest.raises(ConfigError, match="shrink"):
    risotto.block_matrices(jax.random.key(0), 8, 4)
