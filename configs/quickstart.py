"""Quickstart: does ConstNet need symmetry breaking? Three arms on the embedded 8x8 digits (no download).

  python launch.py --config configs/quickstart.py --workdir workdirs/quickstart

Arms (same seed, data order and recipe; deterministic XLA):
  constant       ConstNet, no breaker: every layer keeps 1 distinct channel, it trains like a width-1 net;
  constant_noise ConstNet + keyed init noise eps=1e-3: the channels diverge and it trains;
  he             the He-initialized twin.
Expect (2 CPU cores, about 2 minutes in all): test accuracy roughly 0.2-0.5 for `constant`, above 0.9 for
the other two, and a table at the end with distinct channels per arm.
"""

from zerodiverse import defaults


def get_config():
  config = defaults.base()
  config.model.depth = 10
  config.model.width = 1
  config.data.name = "digits"
  config.data.augment = False
  config.train.epochs = 0.0
  config.train.steps = 600
  config.train.batch_size = 64
  config.train.lr = 0.05
  config.train.lr_drop_at = (0.5, 0.75)
  config.train.log_every = 50
  config.train.eval_every = 200
  config.train.eval_batch_size = 360
  config.train.checkpoint_every = 200
  # A sweep: each arm overrides the fields it names and runs in WORKDIR/<arm>.
  config.arms = {
      "constant": {"model": {"scheme": "constant"}},
      "constant_noise": {"model": {"scheme": "constant"}, "breaker": {"init_noise": 1e-3}},
      "he": {"model": {"scheme": "he"}},
  }
  return config
