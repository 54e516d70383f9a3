"""Pre-activation ResNets (He et al. 2016, "Identity Mappings") with the initializations compared in docs/science.md.

One module serves wrn, resnet18 and resnet50: a stem, stages of basic (two 3x3 convs) or bottleneck
(1x1, 3x3, 1x1; 4x expansion) blocks, a final BN-ReLU, global average pool and a Dense head.
Block: h = ReLU(BN(x)); r = the branch's convs on h with BN-ReLU between them; out = x + r, or
Conv1x1_stride(h) + r where the width or stride changes. Stride sits on the first conv (basic) or the 3x3
(bottleneck). Convs have no bias; padding is PyTorch's k // 2.

Schemes (config.model.scheme):
  he                He normal (fan-in) convs, LeCun-normal head, BN.
  delta_orthogonal  Xiao et al.: orthogonal centre taps (no conv may shrink the width), orthogonal head, BN.
  looks_linear      Burkholz & Dubatovka, orthogonal base (config.model.ll_base: orthogonal | gaussian):
                    stem "first", every block conv and shortcut "hidden", head "last"; even widths only.
  risotto           looks-linear blocks with S + Q P orthogonal (inits/risotto.py); basic blocks only.
  zero              ZerO (config.model.zero_convention: paper | notebook): identity/Hadamard centre taps,
                    last conv of each branch 0, head partial identity; BN; no randomness at all.
  fixup             no BN; He scaled by L^(-1/(2m-2)) on all but the last conv of a branch (0), head 0,
                    scalar biases before each conv and activation, a scalar multiplier (1) per branch.
  skipinit          BN kept, He convs, a learnable scalar 0 multiplying each residual branch.
  rezero            no normalization, He convs, one learnable scalar 0 per residual block (x + alpha F(x)).
  constant          ConstNet-style identical features (ConstNet's init carried over): stem, shortcuts and
                    every branch conv but the last are channel-averaging centre taps (1/in), the last conv of
                    each branch and the head are 0, BN kept: every feature of a layer is identical at init.
With skipinit, rezero, fixup, zero and constant every residual branch outputs 0 at init: each block computes
its skip.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from zerodiverse import inits, layers
from zerodiverse.errors import ConfigError
from zerodiverse.inits import risotto
from zerodiverse.models.dropout import Dropout

SCHEMES = ("he", "delta_orthogonal", "looks_linear", "risotto", "zero", "fixup", "skipinit", "rezero", "constant")
NO_NORM = ("fixup", "rezero")


@dataclasses.dataclass(frozen=True)
class Arch:
  """The shape of a pre-activation ResNet."""
  stem_width: int
  stage_widths: tuple        # output channels of each stage's blocks
  blocks: tuple              # blocks per stage
  bottleneck: bool = False   # stage width = 4 x the bottleneck's inner width
  imagenet_stem: bool = False  # 7x7 stride-2 conv + 3x3 stride-2 max pool, else a 3x3 conv

  @property
  def branch_layers(self) -> int:
    return 3 if self.bottleneck else 2

  def conv_shapes(self):
    """(name, n_in, n_out) of every conv, in order; used to check that a scheme applies."""
    shapes, n_in = [("stem", 3, self.stem_width)], self.stem_width
    for stage, (width, count) in enumerate(zip(self.stage_widths, self.blocks)):
      for block in range(count):
        inner = [width // 4, width // 4, width] if self.bottleneck else [width, width]
        prev = n_in
        for i, w in enumerate(inner):
          shapes.append((f"stage{stage + 1}_block{block}/conv{i + 1}", prev, w))
          prev = w
        if n_in != width:
          shapes.append((f"stage{stage + 1}_block{block}/shortcut", n_in, width))
        n_in = width
    return shapes


def check_scheme(scheme: str, arch: Arch, model: str) -> None:
  """ConfigError, naming config.model.scheme, when `scheme` cannot initialize `arch`."""
  if scheme not in SCHEMES:
    raise ConfigError(f"config.model.scheme={scheme!r}: {model} knows {SCHEMES}")
  shapes = arch.conv_shapes()
  if scheme in ("looks_linear", "risotto"):
    odd = [(n, o) for n, _, o in shapes if o % 2]
    if odd:
      raise ConfigError(f"config.model.scheme={scheme!r}: looks-linear layers need even widths, but {odd[0][0]} "
                        f"has {odd[0][1]} channels; choose an even config.model.width")
  if scheme == "risotto" and arch.bottleneck:
    raise ConfigError(f"config.model.scheme='risotto': {model}'s bottleneck blocks shrink the width, so no "
                      "looks-linear block can be an isometry there; use wrn or resnet18")
  if scheme == "delta_orthogonal":
    shrink = [(n, i, o) for n, i, o in shapes if i > o]
    if shrink:
      raise ConfigError(f"config.model.scheme='delta_orthogonal': {shrink[0][0]} maps {shrink[0][1]} to "
                        f"{shrink[0][2]} channels, but delta-orthogonal needs in <= out; choose another init")


def _const(value):
  return lambda key, shape, dtype=jnp.float32: value.astype(dtype)


def _unused(key, shape, dtype=jnp.float32):
  """Stands in outside init, where Flax may still trace an initializer for its shape."""
  return jnp.zeros(shape, dtype)


def conv(features, k, stride, init, name):
  return layers.Conv(features, (k, k), (stride, stride), padding=((k // 2, k // 2),) * 2, use_bias=False,
                 kernel_init=init, name=name)


def batch_norm(train: bool, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


@dataclasses.dataclass(frozen=True)
class Options:
  scheme: str = "he"
  num_branches: int = 1
  branch_layers: int = 2
  ll_base: str = "orthogonal"
  zero_convention: str = "paper"

  def conv_init(self, last: bool):
    """The kernel init of a branch conv (the branch's last conv when `last`)."""
    s = self.scheme
    if s in ("he", "skipinit", "rezero"):
      return inits.get("he_normal")
    if s == "delta_orthogonal":
      return inits.get("delta_orthogonal")
    if s == "looks_linear":
      return inits.get("looks_linear", position="hidden", base=self.ll_base)
    if s == "zero":
      return inits.get("zeros") if last else inits.get("zero_init", convention=self.zero_convention)
    if s == "constant":
      return inits.get("zeros") if last else inits.get("channel_average")
    if s == "fixup":
      return inits.get("zeros") if last else inits.get("fixup", num_branches=self.num_branches,
                                                        branch_layers=self.branch_layers)
    raise AssertionError(s)

  def shortcut_init(self):
    s = self.scheme
    if s == "constant":
      return inits.get("channel_average")
    if s == "looks_linear":
      return inits.get("looks_linear", position="hidden", base=self.ll_base)
    if s == "zero":
      return inits.get("zero_init", convention=self.zero_convention)
    if s == "delta_orthogonal":
      return inits.get("delta_orthogonal")
    return inits.get("he_normal")

  def stem_init(self):
    s = self.scheme
    if s == "constant":
      return inits.get("channel_average")
    if s in ("looks_linear", "risotto"):
      return inits.get("looks_linear", position="first", base=self.ll_base)
    if s == "zero":
      return inits.get("zero_init", convention=self.zero_convention)
    if s == "delta_orthogonal":
      return inits.get("delta_orthogonal")
    return inits.get("he_normal")

  def head_init(self):
    s = self.scheme
    if s in ("looks_linear", "risotto"):
      return inits.get("looks_linear", position="last", base=self.ll_base)
    if s == "zero":
      return inits.get("zero_init", convention=self.zero_convention)
    if s in ("fixup", "constant"):
      return inits.get("zeros")
    if s == "delta_orthogonal":
      return inits.get("orthogonal")
    return inits.get("lecun_normal")

  @property
  def norm(self) -> bool:
    return self.scheme not in NO_NORM


class Block(nn.Module):
  """One pre-activation residual block (basic or bottleneck) under the initialization `opts.scheme`."""
  features: int
  stride: int
  bottleneck: bool
  opts: Options
  dropout: float = 0.0

  def _bias(self, name):
    return self.param(name, nn.initializers.zeros, ())

  @nn.compact
  def __call__(self, x, train: bool):
    opts, n_in = self.opts, x.shape[-1]
    if self.bottleneck:
      layers = [(self.features // 4, 1, 1), (self.features // 4, 3, self.stride), (self.features, 1, 1)]
    else:
      layers = [(self.features, 3, self.stride), (self.features, 3, 1)]
    project = n_in != self.features or self.stride != 1
    if opts.scheme == "risotto":
      if self.is_initializing():
        k = risotto.block_kernels(self.make_rng("params"), n_in // 2, self.features // 2)
        kernel_inits = [_const(k["conv1"]), _const(k["conv2"])]
        shortcut_init = _const(k["shortcut"]) if k["shortcut"] is not None else _unused
      else:
        kernel_inits, shortcut_init = [_unused, _unused], _unused
    else:
      kernel_inits = [opts.conv_init(last=i == len(layers) - 1) for i in range(len(layers))]
      shortcut_init = opts.shortcut_init()

    h = batch_norm(train, "bn1")(x) if opts.norm else x
    h = nn.relu(h)
    if opts.scheme == "fixup":
      h = h + self._bias("bias1a")
    shortcut = conv(self.features, 1, self.stride, shortcut_init, "shortcut")(h) if project else x
    r = h
    for i, ((width, k, stride), init) in enumerate(zip(layers, kernel_inits)):
      if i > 0:
        r = batch_norm(train, f"bn{i + 1}")(r) if opts.norm else r
        r = nn.relu(r)
        if opts.scheme == "fixup":
          r = r + self._bias(f"bias{i + 1}a")
      r = conv(width, k, stride, init, f"conv{i + 1}")(r)
      if opts.scheme == "fixup" and i < len(layers) - 1:
        r = r + self._bias(f"bias{i + 1}b")
    if self.dropout > 0:
      r = Dropout(self.dropout, deterministic=not train)(r)
    if opts.scheme == "fixup":
      r = r * self.param("scale", nn.initializers.ones, ()) + self._bias("bias_out")
    if opts.scheme in ("skipinit", "rezero"):
      r = r * self.param("alpha", nn.initializers.zeros, ())
    self.sow("intermediates", "residual", r)
    out = shortcut + r
    self.sow("intermediates", "output", out)
    return out


class PreActResNet(nn.Module):
  num_classes: int
  arch: Arch
  opts: Options
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    arch, opts = self.arch, self.opts
    if arch.imagenet_stem:
      x = conv(arch.stem_width, 7, 2, opts.stem_init(), "stem")(x)
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:
      x = conv(arch.stem_width, 3, 1, opts.stem_init(), "stem")(x)
    self.sow("intermediates", "output", x)
    for stage, (width, count) in enumerate(zip(arch.stage_widths, arch.blocks)):
      for block in range(count):
        stride = 2 if stage > 0 and block == 0 else 1
        x = Block(width, stride, arch.bottleneck, opts, self.dropout, name=f"stage{stage + 1}_block{block}")(x, train)
    if opts.norm:
      x = batch_norm(train, "bn_final")(x)
    x = jnp.mean(nn.relu(x), axis=(1, 2))
    if opts.scheme == "fixup":
      x = x + self.param("bias_head", nn.initializers.zeros, ())
    return layers.Dense(self.num_classes, kernel_init=opts.head_init(), bias_init=nn.initializers.zeros,
                    name="head")(x)


GROUPS = ("stem", "residual", "shortcut", "bn", "head", "scalar")


def param_group(name: str) -> str:
  """Which part of the net a parameter path belongs to: stem, residual, shortcut, bn, head or scalar."""
  for group in ("stem", "head", "shortcut"):
    if name.startswith(group + "/") or f"/{group}/" in name:
      return group
  if "/bn" in name or name.startswith("bn"):
    return "bn"
  if "/conv" in name:
    return "residual"
  return "scalar"


def build_arch(cfg, num_classes: int, dropout: float, arch: Arch, model: str) -> nn.Module:
  """The PreActResNet of `arch` under config.model.scheme, checked for applicability first."""
  check_scheme(cfg.scheme, arch, model)
  if not 0 <= dropout < 1:
    raise ConfigError(f"config.breaker.dropout={dropout}: a rate in [0, 1)")
  opts = Options(scheme=cfg.scheme, num_branches=sum(arch.blocks), branch_layers=arch.branch_layers,
                 ll_base=cfg.get("ll_base", "orthogonal"), zero_convention=cfg.get("zero_convention", "paper"))
  if opts.ll_base not in inits.looks_linear.BASES:
    raise ConfigError(f"config.model.ll_base={opts.ll_base!r}: choose one of {inits.looks_linear.BASES}")
  if opts.zero_convention not in inits.zero_init.CONVENTIONS:
    raise ConfigError(f"config.model.zero_convention={opts.zero_convention!r}: choose one of "
                      f"{inits.zero_init.CONVENTIONS}")
  return PreActResNet(num_classes=num_classes, arch=arch, opts=opts, dropout=dropout)
