"""ResNet-50, pre-activation, ImageNet stem (7x7 stride-2 conv, 3x3 stride-2 max pool): bottlenecks [3, 4, 6, 3].

config.model.width is the stem and first bottleneck's inner width (64 standard); stage outputs are 4w, 8w,
16w, 32w; config.model.depth is ignored. RISOTTO and delta-orthogonal do not apply (bottlenecks shrink the
width) and raise ConfigError; looks-linear applies but the stem's max pool makes the net non-linear at init.
"""

from zerodiverse.errors import ConfigError
from zerodiverse.models import preact
from zerodiverse.models.preact import GROUPS, param_group  # noqa: F401 (registry interface)


def arch(width: int) -> preact.Arch:
  if width < 1:
    raise ConfigError(f"config.model.width={width}: resnet50's base width must be >= 1 (64 standard)")
  return preact.Arch(width, (4 * width, 8 * width, 16 * width, 32 * width), (3, 4, 6, 3), bottleneck=True,
                     imagenet_stem=True)


def build(cfg, num_classes: int, dropout: float = 0.0):
  return preact.build_arch(cfg, num_classes, dropout, arch(cfg.width), "resnet50")
