"""LeakyNet in PyTorch (science.md section 3), the twin of zerodiverse/models/leakynet.py (issue 3).

A plain CNN with ConstNet D=16's widths and strides: stem 3x3 -> 16, then 3 stages of 4 layers (16k, 32k,
64k channels, stride 2 at the first layer of stages 2 and 3). Layer i computes
LeakyReLU_a(Conv3x3(x + b_i)) with a learnable scalar b_i and a = 0.01; BN follows the activation on odd
layers. The head is global mean then Dense. Its numbers always come from the JAX initializers (the init
string h/i/1, gains +1 / -1/a), converted by name: this module only fixes the names and the maths.

NOT YET CHECKED against the JAX LeakyNet (written concurrently): after merging issue 3, align the
submodule names (here layer{i}.conv, layer{i}.bn, layer{i}.b, head) with the Flax ones and add LeakyNet to
the parity test in tests/test_torch_twin.py.
"""

import torch
from torch import nn
from torch.nn import functional as F

from zerodiverse.errors import ConfigError
from zerodiverse.torch_baseline.models import batch_norm, global_mean

SLOPE = 0.01


class Layer(nn.Module):

  def __init__(self, cin: int, cout: int, stride: int, norm: bool):
    super().__init__()
    self.b = nn.Parameter(torch.zeros(()))
    self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
    self.bn = batch_norm(cout) if norm else None

  def forward(self, x):
    x = F.leaky_relu(self.conv(x + self.b), SLOPE)
    return self.bn(x) if self.bn is not None else x


class LeakyNet(nn.Module):

  def __init__(self, num_classes: int, width: int = 10, in_channels: int = 3):
    super().__init__()
    plan = [(in_channels, 16, 1)]
    cin = 16
    for stage, cout in enumerate((16 * width, 32 * width, 64 * width)):
      for i in range(4):
        plan.append((cin, cout, 2 if stage > 0 and i == 0 else 1))
        cin = cout
    self.layers = [f"layer{i}" for i in range(len(plan))]
    for i, (a, b, stride) in enumerate(plan):
      self.add_module(f"layer{i}", Layer(a, b, stride, norm=i % 2 == 1))
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    for name in self.layers:
      x = getattr(self, name)(x)
    return self.head(global_mean(x))


def build(cfg, num_classes: int, image_shape: tuple, dropout: float = 0.0) -> LeakyNet:
  if dropout:
    raise ConfigError(f"config.breaker.dropout={dropout}: LeakyNet has no residual branch; set it to 0")
  return LeakyNet(num_classes, cfg.width, in_channels=image_shape[-1])
