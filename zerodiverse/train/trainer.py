"""train_and_evaluate(config, workdir): one run, resumable, ending in WORKDIR/summary.json.

Call zerodiverse.process.start(config) first thing in the process (launch.py does), so that the
determinism flags are in force before JAX starts its backend.

WORKDIR holds config.json (the resolved config), metrics.jsonl, checkpoints/ and summary.json. Running the
same config in the same workdir again resumes from the latest checkpoint; the batches of a step depend on
(seed, step) alone, so a resumed run ends bitwise where an uninterrupted one does.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from zerodiverse import backends, breakers, data, determinism, models, parallel, record, rng, symmetry
from zerodiverse.errors import ConfigError, Diverged, WorkdirError
from zerodiverse.train import optim
from zerodiverse.train.checkpoint import Checkpointer
from zerodiverse.train.metrics_log import MetricsLog
from zerodiverse.train.step import init_state, make_eval_step, make_train_step


def total_steps(cfg, steps_per_epoch: int) -> int:
  """config.train.steps, or config.train.epochs in steps; exactly one of them is set."""
  steps, epochs = cfg.get("steps", 0) or 0, cfg.get("epochs", 0) or 0
  if (steps > 0) == (epochs > 0):
    raise ConfigError(f"config.train.steps={steps}, config.train.epochs={epochs}: set exactly one of them > 0")
  return int(steps) if steps > 0 else max(1, int(round(epochs * steps_per_epoch)))


def check_config(config) -> None:
  """Fails fast, before any data is read, on a config that cannot run."""
  if config.determinism not in determinism.MODES:
    raise ConfigError(f"config.determinism={config.determinism!r} is not one of {determinism.MODES}; "
                      "set --config.determinism=deterministic or default")
  backends.check(config)
  models.for_run(config, data.num_classes(config.data.name))
  breakers.init_noise(config)
  breakers.grad_breakers(config)
  total_steps(config.train, 1)
  optim.schedule(config.train, 1000)
  for field in ("batch_size", "log_every", "eval_every", "eval_batch_size", "checkpoint_every",
                "symmetry_every", "probe_batch_size"):
    if config.train[field] < 1:
      raise ConfigError(f"config.train.{field}={config.train[field]}: must be >= 1")


# Fields that may change when a run resumes: where it runs, not what it computes.
RESUMABLE_ELSEWHERE = ("parallel",)


def claim_workdir(config, workdir: str) -> None:
  """Writes config.json, or checks that the one already there is this config (resume); never overwrites.

  A run may resume on another device count (config.parallel); it then agrees with an uninterrupted run
  within float32 tolerance rather than bitwise.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  resolved = json.loads(config.to_json())
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    for key in RESUMABLE_ELSEWHERE:
      stored.pop(key, None)
      resolved.pop(key, None)
    if stored != resolved:
      diff = _first_difference(stored, resolved)
      raise WorkdirError(f"--workdir={workdir} holds a run with another config ({diff}); "
                         "rerun with the same config to resume it, or choose a new --workdir")
  else:
    record.write_json(path, resolved)


def _first_difference(a, b, prefix="config") -> str:
  for key in sorted(set(a) | set(b)):
    x, y = a.get(key, "<unset>"), b.get(key, "<unset>")
    if isinstance(x, dict) and isinstance(y, dict):
      if x != y:
        return _first_difference(x, y, f"{prefix}.{key}")
    elif x != y:
      return f"{prefix}.{key}: stored {x!r}, now {y!r}"
  return "no difference"


def evaluate(eval_step, state, dataset, batch_size: int, mesh) -> dict:
  totals = {"correct": 0, "loss_sum": 0.0, "count": 0}
  for batch in dataset.eval_batches(batch_size, parallel.local_rows(batch_size)):
    out = parallel.to_host(eval_step(state, parallel.shard_batch(batch, mesh, batch_size)))
    for k in totals:
      totals[k] += out[k].item()
  return {"accuracy": totals["correct"] / totals["count"], "loss": totals["loss_sum"] / totals["count"]}


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint) and returns the summary."""
  workdir = os.path.abspath(workdir)
  check_config(config)  # determinism itself is applied by process.start(), before the backend starts
  mode = config.determinism
  writer = parallel.is_writer()
  if writer:
    claim_workdir(config, workdir)
  summary_path = os.path.join(workdir, "summary.json")

  # Input.
  dataset = data.load(config.data)
  stream = dataset.train_stream(config.seed, config.train.batch_size, config.data)
  num_steps = total_steps(config.train, stream.steps_per_epoch)
  mesh = parallel.make_mesh(config.parallel)
  parallel.check_divisible(config.train.batch_size, mesh, "batch_size")
  parallel.check_divisible(config.train.eval_batch_size, mesh, "eval_batch_size")

  # Model, optimizer, state.
  model = models.for_run(config, dataset.num_classes)
  tx, lr_at = optim.make(config.train, num_steps), optim.schedule(config.train, num_steps)
  key = rng.root_key(config.seed)
  example = jnp.asarray(stream.batch(0, slice(0, 1))["image"])
  state = parallel.replicate(init_state(model, tx, example, key, breakers.init_noise(config)), mesh)
  train_step, eval_step = make_train_step(model, tx, breakers.grad_breakers(config)), make_eval_step(model)
  probe = symmetry.make_probe(model)
  probe_images = next(dataset.eval_batches(config.train.probe_batch_size))["image"]

  def log_symmetry(step):  # host copies of the weights, so the metrics never touch the training mesh
    if writer:
      log.write({"step": step, "split": "symmetry", **symmetry.record(
          parallel.to_host(state["params"]), parallel.to_host(state["batch_stats"]), probe, probe_images)})

  step_key = rng.stream(key, "step")

  # Checkpoint: resume where the last run stopped.
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  log = MetricsLog(os.path.join(workdir, "metrics.jsonl"), enabled=writer)
  wall_before = 0.0
  start = ckpt.latest_step() or 0
  if start:
    saved = ckpt.restore(start, like=_checkpoint_tree(state, key, stream, start, 0.0))
    state, wall_before = saved["state"], float(saved["wall_seconds"])
    if not np.array_equal(saved["rng"], jax.random.key_data(key)):
      raise WorkdirError(f"{workdir}/checkpoints: step {start} was saved with another seed's keys")
    if writer:
      print(f"Resuming {workdir} from step {start} of {num_steps}.", flush=True)
  log.truncate_after(start)
  if start == 0:
    log_symmetry(0)

  # Loop.
  t0 = time.time()
  finite, window, last_good = jnp.asarray(True), [], start
  progress = tqdm.tqdm(total=num_steps, initial=start, disable=not (config.train.progress and writer), unit="step",
                       dynamic_ncols=True)
  for step in range(start, num_steps):
    local = stream.batch(step, parallel.local_rows(config.train.batch_size))
    state, metrics = train_step(state, parallel.shard_batch(local, mesh, config.train.batch_size), step_key)
    finite = finite & metrics["finite"]
    window.append(metrics)
    done = step + 1
    is_last = done == num_steps
    if done % config.train.log_every == 0 or is_last or done % config.train.checkpoint_every == 0:
      if not bool(parallel.to_host(finite)):
        ckpt.close()
        raise Diverged(f"loss or gradients became NaN/inf between steps {last_good} and {done}; the last good "
                       f"checkpoint (step {ckpt.latest_step()}) is kept in {workdir}/checkpoints; lower "
                       "config.train.lr or change the config, in a new --workdir")
      last_good = done
    if done % config.train.log_every == 0 or is_last:
      means = {k: float(np.mean([parallel.to_host(m[k]) for m in window])) for k in ("loss", "accuracy", "grad_norm")}
      window = []
      log.write({"step": done, "split": "train", "lr": float(lr_at(step)), **means})
      progress.set_postfix(loss=f"{means['loss']:.4f}")
    if done % config.train.eval_every == 0 or is_last:
      log.write({"step": done, "split": "test", **evaluate(eval_step, state, dataset, config.train.eval_batch_size, mesh)})
    if done % config.train.symmetry_every == 0 or done % config.train.eval_every == 0 or is_last:
      log_symmetry(done)
    if done % config.train.checkpoint_every == 0 or is_last:
      ckpt.save(done, _checkpoint_tree(state, key, stream, done, wall_before + time.time() - t0))
    progress.update(1)
  progress.close()
  ckpt.close()

  # Summary.
  records = log.records()
  evals = [r for r in records if r["split"] == "test"]
  if not evals or evals[-1]["step"] != num_steps:  # e.g. a process other than 0, which logs nothing
    records.append({"step": num_steps, "split": "test",
                    **evaluate(eval_step, state, dataset, config.train.eval_batch_size, mesh)})
  summary = record.run_summary(config, parallel.to_host(state["params"]), records, num_steps,
                               stream.steps_per_epoch, wall_before + time.time() - t0, dataset.source,
                               determinism.in_force(mode), record.device(), start)
  if writer:
    record.write_json(summary_path, summary)
  return summary


def _checkpoint_tree(state, key, stream, step: int, wall_seconds: float) -> dict:
  position = stream.position(step)
  return {"state": state, "rng": jax.random.key_data(key),
          "data_position": {k: np.asarray(v, np.int64) for k, v in position.items()},
          "wall_seconds": np.asarray(wall_seconds, np.float64)}
