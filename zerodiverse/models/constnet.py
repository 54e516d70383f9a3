"""ConstNet (Blumenfeld, Gilboa & Soudry 2020): a pre-activation Wide-ResNet with one 3x3 conv per block.

Depth D gives (D - 4) / 3 blocks per stage, 3 stages of widths 16k, 32k, 64k after a 16-channel stem.
Block: h = BN(x); r = Conv3x3(ReLU(h)) [-> dropout]; out = x + r, or Conv1x1_stride(h) + r where the
width or stride changes. Head: ReLU, global average pool, Dense. No final BN, no conv bias.

init="constant" (the paper's): stem centre tap 1/in, residual convs 0, shortcuts 1/in, head 0, so every
feature is identical and every residual branch outputs 0 at init. init="he" (the random arm): residual
N(0, 2/(9 out)), stem N(0, 1/(9 out)), shortcuts N(0, 1/out) (fan-out), head 0.
"""

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers
from zerodiverse.errors import ConfigError

SCHEMES = {
    "constant": dict(stem=inits.get("channel_average"), residual=inits.get("zeros"),
                     shortcut=inits.get("channel_average")),
    "he": dict(stem=inits.get("he_normal", scale=1.0, mode="fan_out"),
               residual=inits.get("he_normal", scale=2.0, mode="fan_out"),
               shortcut=inits.get("he_normal", scale=1.0, mode="fan_out")),
}

PAD3 = ((1, 1), (1, 1))  # PyTorch's padding=1, so stride-2 taps line up with the 1x1 shortcut's.


def batch_norm(train: bool, name: str) -> nn.BatchNorm:
  # PyTorch defaults (momentum 0.1 there is 0.9 here), as in the paper's code.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class Block(nn.Module):
  """One pre-activation residual block with a single 3x3 conv."""
  features: int
  stride: int
  residual_init: inits.initializers.Initializer
  shortcut_init: inits.initializers.Initializer
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool):
    h = batch_norm(train, "bn")(x)
    r = layers.Conv(self.features, (3, 3), (self.stride, self.stride), padding=PAD3, use_bias=False,
                kernel_init=self.residual_init, name="conv")(nn.relu(h))
    if self.dropout > 0:
      r = nn.Dropout(self.dropout, deterministic=not train)(r)
    self.sow("intermediates", "residual", r)
    if x.shape[-1] != self.features or self.stride != 1:
      x = layers.Conv(self.features, (1, 1), (self.stride, self.stride), padding="VALID", use_bias=False,
                  kernel_init=self.shortcut_init, name="shortcut")(h)
    out = x + r
    self.sow("intermediates", "output", out)
    return out


class ConstNet(nn.Module):
  """ConstNet / its He-initialized twin; `width` is the widen factor k."""
  num_classes: int
  depth: int = 16
  width: int = 10
  scheme: str = "constant"  # config.model.init
  dropout: float = 0.0

  def __post_init__(self):
    if (self.depth - 4) % 3 or self.depth < 7:
      raise ConfigError(f"config.model.depth={self.depth}: ConstNet needs depth = 3n + 4 with n >= 1 (7, 10, 16, ...)")
    if self.scheme not in SCHEMES:
      raise ConfigError(f"config.model.init={self.scheme!r}: ConstNet knows {sorted(SCHEMES)}")
    if self.width < 1:
      raise ConfigError(f"config.model.width={self.width}: the widen factor must be >= 1")
    if not 0 <= self.dropout < 1:
      raise ConfigError(f"config.breaker.dropout={self.dropout}: a rate in [0, 1)")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    scheme = SCHEMES[self.scheme]
    x = layers.Conv(16, (3, 3), padding=PAD3, use_bias=False, kernel_init=scheme["stem"], name="stem")(x)
    self.sow("intermediates", "output", x)
    for stage, features in enumerate((16 * self.width, 32 * self.width, 64 * self.width)):
      for block in range((self.depth - 4) // 3):
        stride = 2 if stage > 0 and block == 0 else 1
        x = Block(features, stride, scheme["residual"], scheme["shortcut"], self.dropout,
                  name=f"stage{stage + 1}_block{block}")(x, train)
    x = jnp.mean(nn.relu(x), axis=(1, 2))
    return layers.Dense(self.num_classes, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros,
                    name="head")(x)


GROUPS = ("stem", "residual", "shortcut", "bn", "head")


def param_group(name: str) -> str:
  """Which part of ConstNet a parameter path belongs to: stem, residual, shortcut, bn or head."""
  for group in ("stem", "head", "shortcut", "bn"):
    if name.startswith(group + "/") or f"/{group}/" in name:
      return group
  return "residual" if "/conv/" in name else "other"


def build(cfg, num_classes: int, dropout: float = 0.0) -> nn.Module:
  return ConstNet(num_classes=num_classes, depth=cfg.depth, width=cfg.width, scheme=cfg.init, dropout=dropout)
