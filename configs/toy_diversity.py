"""The toy experiment (science.md section 4): accuracy vs the number of unique hidden features, crossed
with init noise eps on the duplicated hidden weights.

Our choices (the paper's width, data and grid are not public): a one-hidden-layer ReLU MLP of width 256 on
the embedded 8x8 digits (sklearn, 1437 train / 360 test, no download), k = `unique_features` distinct hidden
units tiled across the width (a copy shares its unit's incoming and outgoing weights, so exact SGD keeps
copies identical: see zerodiverse/models/mlp.py); init_noise eps (relative to 1/sqrt(fan_in),
hidden layer only) in {0, 1e-6, 1e-3, 1e-1}; SGD 1000 steps, batch 64. 5 x 4 = 20 arms, about 5 minutes on
2 CPU cores (process start and compile dominate).

  python launch.py --config configs/toy_diversity.py --workdir workdirs/toy --workers 2
  python -m zerodiverse.report workdirs/toy
  # 2 x 2 on fewer steps (seconds per arm; the tests use it):
  python launch.py --config configs/toy_diversity.py:smoke --workdir workdirs/toy_smoke

Expect: with eps = 0, k = 1 trains like a width-1 network (identical hidden units stay identical) and
accuracy rises with k; any eps > 0 breaks the duplicates apart and restores most of the accuracy.
"""

from zerodiverse import defaults, sweep

UNIQUE = (1, 4, 16, 64, 256)
EPS = (0.0, 1e-6, 1e-3, 1e-1)


def get_config(variant: str | None = None):
  config = defaults.base()
  config.model.name = "mlp"
  config.model.width = 256
  config.model.hidden_init = "he_normal"
  config.breaker.init_noise_groups = "hidden"
  config.data.name = "digits"
  config.data.augment = False
  config.train.epochs = 0.0
  config.train.steps = 1000
  config.train.batch_size = 64
  config.train.lr = 0.03
  config.train.lr_drop_at = (0.5, 0.75)
  config.train.log_every = 100
  config.train.eval_every = 500
  config.train.eval_batch_size = 360
  config.train.checkpoint_every = 500
  config.train.symmetry_every = 100
  config.train.progress = False
  config.grid = {"unique": sweep.axis("model.unique_features", UNIQUE, [f"k{k}" for k in UNIQUE]),
                 "noise": sweep.axis("breaker.init_noise", EPS, [f"eps{sweep.number(e)}" for e in EPS])}
  if variant in (None, ""):
    return config
  if variant == "smoke":
    config.train.steps = 40
    config.train.eval_every = config.train.checkpoint_every = 20
    config.train.log_every = config.train.symmetry_every = 20
    config.grid = {"unique": sweep.axis("model.unique_features", (1, 256), ["k1", "k256"]),
                   "noise": sweep.axis("breaker.init_noise", (0.0, 1e-3), ["eps0", "eps1e-03"])}
    return config
  raise ValueError(f"configs/toy_diversity.py:{variant}: unknown variant; use none or :smoke")
