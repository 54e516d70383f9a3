"""One 3x3 conv (batch 128, 32x32, 64->64, float32): forward, XLA weight and data gradients, and the matrix-product
weight gradient of zerodiverse.layers (whole and as 8 batch-group partials), jitted, best of 3.

  python docs/results/cpu_speed/one_conv.py
"""
import time, jax, jax.numpy as jnp, numpy as np
from jax import lax
from zerodiverse import layers
N,H,C,K = 128, 32, 64, 64
x = jax.random.normal(jax.random.key(0), (N,H,H,C)); w = jax.random.normal(jax.random.key(1), (3,3,C,K))*0.05
dn = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC","HWIO","NHWC"))
op = layers.Call(lax.conv_general_dilated, ((1,1), ((1,1),(1,1))), (("dimension_numbers", dn),))
dy = jax.random.normal(jax.random.key(2), op(x,w).shape)
xla_w = jax.jit(lambda x,w,dy: jax.vjp(lambda w: op(x,w), w)[1](dy)[0])
xla_x = jax.jit(lambda x,w,dy: jax.vjp(lambda x: op(x,w), x)[1](dy)[0])
mm_w = jax.jit(lambda x,w,dy: layers.matmul_weight_gradient(op, x, w, dy))
mm_w8 = jax.jit(lambda x,w,dy: layers.weight_partials(op, x, w, dy, 8))
fwd = jax.jit(op)
def t(f, *a, n=3):
  jax.block_until_ready(f(*a)); ts=[]
  for _ in range(n):
    t0=time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter()-t0)
  return min(ts)
for name,f in [("fwd",fwd),("xla_wgrad",xla_w),("matmul_wgrad",mm_w),("matmul_wgrad_m8",mm_w8),("xla_dgrad",xla_x)]:
  a = (x,w) if name=="fwd" else (x,w,dy)
  print(name, round(t(f,*a)*1000,1), "ms", flush=True)
print("maxdiff", float(jnp.abs(xla_w(x,w,dy)-mm_w(x,w,dy)).max()), float(jnp.abs(xla_w(x,w,dy)).max()))
