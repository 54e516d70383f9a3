"""How fast emulated GPU rounding breaks ConstNet's symmetry, per layer, against init noise for scale.

Arms: ConstNet 10-1 (constant init) on CIFAR-10 under deterministic XLA, each with one breaker:
rounding_noise in mode reorder with m in {3, 8, 32} partial sums (m = 2 is refused: two partials add the same
in either order), in mode ulp with sigma in {0.5, 1, 4, 16} ulps, and init_noise 1e-6 (relative to
1/sqrt(fan_in)). The summaries hold each layer's symmetry_breaking_step; metrics.jsonl holds the distinct
channels per layer every `symmetry_every` steps.

  python launch.py --config configs/rounding_noise.py --workdir workdirs/rounding_noise --config.data.dir=DIR
  python launch.py --config configs/rounding_noise.py:only=reorder_m8,ulp_sigma1 ...  # a subset of the arms
  python launch.py --config configs/rounding_noise.py:smoke --workdir workdirs/rounding_noise_smoke

Expect (150 steps, 1-25 minutes per arm on 2 CPU cores; docs/results/rounding_noise): every arm makes the
stem, every 3x3 conv and the head bitwise distinct within the first 10-20 steps, the 1x1 shortcuts only in
part; the channels then differ at rounding level (relative spread 1e-8..5e-7; 1e-4 for ulp sigma 16).
"""

from zerodiverse import defaults

REORDER_PARTIALS = (3, 8, 32)
ULP_SIGMAS = (0.5, 1.0, 4.0, 16.0)
INIT_NOISE = 1e-6


def arms() -> dict:
  out = {f"reorder_m{m}": {"breaker": {"rounding_noise": True, "rounding_noise_mode": "reorder",
                                       "rounding_noise_partials": m}} for m in REORDER_PARTIALS}
  out.update({f"ulp_sigma{s:g}".replace(".", "p"): {"breaker": {"rounding_noise": True, "rounding_noise_mode": "ulp",
                                              "rounding_noise_scale": s}} for s in ULP_SIGMAS})
  out[f"init_noise{INIT_NOISE:g}"] = {"breaker": {"init_noise": INIT_NOISE}}
  return out


def get_config(variant: str | None = None):
  config = defaults.base()
  config.data.name = "cifar10"
  config.model.depth, config.model.width, config.model.scheme = 10, 1, "constant"
  config.train.epochs = 0.0
  config.train.steps = 150  # sized for 2 shared CPU cores: about an hour for the 8 arms
  config.train.batch_size = 32
  config.train.log_every = 10
  config.train.eval_every = config.train.checkpoint_every = 150
  config.train.eval_batch_size = 500
  config.train.symmetry_every = 10
  config.train.probe_batch_size = 64
  config.train.progress = False
  config.arms = arms()
  if variant in (None, ""):
    return config
  if variant.startswith("only="):
    names = variant[len("only="):].split(",")
    unknown = sorted(set(names) - set(config.arms))
    if unknown:
      raise ValueError(f"configs/rounding_noise.py:{variant}: unknown arms {unknown}; "
                       f"the arms are {sorted(config.arms)}")
    config.arms = {n: config.arms[n] for n in names}
    return config
  if variant == "smoke":
    config.data.name, config.data.augment = "digits", False
    config.model.depth = 7
    config.train.steps, config.train.batch_size, config.train.lr = 20, 32, 0.05
    config.train.eval_every = config.train.checkpoint_every = 20
    config.train.eval_batch_size = 360
    return config
  raise ValueError(f"configs/rounding_noise.py:{variant}: unknown variant; use none or :smoke")
