"""The LeakyNet grid of the authors' lrnet_experiment.sh: more averaging ('1') layers, weaker symmetry
breaking (models/leakynet.py is their LRNet, remodel.py).

The paper's seven init strings x seeds; the authors' values (lrnet_experiment.sh and train.py defaults):
depth 16, widen factor 10, LeakyReLU slope 0.01, 200 epochs, batch 128, lr 0.03 x0.2 when (0-indexed)
epoch + 1 reaches 60, 120, 160 (so from 0-indexed epochs 59, 119, 159 on: lr_drop_at 59/200, 119/200,
159/200), SGD momentum 0.9, weight decay 5e-4; `-d 0:1`, i.e. DataParallel over 2 GPUs
without SyncBN, so every BN normalizes groups of 64 examples (model.bn_group_size 64); each layer is
evaluated once, so BN keeps PyTorch's momentum 0.1 (model.bn_decay 0.9).
Ours: under deterministic XLA nothing breaks the symmetry by accident, so every arm also gets the
rounding-noise breaker (the stand-in for their nondeterministic GPU kernels) and the breaker axis also has
`none`; two seeds per cell (theirs: one unseeded run per string).

  python launch.py --config configs/leakynet_grid.py --workdir workdirs/leakynet --config.data.dir=DIR
  python -m zerodiverse.report workdirs/leakynet
  # the seven strings at CPU scale (docs/results/leakynet_cpu): LeakyNet-16-1 on CIFAR-10, the recipe
  # compressed to 5 epochs, rounding_noise, seed 0, 2 at a time on 2 CPU cores (~22 min an arm):
  python launch.py --config configs/leakynet_grid.py:cpu --workdir W --config.data.dir=DIR --workers 2
  # the seven strings x {none, rounding_noise} of LeakyNet-16-1 on the embedded digits (600 steps, seconds an
  # arm); the twins instrument measures its `none` arms (python -m zerodiverse.lyapunov ... --arm NAME):
  python launch.py --config configs/leakynet_grid.py:digits --workdir W
  # 2 inits x {none, rounding_noise} of a depth-10 LeakyNet on the embedded digits, ~1 minute (the tests use it):
  python launch.py --config configs/leakynet_grid.py:smoke --workdir workdirs/leakynet_smoke

Expect (the paper, on GPU): ~93-94 % for h/i strings, falling as '1' layers are added, lowest for
1_1111_1111_1111; with `none`, strings containing '1' layers keep identical channels after them. The full
grid is GPU work (28 arms x 200 epochs of a WRN-16-10-sized plain CNN).
"""

from zerodiverse import defaults, sweep
from zerodiverse.models.leakynet import PAPER_GRID


def get_config(variant: str | None = None):
  config = defaults.base()
  config.model.name = "leakynet"
  config.model.init_string = PAPER_GRID[3]
  config.model.depth = 16
  config.model.bn_group_size = 64
  config.data.name = "cifar10"
  config.train.epochs = 200.0
  config.train.lr_drop_at = (59 / 200, 119 / 200, 159 / 200)
  rounding = {"none": {}, "rounding_noise": {"breaker": {"rounding_noise": True}}}
  config.grid = {"init": sweep.axis("model.init_string", list(PAPER_GRID)), "breaker": rounding,
                 "seed": sweep.axis("seed", (0, 1))}
  if variant in (None, ""):
    return config
  if variant == "cpu":
    config.model.width = 1
    config.train.epochs = 5.0
    config.train.log_every = config.train.symmetry_every = 130
    config.train.eval_every = config.train.checkpoint_every = 390  # one epoch (50000 // 128 steps)
    config.train.progress = False
    config.grid = {"init": sweep.axis("model.init_string", list(PAPER_GRID)),
                   "breaker": {"rounding_noise": rounding["rounding_noise"]}}
    return config
  if variant == "digits":
    config.model.width = 1
    config.model.bn_group_size = 0
    config.data.name = "digits"
    config.data.augment = False
    config.train.epochs = 0.0
    config.train.steps = 600
    config.train.batch_size = 64
    config.train.log_every = config.train.symmetry_every = 20
    config.train.eval_every = config.train.checkpoint_every = 200
    config.train.eval_batch_size = config.train.probe_batch_size = 360
    config.train.progress = False
    config.grid = {"init": sweep.axis("model.init_string", list(PAPER_GRID)), "breaker": rounding}
    return config
  if variant == "smoke":
    config.model.depth = 10
    config.model.width = 1
    config.model.bn_group_size = 0
    config.data.name = "digits"
    config.data.augment = False
    config.train.epochs = 0.0
    config.train.steps = 20
    config.train.batch_size = 32
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 10
    config.train.symmetry_every = 10
    config.train.eval_batch_size = 360
    config.train.progress = False
    config.grid = {"init": sweep.axis("model.init_string", ["i_ii_ii_ii", "1_ii_11_ii"]), "breaker": rounding}
    return config
  raise ValueError(f"configs/leakynet_grid.py:{variant}: unknown variant; use none, :cpu, :digits or :smoke")
