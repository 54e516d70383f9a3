"""LeakyNet in PyTorch, the twin of zerodiverse/models/leakynet.py (the authors' LRNet, remodel.py).

Stem: a plain 3x3 conv to 16 channels. Layer i (i = 0 .. 3n - 1 for depth 3n + 4): LeakyReLU_a(Conv3x3(x + b_i))
with a learnable scalar b_i and a = 0.01, then dropout, then BN on odd i; stride 2 at i = n and 2n. Head:
LeakyReLU_a, global mean, Dense. Names follow the Flax module (stem, layer{i}.{conv,bn,bias}, head). Its
numbers always come from the JAX initializers, converted by name: this module fixes only names and maths.
"""

from torch import nn
from torch.nn import functional as F

import torch

from zerodiverse.models.leakynet import SLOPE, characters
from zerodiverse.torch_baseline.models import BatchNorm, bn_settings, global_mean


class Layer(nn.Module):

  def __init__(self, cin: int, cout: int, stride: int, bn: dict | None, dropout: float):
    super().__init__()
    self.bias = nn.Parameter(torch.zeros(()))  # the scalar b_i, added to the input (Flax: layer{i}/bias)
    self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
    self.dropout = nn.Dropout(dropout) if dropout > 0 else None
    self.bn = BatchNorm(cout, **bn) if bn is not None else None

  def forward(self, x):
    x = F.leaky_relu(self.conv(x + self.bias), SLOPE)
    if self.dropout is not None:
      x = self.dropout(x)
    return self.bn(x) if self.bn is not None else x


class LeakyNet(nn.Module):

  def __init__(self, num_classes: int, code: str = "1_iiii_11ii_iiii", depth: int = 16, width: int = 10,
               in_channels: int = 3, dropout: float = 0.0, bn: dict | None = None):
    super().__init__()
    n = (depth - 4) // 3
    self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
    self.layers, cin = [], 16
    for i in range(len(characters(code, depth)) - 1):
      cout = 16 * width * 2 ** (i // n)
      self.add_module(f"layer{i}", Layer(cin, cout, 2 if i in (n, 2 * n) else 1,
                                         (bn or {}) if i % 2 else None, dropout))
      self.layers.append(f"layer{i}")
      cin = cout
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = self.stem(x)
    for name in self.layers:
      x = getattr(self, name)(x)
    return self.head(global_mean(F.leaky_relu(x, SLOPE)))


def build(cfg, num_classes: int, image_shape: tuple, dropout: float = 0.0) -> LeakyNet:
  return LeakyNet(num_classes, cfg.init_string, cfg.depth, cfg.width, in_channels=image_shape[-1], dropout=dropout,
                  bn=bn_settings(cfg))
