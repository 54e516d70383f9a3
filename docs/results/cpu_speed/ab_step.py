"""Median and min time of the bench's compiled JAX step, for interleaved A/B pairs of two checkouts.

  python docs/results/cpu_speed/ab_step.py 10-1 25                     # this checkout
  PYTHONPATH=/path/to/other/checkout python docs/results/cpu_speed/ab_step.py 10-1 25

Run the two alternately several times: the machine's speed drifts by more than most changes measured here.
"""
import statistics
import sys
import time

import zerodiverse
from zerodiverse import bench
from zerodiverse import determinism

determinism.apply("deterministic")
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

depth, width = map(int, sys.argv[1].split("-"))
steps = int(sys.argv[2])
case = dict(mode="jax_deterministic", depth=depth, width=width, batch=128, dtype="float32", image_size=32,
            breaker="none")
compiled, state, images, labels, _ = bench.jax_step(case)
for _ in range(2):
  state, _ = compiled(state, images, labels)
jax.block_until_ready(state)
times = []
for _ in range(steps):
  t0 = time.perf_counter()
  state, _ = compiled(state, images, labels)
  jax.block_until_ready(state)
  times.append(time.perf_counter() - t0)
print(f"{zerodiverse.__file__} WRN-{sys.argv[1]}: median {1e3 * statistics.median(times):.1f} ms, "
      f"min {1e3 * min(times):.1f} ms over {steps} steps")
