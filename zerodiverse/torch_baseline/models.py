"""ConstNet, LeakyNet and the MLP in PyTorch, module for module the Flax models (same names, same maths).

Submodule names are the Flax module names ("stem", "stage1_block0.bn", ...), so converting parameters is a
mechanical rename and transpose (convert.py). The torch models have no initializers of their own that
matter: their weights are always loaded from the JAX initializers' output.
"""

import torch
from torch import nn
from torch.nn import functional as F

from zerodiverse.errors import ConfigError


def batch_norm(features: int) -> nn.BatchNorm2d:
  return nn.BatchNorm2d(features, eps=1e-5, momentum=0.1)  # = Flax momentum 0.9, epsilon 1e-5


def global_mean(x: torch.Tensor) -> torch.Tensor:
  """Mean over H, W: a plain mean, not adaptive_avg_pool2d, whose CUDA backward is nondeterministic."""
  return x.mean(dim=(2, 3))


class Block(nn.Module):
  """h = BN(x); r = Conv3x3(ReLU(h)) [-> dropout]; out = x + r or Conv1x1_stride(h) + r."""

  def __init__(self, cin: int, features: int, stride: int, dropout: float):
    super().__init__()
    self.bn = batch_norm(cin)
    self.conv = nn.Conv2d(cin, features, 3, stride, padding=1, bias=False)  # Flax PAD3
    self.dropout = nn.Dropout(dropout) if dropout > 0 else None
    self.shortcut = (nn.Conv2d(cin, features, 1, stride, bias=False)
                     if cin != features or stride != 1 else None)

  def forward(self, x):
    h = self.bn(x)
    r = self.conv(F.relu(h))
    if self.dropout is not None:
      r = self.dropout(r)
    return (self.shortcut(h) if self.shortcut is not None else x) + r


class ConstNet(nn.Module):
  """The torch twin of zerodiverse.models.constnet.ConstNet (NCHW input)."""

  def __init__(self, num_classes: int, depth: int = 16, width: int = 10, dropout: float = 0.0,
               in_channels: int = 3):
    super().__init__()
    if (depth - 4) % 3 or depth < 7:
      raise ConfigError(f"config.model.depth={depth}: ConstNet needs depth = 3n + 4 with n >= 1 (7, 10, 16, ...)")
    self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
    cin, self.blocks = 16, []
    for stage, features in enumerate((16 * width, 32 * width, 64 * width)):
      for block in range((depth - 4) // 3):
        name = f"stage{stage + 1}_block{block}"
        self.add_module(name, Block(cin, features, 2 if stage > 0 and block == 0 else 1, dropout))
        self.blocks.append(name)
        cin = features
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = self.stem(x)
    for name in self.blocks:
      x = getattr(self, name)(x)
    return self.head(global_mean(F.relu(x)))


class MLP(nn.Module):
  """The torch twin of zerodiverse.models.mlp.MLP; flattens in NHWC order, as the Flax model does."""

  def __init__(self, num_classes: int, in_features: int, width: int = 512):
    super().__init__()
    self.hidden = nn.Linear(in_features, width)
    self.head = nn.Linear(width, num_classes)

  def forward(self, x):
    x = x.permute(0, 2, 3, 1).flatten(1)  # NCHW -> NHWC order, so the kernel rows line up with Flax's
    return self.head(F.relu(self.hidden(x)))


def build(cfg, num_classes: int, image_shape: tuple, dropout: float = 0.0) -> nn.Module:
  """The torch model `cfg` (config.model) describes; `image_shape` is (H, W, C) of one input image."""
  if cfg.name == "constnet":
    return ConstNet(num_classes, cfg.depth, cfg.width, dropout, in_channels=image_shape[-1])
  if cfg.name == "mlp":
    if dropout:
      raise ConfigError(f"config.breaker.dropout={dropout}: the mlp has no residual branch; set it to 0")
    h, w, c = image_shape
    return MLP(num_classes, h * w * c, cfg.width)
  if cfg.name == "leakynet":
    from zerodiverse.torch_baseline import leakynet  # pylint: disable=g-import-not-at-top
    return leakynet.build(cfg, num_classes, image_shape, dropout)
  raise ConfigError(f"config.model.name={cfg.name!r}: the torch backend has constnet, mlp, leakynet")
