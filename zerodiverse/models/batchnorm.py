"""BatchNorm with the two settings that decide what the authors' runs computed: the running-average decay
and the number of examples each normalization sees.

- decay: running = decay * running + (1 - decay) * batch statistic (Flax's `momentum`; PyTorch's momentum is
  1 - decay). PyTorch's default is decay 0.9. The authors' ConstNet evaluates every stage twice per step
  (model.py, NetworkBlock.forward), so its running statistics take two updates of 0.9 per step: decay 0.81.
- group_size: statistics over consecutive groups of that many examples (ghost batch norm), 0 = the whole
  batch. The authors' README runs use torch.nn.DataParallel over 2 GPUs without SyncBN, so each BN sees
  half of a 128 batch: groups of 64. As under DataParallel, whose first replica shares the module's
  buffers, the running statistics follow the first group only.
eps is PyTorch's 1e-5. Parameters and statistics have Flax BatchNorm's names (scale, bias; mean, var, the
biased variance) whichever the group size, so checkpoints and the torch conversion do not depend on it.
"""

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from zerodiverse.errors import ConfigError

DECAY = 0.9
EPS = 1e-5


def check(decay: float, group_size: int) -> None:
  if not 0 <= decay < 1:
    raise ConfigError(f"config.model.bn_decay={decay}: a running-average decay in [0, 1) (PyTorch's momentum "
                      "0.1 is 0.9)")
  if group_size is not None and (int(group_size) != group_size or group_size < 0):
    raise ConfigError(f"config.model.bn_group_size={group_size}: a number of examples >= 1, or 0 for the whole batch")


def batch_norm(train: bool, name: str, decay: float = DECAY, group_size: int = 0) -> nn.Module:
  """BN in train mode (batch statistics) or eval mode (running ones) with `decay` and `group_size`."""
  if not group_size:
    return nn.BatchNorm(use_running_average=not train, momentum=decay, epsilon=EPS, name=name)
  return GroupBatchNorm(int(group_size), decay, use_running_average=not train, name=name)


class GroupBatchNorm(nn.Module):
  """BN whose train-mode statistics are taken per group of `group_size` consecutive examples."""
  group_size: int
  decay: float = DECAY
  use_running_average: bool = False

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    running_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    running_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    if self.use_running_average:
      return (x - running_mean.value) * (scale * lax.rsqrt(running_var.value + EPS)) + bias
    n = x.shape[0]
    if n % self.group_size:
      raise ConfigError(f"config.model.bn_group_size={self.group_size} does not divide the batch of {n} "
                        "examples; choose a batch size that is a multiple of it, or 0 for whole-batch BN")
    groups = x.reshape((n // self.group_size, self.group_size) + x.shape[1:])
    axes = tuple(range(1, groups.ndim - 1))
    mean = jnp.mean(groups, axes, keepdims=True)
    var = jnp.mean(jnp.square(groups - mean), axes, keepdims=True)
    if not self.is_initializing():
      running_mean.value = self.decay * running_mean.value + (1 - self.decay) * mean.reshape(-1, c)[0]
      running_var.value = self.decay * running_var.value + (1 - self.decay) * var.reshape(-1, c)[0]
    return ((groups - mean) * (scale * lax.rsqrt(var + EPS)) + bias).reshape(x.shape)


def check_batch(group_size: int, batch_size: int) -> None:
  """ConfigError before a run starts when `group_size` does not divide config.train.batch_size."""
  if group_size and batch_size % group_size:
    raise ConfigError(f"config.model.bn_group_size={group_size} does not divide config.train.batch_size="
                      f"{batch_size}; choose a multiple of it, or bn_group_size=0 for whole-batch BN")
