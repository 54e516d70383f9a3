"""The LeakyNet grid (science.md section 3): more averaging ('1') layers, weaker symmetry breaking.

The paper's seven init strings x seeds, 200 epochs, lr 0.03 dropped x0.2 at epochs 60/120/160. Under
deterministic XLA nothing breaks the symmetry by accident, so every arm also gets the rounding-noise
breaker (the stand-in for the paper's nondeterministic GPU kernels); the breaker axis also has `none`.

  python launch.py --config configs/leakynet_grid.py --workdir workdirs/leakynet --config.data.dir=DIR
  python -m zerodiverse.report workdirs/leakynet
  # 2 inits x {none, rounding_noise} on the embedded digits, ~1 minute (the tests use it):
  python launch.py --config configs/leakynet_grid.py:smoke --workdir workdirs/leakynet_smoke

Expect (the paper, on GPU): ~93-94 % for h/i strings, falling as '1' layers are added, lowest for
1_1111_1111_1111; with `none`, strings containing '1' layers keep identical channels after them. The full
grid is GPU work (14 arms x 200 epochs of a WRN-16-10-sized plain CNN).
"""

from zerodiverse import defaults, sweep
from zerodiverse.models.leakynet import PAPER_GRID


def get_config(variant: str | None = None):
  config = defaults.base()
  config.model.name = "leakynet"
  config.model.init_string = PAPER_GRID[3]
  config.data.name = "cifar10"
  config.train.epochs = 200.0
  config.train.lr_drop_at = (60 / 200, 120 / 200, 160 / 200)
  rounding = {"none": {}, "rounding_noise": {"breaker": {"rounding_noise": True}}}
  config.grid = {"init": sweep.axis("model.init_string", list(PAPER_GRID)), "breaker": rounding,
                 "seed": sweep.axis("seed", (0, 1))}
  if variant in (None, ""):
    return config
  if variant == "smoke":
    config.model.width = 1
    config.data.name = "digits"
    config.data.augment = False
    config.train.epochs = 0.0
    config.train.steps = 20
    config.train.batch_size = 32
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 10
    config.train.symmetry_every = 10
    config.train.eval_batch_size = 360
    config.train.progress = False
    config.grid = {"init": sweep.axis("model.init_string", ["i_iiii", "1_ii11"]), "breaker": rounding}
    return config
  raise ValueError(f"configs/leakynet_grid.py:{variant}: unknown variant; use none or :smoke")
