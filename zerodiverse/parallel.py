"""Data parallelism with jax.sharding: one code path for 1 device, many devices, and many hosts.

A 1-D Mesh over the chosen devices with axis "data": the batch is sharded along it, parameters and
optimizer state are replicated, and XLA inserts the all-reduces, so BatchNorm statistics and gradients are
those of the global batch. Every host computes the global batch of a step from (seed, step) and keeps its
own slice, so the data each host reads is fixed by the seed and the process count.

What is bitwise: reruns at a fixed device count (and process count). What is not: 1 device against N,
whose reductions add in another order; they agree within float32 tolerance (tests/test_parallel.py).
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from zerodiverse.errors import ConfigError

AXIS = "data"


def initialize(cfg) -> None:
  """Starts jax.distributed when config.parallel.distributed is set; call before any JAX computation.

  An empty coordinator lets JAX detect the cluster (SLURM, Open MPI, TPU pods, Kubernetes); otherwise
  coordinator, num_processes and process_id are passed as given.
  """
  if not cfg.distributed:
    return
  kwargs = {}
  if cfg.coordinator:
    if cfg.num_processes < 1 or cfg.process_id < 0:
      raise ConfigError("config.parallel.coordinator is set: also set config.parallel.num_processes >= 1 and "
                        "config.parallel.process_id >= 0 (or leave coordinator empty for auto-detection)")
    kwargs = dict(coordinator_address=cfg.coordinator, num_processes=cfg.num_processes, process_id=cfg.process_id)
  jax.distributed.initialize(**kwargs)


def make_mesh(cfg, devices=None) -> Mesh:
  """The data-parallel mesh: config.parallel.num_devices devices (0 = all devices of all processes)."""
  devices = list(devices if devices is not None else jax.devices())
  n = cfg.num_devices or len(devices)
  if not 1 <= n <= len(devices):
    raise ConfigError(f"config.parallel.num_devices={cfg.num_devices}: this job sees {len(devices)} devices; "
                      "use 0 for all of them or a number up to that")
  if jax.process_count() > 1 and n != len(devices):
    raise ConfigError("config.parallel.num_devices must be 0 (all devices) in a multi-process job")
  return Mesh(np.array(devices[:n]), (AXIS,))


def check_divisible(batch_size: int, mesh: Mesh, field: str) -> None:
  if batch_size % mesh.size:
    raise ConfigError(f"config.train.{field}={batch_size} is not divisible by the {mesh.size} devices of the "
                      "mesh; choose a multiple, or set config.parallel.num_devices")


def replicate(tree, mesh: Mesh):
  """Every leaf copied to every device of the mesh (parameters, optimizer state, batch stats)."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def host_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
  """The rows of a global batch that host `process_index` of `process_count` feeds to its devices."""
  if global_batch_size % process_count:
    raise ConfigError(f"batch size {global_batch_size} is not divisible by the {process_count} processes")
  per_host = global_batch_size // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def local_rows(global_batch_size: int) -> slice:
  """The rows of each global batch that this process loads."""
  return host_slice(global_batch_size, jax.process_index(), jax.process_count())


def shard_batch(local: dict, mesh: Mesh, global_batch_size: int) -> dict:
  """This process's rows of a batch (NumPy) as global jax.Arrays sharded along the mesh's data axis."""
  sharding = NamedSharding(mesh, PartitionSpec(AXIS))
  return {k: jax.make_array_from_process_local_data(sharding, v, (global_batch_size,) + v.shape[1:])
          for k, v in local.items()}


def is_writer(process_index: int | None = None) -> bool:
  """Only process 0 writes logs, configs and summaries (orbax coordinates checkpoint writes itself)."""
  return (jax.process_index() if process_index is None else process_index) == 0


def to_host(tree):
  """NumPy copies of replicated (or single-device) arrays, read from this process's first shard."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x),
                      tree)
