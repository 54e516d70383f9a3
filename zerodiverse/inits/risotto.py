"""RISOTTO-style residual init (after Gadhikar & Burkholz 2022, arXiv 2210.02411): exact isometry of ReLU blocks.

What is established. RISOTTO builds each residual block from looks-linear (mirrored) blocks of orthogonal
submatrices, so that the whole block, skip plus residual branch, acts at init as an orthogonal map on the
looks-linear state [y; -y], for finite width and depth and without normalization.

Our construction (derived here, not copied from the paper). For a pre-activation block with two convs and
a state x = [y; -y] (n_in channels per half):
  branch  r = W2 relu(W1 relu(x)),   W1 = hidden(P), W2 = hidden(Q)   (looks-linear hidden kernels),
  skip    x, or Ws relu(x) with Ws = hidden(S) where the width changes,
  output  [(S + Q P) y; -(S + Q P) y]   (S = I for the identity skip).
With P (n_out x n_in) orthonormal columns, U and S random (semi-)orthogonal and Q = (U - S) P^T, we get
Q P = U - S, so the block maps y to U y: every singular value of its Jacobian on the mirrored state is 1,
and the state stays mirrored, so blocks compose. The residual branch (U - S) y carries as much signal as
the skip (E|(U - I) y|^2 = 2|y|^2 for Haar U), i.e. it does not start biased towards the skip.

Gap (documented, not guessed): the paper's text could not be retrieved here, so its exact parametrization
(the weights alpha/beta on branch and skip, how its submatrices are sampled, its treatment of bottlenecks
and downsampling) is not reproduced. What we implement satisfies the isometry the paper claims, and the
test checks it. Convs use the centre tap only; a stride-2 block subsamples space and is an isometry only
on the kept pixels; BN in eval mode at init scales by 1/sqrt(1 + eps). Blocks whose first conv shrinks the
width (bottlenecks) cannot have P with orthonormal columns: the models refuse RISOTTO there.
"""

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from zerodiverse.errors import ConfigError
from zerodiverse.inits.initializers import _centre_tap
from zerodiverse.inits.looks_linear import mirror


def block_matrices(key, n_in: int, n_out: int) -> dict:
  """P, Q, S (math layout, out x in) with S + Q P orthogonal (orthonormal columns); S = I when n_in == n_out."""
  if n_out < n_in:
    raise ConfigError(f"risotto needs blocks that do not shrink the width, got {n_in} -> {n_out} channels")
  k_p, k_u, k_s = jax.random.split(key, 3)
  orth = jinit.orthogonal()
  p = orth(k_p, (n_out, n_in), jnp.float32)
  u = orth(k_u, (n_out, n_in), jnp.float32)
  s = jnp.eye(n_out) if n_in == n_out else orth(k_s, (n_out, n_in), jnp.float32)
  q = (u - s) @ p.T
  return {"p": p, "q": q, "s": s}


def block_kernels(key, n_in: int, n_out: int, kernel_size=(3, 3)) -> dict:
  """Flax-layout looks-linear kernels conv1, conv2 (spatial `kernel_size`) and shortcut (1x1) for one block.

  The block state has 2 * n_in input and 2 * n_out output channels; shortcut is None for an identity skip.
  """
  m = block_matrices(key, n_in, n_out)
  conv1 = _centre_tap((*kernel_size, 2 * n_in, 2 * n_out), mirror(m["p"].T, "hidden"), jnp.float32)
  conv2 = _centre_tap((*kernel_size, 2 * n_out, 2 * n_out), mirror(m["q"].T, "hidden"), jnp.float32)
  shortcut = None
  if n_in != n_out:
    shortcut = _centre_tap((1, 1, 2 * n_in, 2 * n_out), mirror(m["s"].T, "hidden"), jnp.float32)
  return {"conv1": conv1, "conv2": conv2, "shortcut": shortcut}
