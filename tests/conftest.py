"""Shared test fixtures. Determinism is applied before any test touches JAX, as launch.py does.

Compiled XLA programs are shared between the tests and the processes they start (launch.py, sweep arms, the
8-device worker, pytest-xdist's workers) through a compilation cache that lives as long as this test run:
many tests train the same tiny model, and compiling it dominates their time. A cached program is the program
compiled again, so every bitwise comparison means what it meant without the cache.
"""

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

# pytest-xdist's workers inherit the environment of the process that starts them, so they share the cache of
# the main pytest process, which removes it at exit.
_XLA_CACHE = os.environ.get("ZERODIVERSE_TEST_XLA_CACHE")
if not _XLA_CACHE:
  _XLA_CACHE = os.environ["ZERODIVERSE_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="zerodiverse-test-xla-cache-")
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
os.environ.update(JAX_COMPILATION_CACHE_DIR=_XLA_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

import ml_collections
import numpy as np
import pytest

from zerodiverse import defaults, determinism

determinism.apply("deterministic")
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)  # in case JAX was imported before the variables
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides) -> ml_collections.ConfigDict:
  """ConstNet D=10 k=1 on the embedded digits, a few dozen steps: the smallest real run."""
  config = defaults.base()
  config.model.depth, config.model.width = 10, 1
  config.data.name, config.data.augment = "digits", False
  config.train.epochs, config.train.steps, config.train.batch_size = 0.0, 40, 64
  config.train.lr, config.train.lr_drop_at = 0.05, (0.5,)
  config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 20
  config.train.eval_batch_size = 360
  config.train.progress = False
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def config_module(name: str):
  """configs/<name>.py as a module (its get_config)."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def write_fake_cifar10(root: str, per_batch: int = 100, seed: int = 0) -> str:
  """A small cifar-10-batches-bin in the official binary layout (random pixels, labels 0..9)."""
  folder = os.path.join(root, "cifar-10-batches-bin")
  os.makedirs(folder, exist_ok=True)
  generator = np.random.default_rng(seed)
  for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    labels = generator.integers(0, 10, size=(per_batch, 1), dtype=np.uint8)
    pixels = generator.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
    np.concatenate([labels, pixels], axis=1).tofile(os.path.join(folder, name))
  return folder


def launch(*args, timeout=300, **popen_kwargs):
  """Runs launch.py in a fresh process; returns the CompletedProcess (or the Popen if popen_kwargs)."""
  cmd = [sys.executable, os.path.join(REPO, "launch.py"), *args]
  env = dict(os.environ, PYTHONPATH=REPO)
  if popen_kwargs:
    return subprocess.Popen(cmd, env=env, cwd=REPO, **popen_kwargs)
  return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def fake_cifar_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("cifar")
  write_fake_cifar10(str(root))
  return str(root)
