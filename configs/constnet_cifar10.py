"""ConstNet WRN-16-10 on CIFAR-10 as the authors' README runs it (train.py and model.py of
yanivbl6/BeyondSigProp, camera-ready commit 1523e8a).

  # with internet (tensorflow-datasets downloads CIFAR-10 on first use):
  python launch.py --config configs/constnet_cifar10.py --workdir workdirs/constnet_c10
  # offline, from the binary layout (python ../shared/data/cifar10/build.py DIR):
  python launch.py --config configs/constnet_cifar10.py --workdir W --config.data.dir=DIR
  # the README's arms as one grid (constant, He, dropout 0.01; 3 x 300 epochs of WRN-16-10):
  python launch.py --config configs/constnet_cifar10.py:readme --workdir W --config.data.dir=DIR
  # single arms:  ... --config.model.scheme=he   ... --config.breaker.dropout=0.01
  # the paper's claim at CPU scale (docs/results/constnet_cpu): ConstNet-10-1, 15 epochs, He x 2 seeds,
  # no breaker x 1, dropout 0.01 / rounding_noise / init noise 1e-4 x 2 seeds; ~40 min an arm, 2 at a time
  # on 2 CPU cores:
  python launch.py --config configs/constnet_cifar10.py:cpu --workdir W --config.data.dir=DIR --workers 2

The authors' values (README: `--layers 16 --widen-factor 10 --batchnorm --epochs 300 -d 0:1`):
  model.depth 16, model.width 10, model.scheme constant (he = `--varnet`)      README
  model.shortcut_input relu_bn: the in-place ReLU feeds the 1x1 shortcut     model.py, BasicBlock
  model.bn_decay 0.81: each stage is evaluated twice per step, so BN's running
    average takes two PyTorch momentum-0.1 updates (0.9 x 0.9)              model.py, NetworkBlock.forward
  model.bn_group_size 64: DataParallel over 2 GPUs (`-d 0:1`), no SyncBN, so
    each BN normalizes half of the batch                                     README, train.py
  train.epochs 300, batch_size 128, lr 0.03, momentum 0.9 (no Nesterov), weight_decay 5e-4 (coupled)
                                                                             train.py defaults
  lr x0.2 when the 0-indexed epoch + 1 reaches E-140, E-80, E-40, i.e. from 0-indexed epochs 159, 219,
    259 on (lr_drop_at 159/300, 219/300, 259/300)                            train.py, adjust_learning_rate
  data: reflect-pad 4, random crop 32, horizontal flip; CIFAR mean/std normalization    train.py
  breaker.dropout 0.01 in the dropout arms (`--droprate 0.01`)               README
Their other arms, as settings (not in the README's runs):
  `-W s` without `--varnet`: model.scheme=random_residual, model.residual_var_scale=s      model.py
  `--dropl1 --droprate p`: breaker.stem_dropout=p and breaker.dropout=p (their stem dropout takes the
    residual rate; here each has its own rate and its own key stream)       model.py, WideResNet.forward
Ours, not theirs:
  - the symmetry is broken only by what the config switches on: under deterministic XLA no kernel does it by
    accident, so the README's nondeterministic-cuDNN arms have no JAX counterpart here (the torch twin on a
    GPU, configs/constnet_torch_gpu.py, is that contrast) and `--cudaNoise` (deterministic cuDNN) is the
    default; the :readme grid has the constant, He and dropout-0.01 arms;
  - seeds are fixed (config.seed; theirs come from time.time());
  - the last partial batch of an epoch is dropped (theirs keep it: 391 steps per epoch, ours 390);
  - BN running statistics come from one evaluation per step with decay 0.81, not two with 0.9: the same
    average, and logits and gradients are those of one evaluation in both.

Expect, on a GPU, about 94-95 % test accuracy for the He arm and for a ConstNet whose symmetry is broken
(dropout, init noise); with no breaker under deterministic XLA every layer keeps 1 distinct channel and
accuracy stays far below. The full run is ~117k steps: hours on one modern GPU, not feasible on a CPU.

Smoke variant, WRN-10-1 for 150 steps with one eval, BN over whole batches: about a minute on 2 CPU cores, accuracy ~0.15-0.3
(ConstNet without a breaker); checks that the whole pipeline (data, augmentation, training, eval,
checkpoints, summary) runs:
  python launch.py --config configs/constnet_cifar10.py:smoke --workdir W --config.data.dir=DIR
"""

from zerodiverse import defaults, sweep


def get_config(variant: str | None = None):
  config = defaults.base()
  config.data.name = "cifar10"
  config.model.shortcut_input = "relu_bn"
  config.model.bn_decay = 0.81
  config.model.bn_group_size = 64
  config.train.lr_drop_at = (159 / 300, 219 / 300, 259 / 300)
  if variant in (None, ""):
    return config
  if variant == "readme":
    config.grid = {"arm": {"constant": {}, "he": {"model": {"scheme": "he"}},
                           "dropout": {"breaker": {"dropout": 0.01}}}}
    return config
  if variant == "cpu":
    return cpu_claims(config)
  if variant == "smoke":
    config.model.depth = 10
    config.model.width = 1
    config.model.bn_group_size = 0  # whole batches, so the smoke runs at any batch size
    config.train.epochs = 0.0
    config.train.steps = 150
    config.train.log_every = 25
    config.train.eval_every = 150
    config.train.checkpoint_every = 75
    return config
  raise ValueError(f"configs/constnet_cifar10.py:{variant}: unknown variant; use no variant, :readme, :cpu or :smoke")


CPU_EPOCHS = 15
CPU_BREAKERS = {"dropout1e-02": {"breaker": {"dropout": 0.01}},
                "rounding_noise": {"breaker": {"rounding_noise": True}},
                "init_noise1e-04": {"breaker": {"init_noise": 1e-4}}}


def cpu_claims(config):
  """The paper's claim at CPU scale: the authors' recipe on ConstNet-10-1 compressed to CPU_EPOCHS epochs
  (the lr drops at the same fractions of training), an eval and a symmetry record every epoch or third of
  one. Arms run in name order, seed 0 first, so a sweep cut short holds whole comparisons."""
  config.model.depth = 10
  config.model.width = 1
  config.train.epochs = float(CPU_EPOCHS)
  config.train.log_every = 130
  config.train.symmetry_every = 130
  config.train.eval_every = config.train.checkpoint_every = 390  # one epoch (50000 // 128 steps)
  config.train.progress = False
  arms = {}
  for seed in (0, 1):
    arms[f"seed{seed}-he"] = {"model": {"scheme": "he"}, "seed": seed}
    arms.update({f"seed{seed}-{label}": {**overrides, "seed": seed} for label, overrides in CPU_BREAKERS.items()})
    if seed == 0:
      arms["seed0-none"] = {"seed": 0}
  config.arms = arms
  return config
