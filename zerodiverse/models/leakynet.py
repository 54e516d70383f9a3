"""LeakyNet (Blumenfeld, Gilboa & Soudry 2020, science.md section 3): a plain CNN, no skips, whose init
string controls how well symmetry can be broken.

`config.model.init` is a string like "1_iiii_11ii_iiii": the first group is the stem, each further group a
stage (widths 16k, 32k, 64k, ... with k = config.model.width; stride 2 at the first layer of every stage
after the first); the paper's D=16 layout is stem + 3 stages of 4. config.model.depth is not used: the
string fixes the depth. Layer l (the stem is l = 0) computes LeakyReLU_a(Conv3x3(x + b_l)) with a learnable
scalar b_l (init 0), a = 0.01, no conv bias, and BatchNorm after the activation on odd l only. Its kernel is
gain_l * base, gain_l = +1 on even and -1/a on odd layers, so an even/odd pair of `i` layers maps x to -x
exactly (perfect signal propagation without skips); base by character:
  h: N(0, g^2 / fan_in), g = sqrt(2) * (1 + a);
  i: identity (Dirac) centre tap, output channel d copies input d mod in;
  1: averaging centre tap, every (in, out) entry 1/in (all output channels identical).
Head: ReLU-free global average pool, Dense with zero kernel and bias.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers
from zerodiverse.errors import ConfigError
from zerodiverse.models.constnet import PAD3, batch_norm

SLOPE = 0.01
PAPER_GRID = ("h_hhhh_hhhh_hhhh", "i_iiii_iiii_iiii", "1_iiii_iiii_iiii", "1_iiii_11ii_iiii",
              "1_iiii_1111_iiii", "1_ii11_ii11_ii11", "1_1111_1111_1111")


def base_init(char: str):
  if char == "h":
    return inits.get("he_normal", scale=(math.sqrt(2) * (1 + SLOPE)) ** 2, mode="fan_in")
  if char == "i":
    return inits.get("dirac")
  if char == "1":
    return inits.get("channel_average")
  raise ConfigError(f"config.model.init: LeakyNet layer code {char!r} is not one of 'h', 'i', '1'")


def scaled(init, gain: float):
  return lambda key, shape, dtype=jnp.float32: gain * init(key, shape, dtype)


def parse(init: str) -> list:
  """[(char, features multiplier index, stride)] per layer from an init string like '1_iiii_11ii_iiii'."""
  groups = init.split("_")
  if len(groups) < 2 or any(not g for g in groups) or set(init) - set("hi1_"):
    raise ConfigError(f"config.model.init={init!r}: LeakyNet wants a stem code and stage groups of h/i/1 "
                      f"joined by '_', e.g. '1_iiii_11ii_iiii' (the paper's: {', '.join(PAPER_GRID)})")
  layers = [(groups[0][0], -1, 1)] if len(groups[0]) == 1 else None
  if layers is None:
    raise ConfigError(f"config.model.init={init!r}: the stem group is one character (h, i or 1)")
  for stage, group in enumerate(groups[1:]):
    layers += [(c, stage, 2 if stage > 0 and j == 0 else 1) for j, c in enumerate(group)]
  return layers


class Layer(nn.Module):
  features: int
  stride: int
  kernel_init: inits.initializers.Initializer
  odd: bool

  @nn.compact
  def __call__(self, x, train: bool):
    b = self.param("bias", nn.initializers.zeros, ())
    x = layers.Conv(self.features, (3, 3), (self.stride, self.stride), padding=PAD3, use_bias=False,
                kernel_init=self.kernel_init, name="conv")(x + b)
    x = nn.leaky_relu(x, SLOPE)
    if self.odd:
      x = batch_norm(train, "bn")(x)
    self.sow("intermediates", "output", x)
    return x


class LeakyNet(nn.Module):
  num_classes: int
  code: str = "1_iiii_11ii_iiii"  # config.model.init (a Module field cannot be named init)
  width: int = 10

  def __post_init__(self):
    parse(self.code)
    if self.width < 1:
      raise ConfigError(f"config.model.width={self.width}: the widen factor must be >= 1")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    for l, (char, stage, stride) in enumerate(parse(self.code)):
      features = 16 if stage < 0 else 16 * self.width * 2 ** stage
      gain = 1.0 if l % 2 == 0 else -1.0 / SLOPE
      x = Layer(features, stride, scaled(base_init(char), gain), odd=l % 2 == 1,
                name="stem" if l == 0 else f"layer{l}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return layers.Dense(self.num_classes, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros,
                    name="head")(x)


GROUPS = ("stem", "conv", "bias", "bn", "head")


def param_group(name: str) -> str:
  for group in ("stem", "head"):
    if name.startswith(group + "/"):
      return group
  if "/bn/" in name:
    return "bn"
  return "bias" if name.endswith("/bias") else "conv"


def build(cfg, num_classes: int, dropout: float = 0.0) -> nn.Module:
  if dropout:
    raise ConfigError(f"config.breaker.dropout={dropout}: LeakyNet has no residual branch; set it to 0")
  return LeakyNet(num_classes=num_classes, code=cfg.init, width=cfg.width)
