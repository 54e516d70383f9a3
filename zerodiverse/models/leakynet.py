"""LeakyNet (Blumenfeld, Gilboa & Soudry 2020; the authors' remodel.py, class LRNet): a plain CNN, no skips,
whose init string controls how well symmetry can be broken.

Layout, as ConstNet's: depth D = 3n + 4 (config.model.depth) gives 3 stages of n block layers, widths 16k,
32k, 64k (k = config.model.width), stride 2 at the first layer of stages 2 and 3 (i = n, 2n).
  stem        a plain 3x3 conv 3 -> 16, no bias, no activation, no b, no BN;
  layer i     (i = 0 .. 3n - 1) y = LeakyReLU_a(Conv3x3(x + b_i)), a learnable scalar b_i (init 0), a = 0.01;
              then dropout (config.breaker.dropout, the per-step "dropout" stream) and, on odd i, BN;
  head        LeakyReLU_a, global average pool, Dense with kernel and bias 0.

config.model.init_string is a string such as "1_iiii_11ii_iiii": underscores are ignored (the grouping is
cosmetic), character 0 initializes the stem, characters 1 .. 3n the layers i = 0 .. 3n - 1. With phase
p = +1 on even i and the stem, p = -1 on odd i, and g = sqrt(2) (1 + a), a layer with fan_in = 9 in starts:
  i      identity centre tap: output d copies input d mod in, value p, divided by a on odd i (-1/a = -100);
  1      averaging centre tap: every entry p / in, divided by a on odd i;
  h      N(0, g / fan_in): variance g, not g^2, over fan_in; no phase, no 1/a;
  k      noisy identity: N(0, 0.01 g / fan_in) plus 0.99 times the `i` tap (its 1/a on odd i, the noise not);
  other  any other character: noisy average, N(0, 0.01 g / fan_in) plus 0.99 times the `1` tap.
An i/1 pair (i even, i + 1) at init undoes the first LeakyReLU's sign-dependent slope with its -1/a gain
and its own activation: x -> -x. So with only i/1 layers the network is linear up to the head's activation
(BN in train mode keeps it odd), "perfect signal propagation without skips".
BN: PyTorch's eps, config.model.bn_decay and bn_group_size (batchnorm.py). Each layer is evaluated once.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers, rng
from zerodiverse.errors import ConfigError
from zerodiverse.models.batchnorm import DECAY, batch_norm, check as check_bn
from zerodiverse.models.dropout import Dropout
from zerodiverse.models.constnet import PAD3

SLOPE = 0.01
GAIN = math.sqrt(2) * (1 + SLOPE)
NOISY = 0.99  # the deterministic share of the noisy characters k and "other"
PAPER_GRID = ("h_hhhh_hhhh_hhhh", "i_iiii_iiii_iiii", "1_iiii_iiii_iiii", "1_iiii_11ii_iiii",
              "1_iiii_1111_iiii", "1_ii11_ii11_ii11", "1_1111_1111_1111")


def characters(code: str, depth: int) -> str:
  """The stem's and every layer's character of an init string, checked against config.model.depth."""
  if (depth - 4) % 3 or depth < 7:
    raise ConfigError(f"config.model.depth={depth}: LeakyNet needs depth = 3n + 4 with n >= 1 (7, 10, 16, ...)")
  chars = code.replace("_", "")
  if len(chars) != 1 + depth - 4 or any(c.isspace() for c in chars):
    raise ConfigError(f"config.model.init_string={code!r}: LeakyNet of config.model.depth={depth} wants 1 + {depth - 4} "
                      f"characters (stem, then each layer; '_' ignored), e.g. the paper's: {', '.join(PAPER_GRID)}")
  return chars


def kernel_init(char: str, odd: bool):
  """The initializer of a conv (Flax layout (3, 3, in, out)) with init character `char`, odd layer or not."""
  tap = inits.get("dirac" if char in "ik" else "channel_average")
  gain = -1.0 / SLOPE if odd else 1.0  # the phase -1 and the 1/a of odd layers

  def init(key, shape, dtype=jnp.float32):
    fan_in = math.prod(shape[:-1])
    if char == "h":
      return math.sqrt(GAIN / fan_in) * rng.normal(key, shape, dtype)
    if char in "i1":
      return gain * tap(key, shape, dtype)
    noise = math.sqrt((1 - NOISY) * GAIN / fan_in) * rng.normal(key, shape, dtype)
    return noise + NOISY * gain * tap(key, shape, dtype)

  return init


class Layer(nn.Module):
  """LeakyReLU_a(Conv3x3(x + b)) [-> dropout] [-> BN]."""
  features: int
  stride: int
  kernel_init: inits.initializers.Initializer
  bn: bool
  dropout: float = 0.0
  bn_decay: float = DECAY
  bn_group_size: int = 0

  @nn.compact
  def __call__(self, x, train: bool):
    b = self.param("bias", nn.initializers.zeros, ())
    x = layers.Conv(self.features, (3, 3), (self.stride, self.stride), padding=PAD3, use_bias=False,
                kernel_init=self.kernel_init, name="conv")(x + b)
    x = nn.leaky_relu(x, SLOPE)
    if self.dropout > 0:
      x = Dropout(self.dropout, deterministic=not train)(x)
    if self.bn:
      x = batch_norm(train, "bn", self.bn_decay, self.bn_group_size)(x)
    self.sow("intermediates", "output", x)
    return x


class LeakyNet(nn.Module):
  num_classes: int
  code: str = "1_iiii_11ii_iiii"  # config.model.init_string (a Module field cannot be named init)
  depth: int = 16
  width: int = 10
  dropout: float = 0.0
  bn_decay: float = DECAY
  bn_group_size: int = 0

  def __post_init__(self):
    characters(self.code, self.depth)
    if self.width < 1:
      raise ConfigError(f"config.model.width={self.width}: the widen factor must be >= 1")
    if not 0 <= self.dropout < 1:
      raise ConfigError(f"config.breaker.dropout={self.dropout}: a rate in [0, 1)")
    check_bn(self.bn_decay, self.bn_group_size)
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    stem, *chars = characters(self.code, self.depth)
    n = (self.depth - 4) // 3
    x = layers.Conv(16, (3, 3), padding=PAD3, use_bias=False, kernel_init=kernel_init(stem, odd=False), name="stem")(x)
    self.sow("intermediates", "output", x)
    for i, char in enumerate(chars):
      stride = 2 if i in (n, 2 * n) else 1
      x = Layer(16 * self.width * 2 ** (i // n), stride, kernel_init(char, odd=i % 2 == 1), bn=i % 2 == 1,
                dropout=self.dropout, bn_decay=self.bn_decay, bn_group_size=self.bn_group_size,
                name=f"layer{i}")(x, train)
    x = jnp.mean(nn.leaky_relu(x, SLOPE), axis=(1, 2))
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
  return LeakyNet(num_classes=num_classes, code=cfg.init_string, depth=cfg.depth, width=cfg.width, dropout=dropout,
                  bn_decay=cfg.get("bn_decay", DECAY), bn_group_size=cfg.get("bn_group_size", 0) or 0)
