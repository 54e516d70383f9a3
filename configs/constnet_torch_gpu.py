"""GPU evidence: ConstNet (no breaker) in PyTorch and JAX, each determinism mode, each run twice.

  python launch.py --config configs/constnet_torch_gpu.py --workdir workdirs/constnet_torch_gpu \
      --config.data.dir=DIR            # or leave data.dir empty for tensorflow-datasets
  # quick CPU check of the plumbing (WRN-10-1, 20 steps, ~3 min on 2 cores):
  python launch.py --config configs/constnet_torch_gpu.py:cpu --workdir workdirs/ctg --config.data.dir=DIR

Arms (same seed, initial numbers, batches and recipe; TF32 off on both sides; the He arm is not here):
  torch_default[_2]        cudnn.benchmark on, nondeterministic algorithms allowed: the paper's setting;
  torch_deterministic[_2]  torch.use_deterministic_algorithms(True), benchmark off, CUBLAS_WORKSPACE_CONFIG;
  jax_deterministic[_2]    XLA's deterministic GPU flags;
  jax_default[_2]          XLA left free.
Each arm runs twice (suffix _2) so the table shows whether a mode reproduces its own fingerprint.
Expect on a GPU (the claim under test, not yet measured): torch_default breaks the symmetry by accident
(distinct channels > 1, runs differ in fingerprint, accuracy well above the symmetric arms); the two
deterministic arms keep 1 distinct channel everywhere and reproduce their fingerprints bitwise;
jax_default is the open question. WRN-16-4 for 2000 steps (~5 epochs): a few minutes per arm on an H100.
The table (WORKDIR/table.md) has accuracy, distinct channels and fingerprints; per-layer channels are in
each arm's summary.json. Commit the table with the command and device to docs/results/.
"""

from zerodiverse import defaults

MODES = {
    "torch_default": {"backend": "torch", "determinism": "default"},
    "torch_deterministic": {"backend": "torch", "determinism": "deterministic"},
    "jax_deterministic": {"backend": "jax", "determinism": "deterministic"},
    "jax_default": {"backend": "jax", "determinism": "default"},
}


def get_config(variant: str | None = None):
  config = defaults.base()
  config.data.name = "cifar10"
  config.model.depth, config.model.width, config.model.init = 16, 4, "constant"
  config.train.epochs, config.train.steps = 0.0, 2000
  config.train.log_every, config.train.eval_every, config.train.checkpoint_every = 100, 1000, 1000
  config.train.progress = False
  if variant == "cpu":
    config.model.depth, config.model.width = 10, 1
    config.train.steps, config.train.log_every, config.train.eval_every = 20, 10, 20
    config.train.checkpoint_every = 20
  elif variant not in (None, ""):
    raise ValueError(f"configs/constnet_torch_gpu.py:{variant}: unknown variant; use no variant or :cpu")
  config.arms = {}
  for name, fields in MODES.items():
    config.arms[name] = dict(fields)
    config.arms[name + "_2"] = dict(fields)
  return config
