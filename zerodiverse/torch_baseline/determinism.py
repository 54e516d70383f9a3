"""PyTorch's determinism and precision settings for config.determinism, applied before CUDA starts.

- "nondeterministic_allowed": the paper's setting: cudnn.benchmark on (autotuned, possibly nondeterministic kernels),
  nondeterministic algorithms allowed; on a GPU this is where symmetry breaks by accident.
- "deterministic": torch.use_deterministic_algorithms(True) (an op without a deterministic implementation
  raises), cudnn.benchmark off, cudnn.deterministic on, CUBLAS_WORKSPACE_CONFIG=:4096:8 (set before CUDA
  initializes; cuBLAS reads it then). The models use a plain mean, not adaptive pooling, in both modes.
Precision is pinned in both: float32 matmuls and convolutions stay float32 (TF32 off) unless `tf32`.
"""

import os

import torch

from zerodiverse.determinism import check_mode

CUBLAS_WORKSPACE = ":4096:8"


def apply(mode: str, tf32: bool = False) -> dict:
  check_mode(mode)
  deterministic = mode == "deterministic"
  if deterministic:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
  torch.use_deterministic_algorithms(deterministic)
  torch.backends.cudnn.benchmark = not deterministic
  torch.backends.cudnn.deterministic = deterministic
  torch.backends.cuda.matmul.allow_tf32 = tf32
  torch.backends.cudnn.allow_tf32 = tf32
  torch.set_float32_matmul_precision("high" if tf32 else "highest")
  return in_force(mode)


def in_force(mode: str) -> dict:
  """The determinism- and precision-relevant torch settings of this process, for summary.json."""
  return {
      "backend": "torch",
      "mode": mode,
      "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
      "cudnn_benchmark": torch.backends.cudnn.benchmark,
      "cudnn_deterministic": torch.backends.cudnn.deterministic,
      "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
      "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
      "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
      "float32_matmul_precision": torch.get_float32_matmul_precision(),
  }
