"""Which CPU ops keep bitwise identical channels identical: ConstNet-like operands (every input channel the
same, every filter the same, every output-gradient channel the same) through the convs of WRN-10-1 and
WRN-16-4 (batch 32/128, 32x32 and 8x8 inputs): how many distinct output channels the forward conv gives,
distinct input channels the data gradient, and distinct input-channel rows / output-channel columns the
weight gradient, by XLA's own ops and by zerodiverse.layers'; then, for a bare matrix product rows^T @ dy
over K examples, the row counts M at which identical rows come out different. Runs with the XLA_FLAGS of the
environment (no determinism.apply), so that both XLA:CPU conv back ends can be compared:

  python docs/results/cpu_speed/channel_invariance.py                  # XLA's default: YNNPACK convs
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution python docs/results/...
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from zerodiverse import layers


def distinct(a, axis: int) -> int:
  a = np.moveaxis(np.asarray(a), axis, 0)
  return len({s.tobytes() for s in a})


def operands(n, h, cin, cout, k, stride):
  dn = lax.conv_dimension_numbers((n, h, h, cin), (k, k, cin, cout), ("NHWC", "HWIO", "NHWC"))
  op = layers.Call(lax.conv_general_dilated, ((stride, stride), ((k // 2, k // 2),) * 2), (("dimension_numbers", dn),))
  gen = np.random.default_rng(0)
  x = jnp.asarray(np.repeat(gen.normal(size=(n, h, h, 1)), cin, -1), jnp.float32)
  w = jnp.full((k, k, cin, cout), 0.05, jnp.float32)
  ho = (h - 1) // stride + 1
  dy = jnp.asarray(np.repeat(gen.normal(size=(n, ho, ho, 1)), cout, -1), jnp.float32)
  return op, x, w, dy


def product(rows, dy):
  return lax.dot_general(rows, dy, (((0,), (0,)), ((), ())))


def tiled_product(rows, dy):
  """The product layers.tiled_call's weight gradient forms: rows zero-padded to a multiple of ROW_TILE."""
  return product(jnp.pad(rows, ((0, 0), (0, -rows.shape[1] % layers.ROW_TILE))), dy)[:rows.shape[1]]


def stage_convs(n, size, widths):
  out, cin, h = [], 16, size
  for stage, c in enumerate(widths):
    s = 1 if stage == 0 else 2
    out.append((n, h, cin, c, 3, s))
    if cin != c or s != 1:
      out.append((n, h, cin, c, 1, s))
    h = (h - 1) // s + 1
    out.append((n, h, c, c, 3, 1))
    cin = c
  return out


def main():
  print("XLA_FLAGS:", os.environ.get("XLA_FLAGS", ""))
  print("(n, size, cin, cout, k, stride): forward channels, data-gradient channels, weight-gradient (rows, "
        "columns) by XLA's own | by zerodiverse.layers")
  shapes = sorted({s for n in (32, 128) for size in (32, 8) for widths in ((16, 32, 64), (64, 128, 256))
                   for s in stage_convs(n, size, widths)})
  for s in shapes:
    op, x, w, dy = operands(*s)
    xla_dx = jax.jit(lambda x, w, dy: jax.vjp(lambda x_: op(x_, w), x)[1](dy)[0])
    xla_dw = jax.jit(lambda x, w, dy: jax.vjp(lambda w_: op(x, w_), w)[1](dy)[0])
    ours_dx = jax.jit(lambda x, w, dy: layers.data_gradient(op, x, w, dy))
    ours_dw = jax.jit(lambda x, w, dy: layers.weight_gradient(op, x, w, dy))
    y = jax.jit(op)(x, w)
    cells = []
    for dx_fn, dw_fn in ((xla_dx, xla_dw), (ours_dx, ours_dw)):
      dx, dw = dx_fn(x, w, dy), dw_fn(x, w, dy)
      rows = max(distinct(dw[i, j], 0) for i in range(s[4]) for j in range(s[4]))
      cols = max(distinct(dw[i, j], 1) for i in range(s[4]) for j in range(s[4]))
      cells.append(f"{distinct(y, -1)} {distinct(dx, -1)} ({rows}, {cols})")
    flag = "" if all(c == "1 1 (1, 1)" for c in cells) else "   <-- split"
    print(s, " | ".join(cells) + flag, flush=True)
  print("rows^T @ dy, (K, M) and (K, N), identical columns: M (2..72) whose rows split, plain | rows padded to ROW_TILE")
  gen = np.random.default_rng(0)
  for k, n in ((16384, 64), (4096, 32), (65536, 16)):
    col, dcol = gen.normal(size=(k, 1)).astype(np.float32), gen.normal(size=(k, 1)).astype(np.float32)
    dy = jnp.asarray(np.repeat(dcol, n, 1))
    split = {"dot": [], "tiled": []}
    for m in range(2, 73):
      rows = jnp.asarray(np.repeat(col, m, 1))
      for name, fn in (("dot", product), ("tiled", tiled_product)):
        if distinct(jax.jit(fn)(rows, dy), 0) > 1:
          split[name].append(m)
    print(f"K={k} N={n}: {split['dot']} | {split['tiled']}", flush=True)


if __name__ == "__main__":
  main()
