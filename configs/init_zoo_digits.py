"""Initializer zoo on a tiny pre-activation WRN (wrn-10-1) on the embedded 8x8 digits, no symmetry breaker.

  python launch.py --config configs/init_zoo_digits.py --workdir workdirs/init_zoo_digits

One arm per scheme of zerodiverse/models/preact.py (he, delta_orthogonal, looks_linear, risotto, zero, fixup,
skipinit, rezero), same seed, data order and recipe (SGD 0.9, lr 0.05, 300 steps of 64). Expect every arm to
train (test accuracy roughly 0.9 or more; a few minutes on 2 CPU cores) and a table of distinct channels: ZerO
is deterministic and has no breaker, yet its channels differ by structure.
"""

from zerodiverse import defaults

SCHEMES = ("he", "delta_orthogonal", "looks_linear", "risotto", "zero", "fixup", "skipinit", "rezero")


def get_config():
  config = defaults.base()
  config.model.name = "wrn"
  config.model.depth = 10
  config.model.width = 1
  config.data.name = "digits"
  config.data.augment = False
  config.train.epochs = 0.0
  config.train.steps = 300
  config.train.batch_size = 64
  config.train.lr = 0.05
  config.train.lr_drop_at = (0.5, 0.75)
  config.train.log_every = 50
  config.train.eval_every = 300
  config.train.eval_batch_size = 360
  config.train.checkpoint_every = 300
  config.arms = {scheme: {"model": {"scheme": scheme}} for scheme in SCHEMES}
  return config
