"""The exact distribution of the squared signal norm in a fully connected ReLU net (Burkholz & Dubatovka 2019).

Net: x_{l+1} = relu(W_l x_l + b_l), width N, W_l iid N(0, sigma_w^2 / N), b_l iid N(0, sigma_b^2), fixed input
with q_0 = |x_0|^2 / N. Conditional on x_l the pre-activations are iid N(0, s_l), s_l = sigma_w^2 q_l +
sigma_b^2, so q is a Markov chain: K ~ Binomial(N, 1/2) units are active and, given K,
N q_{l+1} / s_l ~ chi-square with K degrees of freedom (K = 0: q_{l+1} = 0). Hence
  P(q_{l+1} <= t | q_l) = sum_K Binom(K; N, 1/2) F_{chi2_K}(N t / s(q_l)).
`exact_cdf` propagates the law of q layer by layer on a log-spaced grid (the law of layer l as a discrete
measure on cell midpoints plus an atom at 0); the last layer's CDF is the exact mixture over that measure.
Mean field replaces the chain by its mean, q_{l+1} = (sigma_w^2 q_l + sigma_b^2) / 2: a point mass. The mean
itself is exact at any width; the spread around it is what mean field misses at small width.
"""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from zerodiverse import rng


def mean_field(q0: float, sw2: float, sb2: float, depth: int) -> np.ndarray:
  """[q_1, ..., q_depth] of the mean-field recursion."""
  q, out = q0, []
  for _ in range(depth):
    q = (sw2 * q + sb2) / 2
    out.append(q)
  return np.asarray(out)


def _transition_cdf(t: np.ndarray, s: np.ndarray, width: int) -> np.ndarray:
  """P(q' <= t_j | s_i), shape (len(s), len(t)), for t > 0."""
  from scipy import stats  # pylint: disable=g-import-not-at-top  (1-2 s to import; only the exact law needs it)
  weights = stats.binom.pmf(np.arange(width + 1), width, 0.5)
  u = width * t[None, :] / s[:, None]
  out = np.full(u.shape, weights[0])
  for k in range(1, width + 1):
    out += weights[k] * special.chdtr(k, u)  # stats.chi2.cdf(u, k) without its argument checks (u > 0)
  return out


def exact_cdf(width: int, depth: int, q0: float, sw2: float, sb2: float, grid: np.ndarray,
              cells: int = 600) -> list:
  """CDFs of q_1 .. q_depth evaluated on `grid` (ascending, > 0); the atom at 0 is included in each CDF."""
  mf = mean_field(q0, sw2, sb2, depth)
  edges = np.geomspace(1e-9 * mf.max(), 50 * mf.max(), cells + 1)
  mids = np.sqrt(edges[1:] * edges[:-1])
  # Below layer 0 the chain moves from the same states (the cell midpoints, and q = 0 when biases lift it off
  # 0) at every layer: their transition CDFs are computed once, at first use.
  s_cells = np.append(sw2 * mids + sb2, [sb2] if sb2 > 0 else [])
  from_cells = {}

  def transition(points, name, s, layer):
    """_transition_cdf(points, s, width); below layer 0, s is a prefix of s_cells."""
    if layer == 0:
      return _transition_cdf(points, s, width)
    if name not in from_cells:
      from_cells[name] = _transition_cdf(points, s_cells, width)
    return from_cells[name][:len(s)]

  atom, probs = 0.0, None  # the law of the current layer: P(q = 0) and cell masses at `mids`
  cdfs = []
  for layer in range(depth):
    if layer == 0:
      s, mass = np.asarray([sw2 * q0 + sb2]), np.asarray([1.0])
    else:
      s, mass = s_cells[:cells], probs
      if atom > 0 and sb2 > 0:
        s, mass = s_cells, np.append(mass, atom)
    point_atom = atom if (layer > 0 and sb2 == 0) else 0.0  # q = 0 stays 0 without biases
    cdfs.append(point_atom + mass @ transition(grid, "grid", s, layer))
    if layer < depth - 1:
      edge_cdf = mass @ transition(edges, "edges", s, layer)
      p_zero = mass @ np.full(len(s), 0.5 ** width)
      probs = np.diff(edge_cdf)
      probs[-1] += mass.sum() - edge_cdf[-1]  # the far tail folds into the last cell (`mass` holds the atom
      # at 0 only when biases lift it off 0; without biases it stays in `point_atom`, counted once)
      probs[0] += edge_cdf[0] - p_zero  # mass below the first edge (not at 0) folds into the first cell
      atom = point_atom + p_zero
  return cdfs


def monte_carlo(key, width: int, depth: int, q0: float, sw2: float, sb2: float, samples: int) -> np.ndarray:
  """q_1 .. q_depth of `samples` independently drawn nets on one fixed input: shape (samples, depth)."""
  chunk = int(max(1, min(1000, samples, 2e7 // width ** 2)))

  @jax.jit
  def run(key):
    x = jnp.full((chunk, width), jnp.sqrt(q0))
    qs = []
    for layer in range(depth):
      kw, kb = jax.random.split(jax.random.fold_in(key, layer))
      w = rng.normal(kw, (chunk, width, width)) * jnp.sqrt(sw2 / width)
      b = rng.normal(kb, (chunk, width)) * jnp.sqrt(sb2)
      x = jax.nn.relu(jnp.einsum("bij,bj->bi", w, x) + b)
      qs.append(jnp.mean(x ** 2, axis=1))
    return jnp.stack(qs, 1)

  n = -(-samples // chunk)
  return np.concatenate([np.asarray(run(jax.random.fold_in(key, i))) for i in range(n)])[:samples]


def mean_of(grid: np.ndarray, cdf: np.ndarray) -> float:
  """E[q] = integral of (1 - F) over the grid (trapezoid); the tail past the grid is ignored."""
  return float(np.trapezoid(1.0 - cdf, grid))


def default_grid(q0: float, sw2: float, sb2: float, depth: int, points: int = 1500) -> np.ndarray:
  """0 and log-spaced points around the mean-field values: where the CDFs are evaluated."""
  top = mean_field(q0, sw2, sb2, depth).max()
  return np.concatenate([[0.0], np.geomspace(1e-7 * top, 1e3 * top, points)])


def ks_statistic(sample: np.ndarray, grid: np.ndarray, cdf: np.ndarray) -> float:
  """sup |F_emp - F| for F known on `grid` (0 first, then log-spaced; linear interpolation in between).

  Ties are handled exactly: a sample can hold q = 0 (no active unit) with positive probability, and F has
  an atom there, so both one-sided limits of F_emp are compared with F's.
  """
  x = np.sort(np.asarray(sample, np.float64))
  n = len(x)
  f = np.interp(x, grid, cdf)
  f_left = np.where(x > 0, f, 0.0)  # F(x-): the atom at 0 is not below 0
  right = np.searchsorted(x, x, "right") / n
  left = np.searchsorted(x, x, "left") / n
  return float(max(np.max(np.abs(right - f)), np.max(np.abs(left - f_left))))
