"""The JAX backend of a run (zerodiverse.run drives it): a jitted train step on a data-parallel mesh, orbax
checkpoints of the whole state (params, optimizer state, batch stats, step, keys, data position)."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from zerodiverse import breakers, determinism, models, parallel, record, rng
from zerodiverse.errors import WorkdirError
from zerodiverse.train import optim
from zerodiverse.train.checkpoint import Checkpointer
from zerodiverse.train.step import init_state, make_eval_step, make_train_step


class JaxBackend:

  def __init__(self, config, dataset, stream, num_steps: int):
    self.config, self.dataset, self.stream = config, dataset, stream
    self.mesh = parallel.make_mesh(config.parallel)
    parallel.check_divisible(config.train.batch_size, self.mesh, "batch_size")
    parallel.check_divisible(config.train.eval_batch_size, self.mesh, "eval_batch_size")
    model = models.for_run(config, dataset.num_classes)
    optimizer = optim.make(config.train)
    self._lrs = optim.learning_rates(config.train, num_steps)
    self._lr_on_mesh = {}  # one replicated scalar per distinct rate
    self.key = rng.root_key(config.seed)
    example = jnp.asarray(stream.batch(0, slice(0, 1))["image"])
    state = init_state(model, optimizer(config.train.lr), example, self.key, breakers.init_noise(config))
    self.state = parallel.replicate(state, self.mesh)
    self._train_step = make_train_step(model, optimizer, breakers.grad_breakers(config))
    self._eval_step = make_eval_step(model)
    self.step_key = rng.stream(self.key, "step")

  @staticmethod
  def is_writer() -> bool:
    return parallel.is_writer()

  def train_step(self, step: int) -> dict:
    batch_size = self.config.train.batch_size
    local = self.stream.batch(step, parallel.local_rows(batch_size))
    lr = self._lrs[step]
    if lr not in self._lr_on_mesh:
      self._lr_on_mesh[lr] = parallel.replicate(lr, self.mesh)
    self.state, metrics = self._train_step(self.state, parallel.shard_batch(local, self.mesh, batch_size),
                                           self.step_key, self._lr_on_mesh[lr])
    return metrics

  def lr(self, step: int) -> float:
    return float(self._lrs[step])

  def evaluate(self) -> dict:
    batch_size = self.config.train.eval_batch_size
    totals = {"correct": 0, "loss_sum": 0.0, "count": 0}
    for batch in self.dataset.eval_batches(batch_size, parallel.local_rows(batch_size)):
      out = parallel.to_host(self._eval_step(self.state, parallel.shard_batch(batch, self.mesh, batch_size)))
      for k in totals:
        totals[k] += out[k].item()
    return {"accuracy": totals["correct"] / totals["count"], "loss": totals["loss_sum"] / totals["count"]}

  host = staticmethod(parallel.to_host)

  def host_variables(self) -> tuple:
    return parallel.to_host(self.state["params"]), parallel.to_host(self.state["batch_stats"])

  @staticmethod
  def open_checkpoints(directory: str) -> Checkpointer:
    return Checkpointer(directory)

  def _tree(self, step: int, wall_seconds: float) -> dict:
    position = self.stream.position(step)
    return {"state": self.state, "rng": jax.random.key_data(self.key),
            "data_position": {k: np.asarray(v, np.int64) for k, v in position.items()},
            "wall_seconds": np.asarray(wall_seconds, np.float64)}

  def save(self, ckpts: Checkpointer, step: int, wall_seconds: float) -> None:
    ckpts.save(step, self._tree(step, wall_seconds))

  def restore(self, ckpts: Checkpointer, step: int) -> float:
    saved = ckpts.restore(step, like=self._tree(step, 0.0))
    if not np.array_equal(saved["rng"], jax.random.key_data(self.key)):
      raise WorkdirError(f"{ckpts.path(step)}: step {step} was saved with another seed's keys")
    self.state = saved["state"]
    return float(saved["wall_seconds"])

  def determinism(self) -> dict:
    return determinism.in_force(self.config.determinism)  # applied by process.start, before the backend

  @staticmethod
  def device() -> dict:
    return record.device()

  @staticmethod
  def summary_fields() -> dict:
    return {}
