"""Determinism settings, applied before JAX creates its backend.

`deterministic` (the default) asks XLA for run-to-run bitwise reproducible kernels on GPU (no atomics in
reductions or scatters, deterministic autotuning), so the only source of symmetry breaking left is what
the config switches on through PRNG keys. `nondeterministic_allowed` leaves XLA free, as a user who never
thought about determinism would run it (for the PyTorch twin: cudnn.benchmark on, nondeterministic
algorithms allowed; torch_baseline/determinism.py). Both pin the PRNG implementation, so that a JAX upgrade
cannot silently change every seed.
"""

import functools
import os

from zerodiverse.errors import ConfigError

MODES = ("deterministic", "nondeterministic_allowed")
RENAMED_MODES = {"default": "nondeterministic_allowed"}

# XLA_FLAGS for `deterministic`. The CPU backend is deterministic for a fixed thread count already; these
# matter on GPU. Every flag here must exist in the jaxlib in use: XLA aborts on unknown flags.
DETERMINISTIC_XLA_FLAGS = (
    "--xla_gpu_deterministic_ops=true",
    "--xla_gpu_exclude_nondeterministic_ops=true",
)
# XLA_FLAGS for the CPU backend, in both modes (speed, not determinism: every CPU kernel is deterministic).
# XLA:CPU hands convolutions to YNNPACK by default, whose backward-filter convolution is about 10x slower
# than XLA's own (Eigen) one on 2 cores; XLA's own keeps bitwise identical channels identical in the forward,
# data and weight gradients of the 3x3 convs measured (docs/results/cpu_speed). A flag of the same name
# already in XLA_FLAGS is left as it is.
CPU_XLA_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
)
# Compiler options (per jit, not process-wide) for programs that spend more time compiling than running: no
# LLVM optimization and none of its expensive passes. At that level XLA:CPU's elemental emitters compile a
# train step 2-5x faster than its fusion emitters, and one codegen thread spends less CPU in all; newer XLAs
# have no such choice, so those two are used only where this XLA knows them (fast_compile()). The train and
# eval steps keep XLA's defaults.
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
_FAST_COMPILE_IF_KNOWN = {"xla_cpu_use_fusion_emitters": False, "xla_cpu_parallel_codegen_split_count": 1}
PRNG_IMPL = "threefry2x32"
DETERMINISTIC_MATMUL_PRECISION = "highest"
TF32_MATMUL_PRECISION = "tensorfloat32"


def check_mode(mode: str) -> None:
  if mode in RENAMED_MODES:
    raise ConfigError(f"config.determinism={mode!r} is now called {RENAMED_MODES[mode]!r} (what it does); "
                      f"set --config.determinism={RENAMED_MODES[mode]}")
  if mode not in MODES:
    raise ConfigError(f"config.determinism={mode!r} is not one of {MODES}; "
                      "set --config.determinism=deterministic or nondeterministic_allowed")


def _backend_started() -> bool:
  import jax._src.xla_bridge as xb  # pylint: disable=g-import-not-at-top
  return bool(getattr(xb, "_backends", None))


def apply(mode: str, tf32: bool = False) -> dict:
  """Sets XLA flags and JAX config for `mode`; returns what is in force. Call before any JAX computation.

  Precision is pinned in both modes (config.tf32): float32 matmuls/convs at "highest" unless `tf32`, so
  that comparing modes or backends compares kernels, not precisions.
  """
  check_mode(mode)
  import jax  # pylint: disable=g-import-not-at-top
  flags = os.environ.get("XLA_FLAGS", "").split()
  # `nondeterministic_allowed` also removes these flags when a parent process (a sweep, a test runner) left them set.
  name = lambda f: f.split("=", 1)[0]
  wanted = ([f for f in flags if f not in DETERMINISTIC_XLA_FLAGS] +
            (list(DETERMINISTIC_XLA_FLAGS) if mode == "deterministic" else []) +
            [f for f in CPU_XLA_FLAGS if name(f) not in set(map(name, flags))])
  if sorted(wanted) != sorted(flags):
    if _backend_started():
      raise RuntimeError(f"determinism.apply({mode!r}) called after JAX started its backend; "
                         "call it first thing in the process")
    os.environ["XLA_FLAGS"] = " ".join(wanted)
  jax.config.update("jax_default_matmul_precision", TF32_MATMUL_PRECISION if tf32 else DETERMINISTIC_MATMUL_PRECISION)
  jax.config.update("jax_default_prng_impl", PRNG_IMPL)
  jax.config.update("jax_threefry_partitionable", True)
  return in_force(mode)


def in_force(mode: str) -> dict:
  """The determinism-relevant settings of this process, for summary.json."""
  import jax  # pylint: disable=g-import-not-at-top
  return {
      "mode": mode,
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "jax_default_prng_impl": str(jax.config.jax_default_prng_impl),
      "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
      "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
  }


@functools.cache
def fast_compile() -> dict:
  """Compiler options for programs that only need to be correct, not fast: `_FAST_COMPILE` and those of
  `_FAST_COMPILE_IF_KNOWN` that this XLA accepts (it rejects an unknown option at compile time)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  options = dict(_FAST_COMPILE)
  for name, value in _FAST_COMPILE_IF_KNOWN.items():
    try:
      jax.jit(lambda x: x + 1).lower(np.float32(0)).compile({name: value})
    except jax.errors.JaxRuntimeError as e:
      if "No such compile option" not in str(e):
        raise
    else:
      options[name] = value
  return options
