"""ConstNet WRN-16-10 on CIFAR-10, the paper's recipe (science.md section 2): 300 epochs, SGD momentum 0.9,
lr 0.03 dropped x0.2 at epochs 160/220/260, weight decay 5e-4, batch 128, pad-4 crop + flip.

  # with internet (tensorflow-datasets downloads CIFAR-10 on first use):
  python launch.py --config configs/constnet_cifar10.py --workdir workdirs/constnet_c10
  # offline, from the binary layout (python ../shared/data/cifar10/build.py DIR):
  python launch.py --config configs/constnet_cifar10.py --workdir W --config.data.dir=DIR
  # the He-initialized arm, and the paper's dropout breaker:
  ... --config.model.scheme=he       ... --config.breaker.dropout=0.01

Expect, on a GPU, about 94-95 % test accuracy for the He arm and for a ConstNet whose symmetry is broken
(init noise, dropout); with no breaker under deterministic XLA every layer keeps 1 distinct channel and
accuracy stays far below. The full run is ~117k steps: hours on one modern GPU, not feasible on a CPU.

Smoke variant, WRN-10-1 for 150 steps with one eval: about a minute on 2 CPU cores, accuracy ~0.15-0.3
(ConstNet without a breaker); checks that the whole pipeline (data, augmentation, training, eval,
checkpoints, summary) runs:
  python launch.py --config configs/constnet_cifar10.py:smoke --workdir W --config.data.dir=DIR
"""

from zerodiverse import defaults


def get_config(variant: str | None = None):
  config = defaults.base()
  config.data.name = "cifar10"
  if variant in (None, ""):
    return config
  if variant == "smoke":
    config.model.depth = 10
    config.model.width = 1
    config.train.epochs = 0.0
    config.train.steps = 150
    config.train.log_every = 25
    config.train.eval_every = 150
    config.train.checkpoint_every = 75
    return config
  raise ValueError(f"configs/constnet_cifar10.py:{variant}: unknown variant; use no variant or :smoke")
