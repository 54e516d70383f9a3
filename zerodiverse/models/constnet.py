"""ConstNet (Blumenfeld, Gilboa & Soudry 2020): a pre-activation Wide-ResNet with one 3x3 conv per block.

Depth D gives (D - 4) / 3 blocks per stage, 3 stages of widths 16k, 32k, 64k after a 16-channel stem
(optionally followed by dropout, the authors' `--dropl1`). Block: h = BN(x); a = ReLU(h);
r = Conv3x3(a) [-> dropout]; out = x + r, or Conv1x1_stride(s) + r where the width or stride changes.
Head: ReLU, global average pool, Dense. No final BN, no conv bias.

The stage-entry shortcut's input s (`shortcut_input`): "relu_bn" (default) is s = a = ReLU(BN(x)), what the
authors' trained networks computed: their block's ReLU is in place (model.py, `nn.ReLU(inplace=True)`), so
the 1x1 shortcut reads the rectified tensor, whatever the comment beside it says. "bn" is s = h = BN(x), the
other reading. Both keep channel symmetry; with the same weights their logits differ.

Schemes (config.model.scheme):
  constant         the paper's: stem centre tap 1/in, residual convs 0, shortcuts 1/in, head 0, so every
                   feature is identical and every residual branch outputs 0 at init.
  he               the random arm (`--varnet`): residual N(0, 2/(9 out)), stem N(0, 1/(9 out)), shortcuts
                   N(0, 1/out) (fan-out), head 0.
  random_residual  the authors' `-W s` without `--varnet`: residual convs N(0, 2 s/(9 out)) with
                   s = config.model.residual_var_scale, stem and shortcuts constant as in `constant`, head 0:
                   diverse residual branches on identical stem features.
BN (batchnorm.py): PyTorch's eps, config.model.bn_decay and bn_group_size.
"""

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers
from zerodiverse.errors import ConfigError
from zerodiverse.models.batchnorm import DECAY, batch_norm, check as check_bn
from zerodiverse.models.dropout import Dropout

SCHEMES = ("constant", "he", "random_residual")
SHORTCUT_INPUTS = ("relu_bn", "bn")
PAD3 = ((1, 1), (1, 1))  # PyTorch's padding=1, so stride-2 taps line up with the 1x1 shortcut's.


def scheme_inits(scheme: str, residual_var_scale: float = 1.0) -> dict:
  """The stem, residual and shortcut kernel initializers of `scheme`."""
  constant = dict(stem=inits.get("channel_average"), residual=inits.get("zeros"),
                  shortcut=inits.get("channel_average"))
  if scheme == "constant":
    return constant
  if scheme == "random_residual":
    return dict(constant, residual=inits.get("he_normal", scale=2.0 * residual_var_scale, mode="fan_out"))
  return dict(stem=inits.get("he_normal", scale=1.0, mode="fan_out"),
              residual=inits.get("he_normal", scale=2.0, mode="fan_out"),
              shortcut=inits.get("he_normal", scale=1.0, mode="fan_out"))


class Block(nn.Module):
  """One pre-activation residual block with a single 3x3 conv."""
  features: int
  stride: int
  residual_init: inits.initializers.Initializer
  shortcut_init: inits.initializers.Initializer
  dropout: float = 0.0
  shortcut_input: str = "relu_bn"
  bn_decay: float = DECAY
  bn_group_size: int = 0

  @nn.compact
  def __call__(self, x, train: bool):
    h = batch_norm(train, "bn", self.bn_decay, self.bn_group_size)(x)
    a = nn.relu(h)
    r = layers.Conv(self.features, (3, 3), (self.stride, self.stride), padding=PAD3, use_bias=False,
                kernel_init=self.residual_init, name="conv")(a)
    if self.dropout > 0:
      r = Dropout(self.dropout, deterministic=not train)(r)
    self.sow("intermediates", "residual", r)
    if x.shape[-1] != self.features or self.stride != 1:
      x = layers.Conv(self.features, (1, 1), (self.stride, self.stride), padding="VALID", use_bias=False,
                  kernel_init=self.shortcut_init, name="shortcut")(a if self.shortcut_input == "relu_bn" else h)
    out = x + r
    self.sow("intermediates", "output", out)
    return out


class ConstNet(nn.Module):
  """ConstNet / its randomly initialized arms; `width` is the widen factor k."""
  num_classes: int
  depth: int = 16
  width: int = 10
  scheme: str = "constant"  # config.model.scheme
  dropout: float = 0.0       # residual-branch dropout (config.breaker.dropout)
  stem_dropout: float = 0.0  # dropout after the stem (config.breaker.stem_dropout), its own key stream
  shortcut_input: str = "relu_bn"
  residual_var_scale: float = 1.0  # s of the random_residual scheme
  bn_decay: float = DECAY
  bn_group_size: int = 0

  def __post_init__(self):
    if (self.depth - 4) % 3 or self.depth < 7:
      raise ConfigError(f"config.model.depth={self.depth}: ConstNet needs depth = 3n + 4 with n >= 1 (7, 10, 16, ...)")
    if self.scheme not in SCHEMES:
      raise ConfigError(f"config.model.scheme={self.scheme!r}: ConstNet knows {SCHEMES}")
    if self.width < 1:
      raise ConfigError(f"config.model.width={self.width}: the widen factor must be >= 1")
    for field, rate in (("dropout", self.dropout), ("stem_dropout", self.stem_dropout)):
      if not 0 <= rate < 1:
        raise ConfigError(f"config.breaker.{field}={rate}: a rate in [0, 1)")
    if self.shortcut_input not in SHORTCUT_INPUTS:
      raise ConfigError(f"config.model.shortcut_input={self.shortcut_input!r}: choose one of {SHORTCUT_INPUTS}")
    if self.scheme == "random_residual" and not self.residual_var_scale > 0:
      raise ConfigError(f"config.model.residual_var_scale={self.residual_var_scale}: a variance scale > 0 "
                        "(s = 0 is config.model.scheme='constant')")
    check_bn(self.bn_decay, self.bn_group_size)
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    kernel_inits = scheme_inits(self.scheme, self.residual_var_scale)
    x = layers.Conv(16, (3, 3), padding=PAD3, use_bias=False, kernel_init=kernel_inits["stem"], name="stem")(x)
    if self.stem_dropout > 0:
      x = Dropout(self.stem_dropout, deterministic=not train, rng_collection="stem_dropout")(x)
    self.sow("intermediates", "output", x)
    for stage, features in enumerate((16 * self.width, 32 * self.width, 64 * self.width)):
      for block in range((self.depth - 4) // 3):
        stride = 2 if stage > 0 and block == 0 else 1
        x = Block(features, stride, kernel_inits["residual"], kernel_inits["shortcut"], self.dropout,
                  self.shortcut_input, self.bn_decay, self.bn_group_size,
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


def build(cfg, num_classes: int, dropout: float = 0.0, stem_dropout: float = 0.0) -> nn.Module:
  return ConstNet(num_classes=num_classes, depth=cfg.depth, width=cfg.width, scheme=cfg.scheme, dropout=dropout,
                  stem_dropout=stem_dropout, shortcut_input=cfg.get("shortcut_input", "relu_bn"),
                  residual_var_scale=cfg.get("residual_var_scale", 1.0), bn_decay=cfg.get("bn_decay", DECAY),
                  bn_group_size=cfg.get("bn_group_size", 0) or 0)
