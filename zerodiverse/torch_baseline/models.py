"""ConstNet, LeakyNet and the MLP in PyTorch, module for module the Flax models (same names, same maths).

Submodule names are the Flax module names ("stem", "stage1_block0.bn", ...), so converting parameters is a
mechanical rename and transpose (convert.py). The torch models have no initializers of their own that
matter: their weights are always loaded from the JAX initializers' output.
"""

import torch
from torch import nn
from torch.nn import functional as F

from zerodiverse.errors import ConfigError


class BatchNorm(nn.BatchNorm2d):
  """zerodiverse.models.batchnorm in torch: running-average `decay` (torch momentum 1 - decay), and train-mode
  statistics over groups of `group_size` consecutive examples (0 = the whole batch) whose running statistics
  follow the first group, as a DataParallel replica 0 does."""

  def __init__(self, features: int, decay: float = 0.9, group_size: int = 0):
    super().__init__(features, eps=1e-5, momentum=1.0 - decay)
    self.group_size = group_size

  def forward(self, x):
    if not (self.training and self.group_size):
      return super().forward(x)
    groups = x.split(self.group_size)
    return torch.cat([F.batch_norm(g, self.running_mean if i == 0 else None, self.running_var if i == 0 else None,
                                   self.weight, self.bias, True, self.momentum, self.eps)
                      for i, g in enumerate(groups)])


def bn_settings(cfg) -> dict:
  """The BN settings of config.model (model.batchnorm's defaults where absent)."""
  return dict(decay=cfg.get("bn_decay", 0.9), group_size=cfg.get("bn_group_size", 0) or 0)


def global_mean(x: torch.Tensor) -> torch.Tensor:
  """Mean over H, W: a plain mean, not adaptive_avg_pool2d, whose CUDA backward is nondeterministic."""
  return x.mean(dim=(2, 3))


class Block(nn.Module):
  """h = BN(x); a = ReLU(h); r = Conv3x3(a) [-> dropout]; out = x + r or Conv1x1_stride(a or h) + r."""

  def __init__(self, cin: int, features: int, stride: int, dropout: float, shortcut_input: str = "relu_bn",
               bn: dict | None = None):
    super().__init__()
    self.bn = BatchNorm(cin, **(bn or {}))
    self.conv = nn.Conv2d(cin, features, 3, stride, padding=1, bias=False)  # Flax PAD3
    self.dropout = nn.Dropout(dropout) if dropout > 0 else None
    self.shortcut = (nn.Conv2d(cin, features, 1, stride, bias=False)
                     if cin != features or stride != 1 else None)
    self.shortcut_input = shortcut_input

  def forward(self, x):
    h = self.bn(x)
    a = F.relu(h)  # not in place: h stays BN(x) for shortcut_input="bn"
    r = self.conv(a)
    if self.dropout is not None:
      r = self.dropout(r)
    if self.shortcut is None:
      return x + r
    return self.shortcut(a if self.shortcut_input == "relu_bn" else h) + r


class ConstNet(nn.Module):
  """The torch twin of zerodiverse.models.constnet.ConstNet (NCHW input)."""

  def __init__(self, num_classes: int, depth: int = 16, width: int = 10, dropout: float = 0.0,
               in_channels: int = 3, shortcut_input: str = "relu_bn", bn: dict | None = None):
    super().__init__()
    if (depth - 4) % 3 or depth < 7:
      raise ConfigError(f"config.model.depth={depth}: ConstNet needs depth = 3n + 4 with n >= 1 (7, 10, 16, ...)")
    self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
    cin, self.blocks = 16, []
    for stage, features in enumerate((16 * width, 32 * width, 64 * width)):
      for block in range((depth - 4) // 3):
        name = f"stage{stage + 1}_block{block}"
        self.add_module(name, Block(cin, features, 2 if stage > 0 and block == 0 else 1, dropout, shortcut_input, bn))
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
    return ConstNet(num_classes, cfg.depth, cfg.width, dropout, in_channels=image_shape[-1],
                    shortcut_input=cfg.get("shortcut_input", "relu_bn"), bn=bn_settings(cfg))
  if cfg.name == "mlp":
    if dropout:
      raise ConfigError(f"config.breaker.dropout={dropout}: the mlp has no residual branch; set it to 0")
    h, w, c = image_shape
    return MLP(num_classes, h * w * c, cfg.width)
  if cfg.name == "leakynet":
    from zerodiverse.torch_baseline import leakynet  # pylint: disable=g-import-not-at-top
    return leakynet.build(cfg, num_classes, image_shape, dropout)
  raise ConfigError(f"config.model.name={cfg.name!r}: the torch backend has constnet, mlp, leakynet")
