"""ResNet-18, pre-activation, CIFAR stem (a 3x3 stride-1 conv, no max pool): basic blocks [2, 2, 2, 2].

config.model.width is the first stage's width (64 in the standard net; stages w, 2w, 4w, 8w);
config.model.depth is ignored (the depth is 18).
"""

from zerodiverse.errors import ConfigError
from zerodiverse.models import preact
from zerodiverse.models.preact import GROUPS, param_group  # noqa: F401 (registry interface)


def arch(width: int) -> preact.Arch:
  if width < 1:
    raise ConfigError(f"config.model.width={width}: resnet18's base width must be >= 1 (64 standard)")
  return preact.Arch(width, (width, 2 * width, 4 * width, 8 * width), (2, 2, 2, 2))


def build(cfg, num_classes: int, dropout: float = 0.0):
  return preact.build_arch(cfg, num_classes, dropout, arch(cfg.width), "resnet18")
