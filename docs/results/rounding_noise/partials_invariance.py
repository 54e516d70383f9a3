"""Whether the reorder emulation's batched partial sums keep ConstNet-like channels bitwise identical: every
conv shape of WRN-10-1 and WRN-16-4 (batch 32 and 128, 32x32 and 8x8 inputs) as in
docs/results/cpu_speed/channel_invariance.py, m = 8 groups; per shape the most distinct input-channel rows and
output-channel columns of any partial's tap, the most distinct data-gradient channels (batch 32 only), and the
relative error of the partials' sum against the full weight gradient; then three dense heads.

  python docs/results/rounding_noise/partials_invariance.py
"""
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cpu_speed"))
from zerodiverse import determinism
determinism.apply("deterministic")
import jax, numpy as np, jax.numpy as jnp
from channel_invariance import operands, stage_convs, distinct
from zerodiverse import layers
shapes = sorted({s for n in (32, 128) for size in (32, 8) for widths in ((16, 32, 64), (64, 128, 256)) for s in stage_convs(n, size, widths)})
bad = 0
for s in shapes:
    op, x, w, dy = operands(*s)
    pw = jax.jit(lambda x, w, dy: layers.weight_partials(op, x, w, dy, 8))(x, w, dy)
    px = jax.jit(lambda x, w, dy: layers.data_partials(op, x, w, dy, 8))(x, w, dy) if s[0]==32 else None
    k = s[4]
    rows = max(distinct(pw[g, i, j], 0) for g in range(8) for i in range(k) for j in range(k))
    cols = max(distinct(pw[g, i, j], 1) for g in range(8) for i in range(k) for j in range(k))
    dx = max(distinct(px[g], -1) for g in range(8)) if px is not None else "-"
    full = np.asarray(layers.weight_gradient(op, x, w, dy), np.float64)
    err = np.max(np.abs(np.asarray(pw, np.float64).sum(0) - full)) / np.max(np.abs(full))
    flag = "" if (rows, cols) == (1, 1) and dx in (1, "-") else "  <-- split"
    bad += bool(flag)
    print(s, rows, cols, dx, f"relerr {err:.1e}", flag, flush=True)
# dense
for n, cin, cout in ((128, 64, 10), (128, 256, 10), (32, 30, 7)):
    op = layers.Call(jax.lax.dot_general, ((((1,), (0,)), ((), ())),), ())
    gen = np.random.default_rng(0)
    x = jnp.asarray(np.repeat(gen.normal(size=(n, 1)), cin, -1), jnp.float32)
    w = jnp.full((cin, cout), 0.05, jnp.float32)
    dy = jnp.asarray(np.repeat(gen.normal(size=(n, 1)), cout, -1), jnp.float32)
    pw = jax.jit(lambda x, w, dy: layers.weight_partials(op, x, w, dy, 8))(x, w, dy)
    r = max(distinct(pw[g], 0) for g in range(8)); c = max(distinct(pw[g], 1) for g in range(8))
    bad += (r, c) != (1, 1)
    print("dense", n, cin, cout, r, c)
print("shapes with split channels:", bad)
