"""torch.profiler's per-operator account of the bench's PyTorch step (ConstNet, batch 128, channels-last, CPU).

  python docs/results/cpu_speed/torch_profile.py 10-1

The counterpart of step_profile.py: which share of torch's step is convolution, BatchNorm and ReLU.
"""
import statistics
import sys
import time

import torch
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

from zerodiverse import bench
from zerodiverse.torch_baseline.models import ConstNet

depth, width = map(int, sys.argv[1].split("-"))
model = ConstNet(bench.NUM_CLASSES, depth, width).to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
images, labels = bench._synthetic(128, 32)  # pylint: disable=protected-access
images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
labels = torch.from_numpy(labels).long()


def step():
  loss = F.cross_entropy(model(images).float(), labels)
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()


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
