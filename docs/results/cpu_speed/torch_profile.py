"""torch.profiler's per-operator account of the bench's PyTorch step (ConstNet, batch 128, channels-last, CPU).

  python docs/results/cpu_speed/torch_profile.py 10-1

The counterpart of step_profile.py: which share of torch's step is convolution, BatchNorm and ReLU.
"""
import statistics
import sys
import time

from zerodiverse import bench
from zerodiverse.torch_baseline import determinism

determinism.apply("nondeterministic_allowed")  # the bench's torch_nondeterministic_allowed mode
from torch.profiler import ProfilerActivity, profile  # pylint: disable=g-import-not-at-top,wrong-import-position

depth, width = map(int, sys.argv[1].split("-"))
step, _ = bench.torch_step(dict(depth=depth, width=width, batch=128, image_size=32, dtype="float32"))
for _ in range(3):
  step()
times = []
for _ in range(10):
  t0 = time.perf_counter()
  step()
  times.append(time.perf_counter() - t0)
print(f"WRN-{sys.argv[1]}: median {1e3 * statistics.median(times):.1f} ms per step unprofiled; 5 steps profiled:")
with profile(activities=[ProfilerActivity.CPU]) as prof:
  for _ in range(5):
    step()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
