"""The toy experiment: accuracy vs the number of unique hidden features k, crossed with init noise eps on the
duplicated hidden weights, beside true width-k networks.

Our choices (the paper's width, data and grid are not public): a one-hidden-layer ReLU MLP of width 256 on
the scikit-learn 8x8 digits (1437 train / 360 test, shipped with scikit-learn, no download); k =
`unique_features` distinct hidden units tiled across the width (a copy shares its unit's incoming and
outgoing weights, the head rows scaled so the logits at init do not depend on k: zerodiverse/models/mlp.py);
init_noise eps (relative to 1/sqrt(fan_in), hidden layer only) in {0, 1e-6, 1e-3, 1e-1}; 3 seeds; controls
`width{k}`: an MLP of hidden width k with the ordinary init, no noise (k = 256 needs none: the k256 arms
are the width-256 network). SGD 1000 steps, batch 64; the probe batch is the whole test set, so a unit
counted dead never fires on any test image. 5 x 4 x 3 + 4 x 3 = 72 arms.

  python launch.py --config configs/toy_diversity.py --workdir DIR --workers 1
  python -m zerodiverse.report DIR
  # 2 x 2 on fewer steps, one seed, no controls (seconds per arm; the tests use it):
  python launch.py --config configs/toy_diversity.py:smoke --workdir DIR

Expect: with eps = 0, k copies stay k features (the net computes what a width-k network with shared rows
does), so accuracy rises with k; eps > 0 breaks the copies apart and lets the width-256 network recover.
"""

from zerodiverse import defaults, sweep

UNIQUE = (1, 4, 16, 64, 256)
EPS = (0.0, 1e-6, 1e-3, 1e-1)
SEEDS = (0, 1, 2)
CONTROL_WIDTHS = (1, 4, 16, 64)


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
  config.train.probe_batch_size = 360
  config.train.checkpoint_every = 500
  config.train.symmetry_every = 100
  config.train.progress = False
  # Arms run in name order: seed first, so a sweep cut short holds whole seeds of every arm.
  grid = sweep.expand({"seed": sweep.axis("seed", SEEDS),
                       "noise": sweep.axis("breaker.init_noise", EPS, [f"eps{sweep.number(e)}" for e in EPS]),
                       "unique": sweep.axis("model.unique_features", UNIQUE, [f"k{k}" for k in UNIQUE])})
  controls = {f"seed{s}-width{w}": {"model": {"width": w}, "seed": s} for w in CONTROL_WIDTHS for s in SEEDS}
  config.arms = {**grid, **controls}
  if variant in (None, ""):
    return config
  if variant == "smoke":
    config.train.steps = 40
    config.train.eval_every = config.train.checkpoint_every = 20
    config.train.log_every = config.train.symmetry_every = 20
    config.grid = {"unique": sweep.axis("model.unique_features", (1, 256), ["k1", "k256"]),
                   "noise": sweep.axis("breaker.init_noise", (0.0, 1e-3), ["eps0", "eps1e-03"])}
    config.arms = {}
    return config
  raise ValueError(f"configs/toy_diversity.py:{variant}: unknown variant; use none or :smoke")
