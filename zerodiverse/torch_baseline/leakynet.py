"""LeakyNet in PyTorch (science.md section 3), the twin of zerodiverse/models/leakynet.py (issue 3).

A plain CNN whose layout comes from the init string (config.model.init_string, e.g. "1_iiii_11ii_iiii"): a stem
3x3 conv to 16 channels, then one stage per further group (16k, 32k, 64k, ... channels, stride 2 at the
first layer of every stage after the first). Layer l computes LeakyReLU_a(Conv3x3(x + b_l)) with a
learnable scalar b_l and a = 0.01; BN follows the activation on odd l. Head: global mean (no ReLU), Dense.
Names follow the Flax module (stem, layer{l}.{conv,bn,bias}, head). Its numbers always come from the JAX
initializers (h/i/1 bases, gains +1 / -1/a), converted by name: this module fixes only names and maths.

Checked against issue 3's work-in-progress Flax LeakyNet (2026-11-23): logits and gradients agree within
the parity test's tolerance; after merging issue 3, add it to tests/test_torch_twin.py's parity cases.
"""

import torch
from torch import nn
from torch.nn import functional as F

from zerodiverse.errors import ConfigError
from zerodiverse.torch_baseline.models import batch_norm, global_mean

SLOPE = 0.01


class Layer(nn.Module):

  def __init__(self, cin: int, cout: int, stride: int, odd: bool):
    super().__init__()
    self.bias = nn.Parameter(torch.zeros(()))  # the scalar b_l, added to the input (Flax: layer{l}/bias)
    self.conv = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
    self.bn = batch_norm(cout) if odd else None

  def forward(self, x):
    x = F.leaky_relu(self.conv(x + self.bias), SLOPE)
    return self.bn(x) if self.bn is not None else x


def layout(code: str) -> list[tuple[int, int]]:
  """[(stage, stride)] per layer of an init string; stage -1 is the stem."""
  groups = code.split("_")
  if len(groups) < 2 or len(groups[0]) != 1 or any(not g for g in groups) or set(code) - set("hi1_"):
    raise ConfigError(f"config.model.init_string={code!r}: LeakyNet wants a one-character stem code and stage groups "
                      "of h/i/1 joined by '_', e.g. '1_iiii_11ii_iiii'")
  return [(-1, 1)] + [(stage, 2 if stage > 0 and j == 0 else 1)
                      for stage, group in enumerate(groups[1:]) for j in range(len(group))]


class LeakyNet(nn.Module):

  def __init__(self, num_classes: int, code: str = "1_iiii_11ii_iiii", width: int = 10, in_channels: int = 3):
    super().__init__()
    self.layers, cin = [], in_channels
    for l, (stage, stride) in enumerate(layout(code)):
      cout = 16 if stage < 0 else 16 * width * 2 ** stage
      name = "stem" if l == 0 else f"layer{l}"
      self.add_module(name, Layer(cin, cout, stride, odd=l % 2 == 1))
      self.layers.append(name)
      cin = cout
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    for name in self.layers:
      x = getattr(self, name)(x)
    return self.head(global_mean(x))


def build(cfg, num_classes: int, image_shape: tuple, dropout: float = 0.0) -> LeakyNet:
  if dropout:
    raise ConfigError(f"config.breaker.dropout={dropout}: LeakyNet has no residual branch; set it to 0")
  return LeakyNet(num_classes, cfg.init_string, cfg.width, in_channels=image_shape[-1])
