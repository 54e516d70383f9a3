"""Burkholz & Dubatovka's exact law of q = |x|^2 / N in Gaussian ReLU nets, against Monte Carlo and mean field."""

import jax
import numpy as np
import pytest

from zerodiverse.diagnostics import qchain

Q0, SW2, SB2, DEPTH, SAMPLES = 1.0, 2.0, 0.1, 4, 20000
# One-sample Kolmogorov-Smirnov: sqrt(n) D exceeds 1.95 with probability 0.001 under the null.
KS_THRESHOLD = 1.95 / np.sqrt(SAMPLES)  # 0.0138


@pytest.mark.parametrize("width", [5])
def test_exact_law_of_q_matches_monte_carlo_nets_layer_by_layer(width):
  """MC draws real nets (fresh N(0, sw2/N) weights and N(0, sb2) biases); the chain never sees them."""
  mc = qchain.monte_carlo(jax.random.key(width), width, DEPTH, Q0, SW2, SB2, SAMPLES)
  grid = qchain.default_grid(Q0, SW2, SB2, DEPTH)
  cdfs = qchain.exact_cdf(width, DEPTH, Q0, SW2, SB2, grid)
  stats = [qchain.ks_statistic(mc[:, layer], grid, cdfs[layer]) for layer in range(DEPTH)]
  assert max(stats) < KS_THRESHOLD, stats  # measured about 0.005
  # and the test can fail: the law of a wider net is rejected
  wrong = qchain.exact_cdf(2 * width, DEPTH, Q0, SW2, SB2, grid)
  assert qchain.ks_statistic(mc[:, -1], grid, wrong[-1]) > 3 * KS_THRESHOLD


def test_mean_field_gets_the_mean_but_not_the_law_at_small_width():
  mf = qchain.mean_field(Q0, SW2, SB2, DEPTH)
  grid = qchain.default_grid(Q0, SW2, SB2, DEPTH)
  cdf = qchain.exact_cdf(5, DEPTH, Q0, SW2, SB2, grid)[-1]
  assert qchain.mean_of(grid, cdf) == pytest.approx(mf[-1], rel=0.01)  # the mean is exact at any width
  # Mean field puts all mass at mf[-1]; at width 5 most of the mass is more than 50% away from it.
  far = 1.0 - (np.interp(1.5 * mf[-1], grid, cdf) - np.interp(0.5 * mf[-1], grid, cdf))
  assert far > 0.7, far  # measured 0.85
  # ... while a wide net concentrates near the mean-field value (Monte Carlo, width 512)
  wide = qchain.monte_carlo(jax.random.key(7), 512, DEPTH, Q0, SW2, SB2, 400)[:, -1]
  assert np.mean(np.abs(wide / mf[-1] - 1) > 0.5) < 0.05  # measured 0.005
  assert np.std(wide / mf[-1]) < 0.3, np.std(wide / mf[-1])


@pytest.mark.parametrize("width", [4, 16])
def test_without_biases_the_atom_at_zero_is_counted_once(width):
  """sigma_b = 0: a layer with no active unit stays 0 forever, so the atom at q = 0 grows with depth."""
  depth = 6
  grid = qchain.default_grid(Q0, SW2, 0.0, depth)
  cdfs = qchain.exact_cdf(width, depth, Q0, SW2, 0.0, grid)
  for cdf in cdfs:  # a CDF: nondecreasing, total mass 1 (up to the tail past the grid's top, 1e3 q_mf)
    assert np.all(np.diff(cdf) >= -1e-12) and 1 - 1e-3 < cdf[-1] <= 1 + 1e-9, cdf[-1]
  atom = [1 - (1 - 0.5 ** width) ** (layer + 1) for layer in range(depth)]  # P(some layer had no active unit)
  np.testing.assert_allclose([c[0] for c in cdfs], atom, rtol=1e-9)
  mc = qchain.monte_carlo(jax.random.key(width + 100), width, depth, Q0, SW2, 0.0, SAMPLES)
  stats = [qchain.ks_statistic(mc[:, layer], grid, cdfs[layer]) for layer in range(depth)]
  assert max(stats) < KS_THRESHOLD, stats
