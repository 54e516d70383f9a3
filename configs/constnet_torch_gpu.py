"""GPU evidence: ConstNet (no breaker) in PyTorch and JAX, each determinism mode, each run twice.

  python launch.py --config configs/constnet_torch_gpu.py --workdir workdirs/constnet_torch_gpu \
      --config.data.dir=DIR            # or leave data.dir empty for tensorflow-datasets
  # quick CPU check of the plumbing (WRN-10-1, 20 steps, ~3 min on 2 cores):
  python launch.py --config configs/constnet_torch_gpu.py:cpu --workdir workdirs/ctg --config.data.dir=DIR
  # the same arms for 300 steps, symmetry metrics every 25 (distinct channels over steps and
  # symmetry_breaking_step per layer):
  python launch.py --config configs/constnet_torch_gpu.py:symmetry --workdir W --config.data.dir=DIR
  # accuracy side by side: He; ConstNet without breaker under torch_nondeterministic_allowed, torch_deterministic and
  # jax_deterministic; deterministic JAX with rounding_noise or with dropout 0.01 (length: train.steps):
  python launch.py --config configs/constnet_torch_gpu.py:side_by_side --workdir W --config.data.dir=DIR
  # scripts/gpu.sh runs both on a GPU machine (docs/gpu.md).

Arms (same seed, initial numbers, batches and recipe; TF32 off on both sides; the He arm is not here):
  torch_nondeterministic_allowed[_2]        cudnn.benchmark on, nondeterministic algorithms allowed: the paper's setting;
  torch_deterministic[_2]  torch.use_deterministic_algorithms(True), benchmark off, CUBLAS_WORKSPACE_CONFIG;
  jax_deterministic[_2]    XLA's deterministic GPU flags;
  jax_nondeterministic_allowed[_2]          XLA left free.
Each arm runs twice (suffix _2) so the table shows whether a mode reproduces its own fingerprint.
Expect on a GPU (the claim under test, not yet measured): torch_nondeterministic_allowed breaks the symmetry by accident
(distinct channels > 1, runs differ in fingerprint, accuracy well above the symmetric arms); the two
deterministic arms keep 1 distinct channel everywhere and reproduce their fingerprints bitwise;
jax_nondeterministic_allowed is the open question. WRN-16-4 for 2000 steps (~5 epochs): a few minutes per arm on an H100.
The table (WORKDIR/table.md) has accuracy, distinct channels and fingerprints; per-layer channels are in
each arm's summary.json. Commit the table with the command and device to docs/results/.
"""

from zerodiverse import defaults

MODES = {
    "torch_nondeterministic_allowed": {"backend": "torch", "determinism": "nondeterministic_allowed"},
    "torch_deterministic": {"backend": "torch", "determinism": "deterministic"},
    "jax_deterministic": {"backend": "jax", "determinism": "deterministic"},
    "jax_nondeterministic_allowed": {"backend": "jax", "determinism": "nondeterministic_allowed"},
}

# Accuracy side by side: the He twin, ConstNet with no breaker under three modes, and two explicit breakers
# under deterministic JAX (the rounding emulation and the paper's dropout 0.01).
SIDE_BY_SIDE = {
    "he": {"model": {"scheme": "he"}},
    "torch_nondeterministic_allowed": MODES["torch_nondeterministic_allowed"],
    "torch_deterministic": MODES["torch_deterministic"],
    "jax_deterministic": MODES["jax_deterministic"],
    "jax_rounding_noise": {"breaker": {"rounding_noise": True}},
    "jax_dropout": {"breaker": {"dropout": 0.01}},
}


def get_config(variant: str | None = None):
  config = defaults.base()
  config.data.name = "cifar10"
  config.model.depth, config.model.width, config.model.scheme = 16, 4, "constant"
  config.train.epochs, config.train.steps = 0.0, 2000
  config.train.log_every, config.train.eval_every, config.train.checkpoint_every = 100, 1000, 1000
  config.train.progress = False
  if variant == "cpu":
    config.model.depth, config.model.width = 10, 1
    config.train.steps, config.train.log_every, config.train.eval_every = 20, 10, 20
    config.train.checkpoint_every = 20
  elif variant == "symmetry":
    config.train.steps, config.train.symmetry_every, config.train.log_every = 300, 25, 25
    config.train.eval_every = config.train.checkpoint_every = 300
  elif variant == "side_by_side":
    config.arms = dict(SIDE_BY_SIDE)
    return config
  elif variant not in (None, ""):
    raise ValueError(f"configs/constnet_torch_gpu.py:{variant}: unknown variant; use no variant, :cpu, "
                     ":symmetry or :side_by_side")
  config.arms = {}
  for name, fields in MODES.items():
    config.arms[name] = dict(fields)
    config.arms[name + "_2"] = dict(fields)
  return config
