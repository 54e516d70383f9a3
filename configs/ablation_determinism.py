"""The determinism ablation: does ConstNet's symmetry break, and by what?

Grid: init {constant, he} x breaker {none, init_noise, grad_noise, dropout 0.01, rounding_noise} x eps x
seeds, every arm under deterministic XLA, so nothing breaks the symmetry except the named breaker. Breaker
labels carry their eps: init_noise (relative to 1/sqrt(fan_in)) and grad_noise (absolute, per step) over
EPS; rounding_noise emulates reordered float32 GPU reductions (zerodiverse/breakers.py says what it models).

  # the full grid (WRN-16-10, the paper's 300 epochs: GPU hours per arm):
  python launch.py --config configs/ablation_determinism.py --workdir workdirs/ablation --config.data.dir=DIR
  # the evidence run in docs/results/ablation_determinism (ConstNet 10-1 on CIFAR-10, 500 steps = 1.3
  # epochs; constant x {none, rounding_noise} + he, 2 seeds = 6 arms; ~45 min on 2 heavily shared CPU
  # cores; the other breakers were left out of it for CPU time), then its report:
  python launch.py --config configs/ablation_determinism.py:evidence --workdir workdirs/ablation_evidence \
      --config.data.dir=DIR --workers 2
  python -m zerodiverse.report workdirs/ablation_evidence
  # the second evidence run (docs/results/ablation_determinism/breakers_1500: every breaker, 1500 steps of
  # batch 64, 2 seeds = 12 arms; ~45 min on 2 CPU cores):
  python launch.py --config configs/ablation_determinism.py:evidence2 --workdir workdirs/ablation_evidence2 \
      --config.data.dir=DIR --workers 2
  # a 2x2 smoke grid on the embedded digits (seconds; the tests use it):
  python launch.py --config configs/ablation_determinism.py:smoke --workdir workdirs/ablation_smoke

Expect: constant-none keeps 1 distinct channel per layer and stays far below he; init_noise, grad_noise and
dropout break the symmetry at once; rounding_noise makes the channels bitwise distinct within the first
steps, and its channel spread then grows at a rate the report measures (symmetry_breaking_step).
"""

from zerodiverse import defaults, sweep

EPS = (1e-6, 1e-4, 1e-2)


def breakers(eps=EPS, dropout=0.01) -> dict:
  """The breaker axis: {label: overrides}."""
  axis = {"none": {}}
  axis.update({f"init_noise{sweep.number(e)}": {"breaker": {"init_noise": e}} for e in eps})
  axis.update({f"grad_noise{sweep.number(e)}": {"breaker": {"grad_noise": e}} for e in eps})
  axis[f"dropout{sweep.number(dropout)}"] = {"breaker": {"dropout": dropout}}
  axis["rounding_noise"] = {"breaker": {"rounding_noise": True}}
  return axis


def get_config(variant: str | None = None):
  config = defaults.base()
  config.data.name = "cifar10"
  seeds = (0, 1, 2)
  config.grid = {"init": sweep.axis("model.scheme", ["constant", "he"]), "breaker": breakers(),
                 "seed": sweep.axis("seed", seeds)}
  if variant in (None, ""):
    return config
  if variant == "evidence":
    config.model.depth = 10
    config.model.width = 1
    config.train.epochs = 0.0
    config.train.steps = 500
    config.train.log_every = 25
    config.train.eval_every = 250
    config.train.eval_batch_size = 1000
    config.train.checkpoint_every = 250
    config.train.symmetry_every = 25
    config.train.progress = False
    config.grid = {"init": sweep.axis("model.scheme", ["constant"]),
                   "breaker": {"none": {}, "rounding_noise": {"breaker": {"rounding_noise": True}}},
                   "seed": sweep.axis("seed", (0, 1))}
    config.arms = {f"none-he-seed{s}": {"model": {"scheme": "he"}, "seed": s} for s in (0, 1)}
    return config
  if variant == "evidence2":
    config = get_config("evidence")
    config.train.steps = 1500
    config.train.batch_size = 64
    config.train.eval_every = config.train.checkpoint_every = 500
    config.train.symmetry_every = 50
    config.train.log_every = 50
    config.grid = {"init": sweep.axis("model.scheme", ["constant"]),
                   "breaker": breakers(eps=(1e-4,), dropout=0.01),
                   "seed": sweep.axis("seed", (0, 1))}
    return config
  if variant == "smoke":
    config.model.depth = 7
    config.model.width = 1
    config.data.name = "digits"
    config.data.augment = False
    config.train.epochs = 0.0
    config.train.steps = 30
    config.train.batch_size = 32
    config.train.lr = 0.05
    config.train.log_every = 10
    config.train.eval_every = 30
    config.train.eval_batch_size = 360
    config.train.checkpoint_every = 10
    config.train.symmetry_every = 10
    config.train.progress = False
    config.grid = {"init": sweep.axis("model.scheme", ["constant", "he"]),
                   "breaker": {"none": {}, "rounding_noise": {"breaker": {"rounding_noise": True}}}}
    return config
  raise ValueError(f"configs/ablation_determinism.py:{variant}: unknown variant; use none, :evidence or :smoke")
