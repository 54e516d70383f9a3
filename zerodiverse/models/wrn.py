"""WRN-d-k (Zagoruyko & Komodakis 2016): pre-activation Wide-ResNet, two 3x3 convs per block.

Depth d = 6n + 4 gives n blocks per stage; widths 16 (stem), 16k, 32k, 64k (k = config.model.width);
stride 2 at the first block of stages 2 and 3. Every scheme of preact.SCHEMES applies (looks-linear and
RISOTTO need an even stem width and k, which 16 k always is).
"""

from zerodiverse.errors import ConfigError
from zerodiverse.models import preact
from zerodiverse.models.preact import GROUPS, param_group  # noqa: F401 (registry interface)


def arch(depth: int, width: int) -> preact.Arch:
  if depth < 10 or (depth - 4) % 6:
    raise ConfigError(f"config.model.depth={depth}: WRN needs depth = 6n + 4 with n >= 1 (10, 16, 22, 28, ...)")
  if width < 1:
    raise ConfigError(f"config.model.width={width}: the widen factor must be >= 1")
  n = (depth - 4) // 6
  return preact.Arch(16, (16 * width, 32 * width, 64 * width), (n, n, n))


def build(cfg, num_classes: int, dropout: float = 0.0):
  return preact.build_arch(cfg, num_classes, dropout, arch(cfg.depth, cfg.width), "wrn")
