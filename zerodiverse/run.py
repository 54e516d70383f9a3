"""One training run, for either backend: train_and_evaluate(config, workdir) ends in WORKDIR/summary.json.

This module holds what a run means whatever framework computes it: the checks, the workdir (lock,
config.json, data.json), the step count, the loop's cadence (log, eval, symmetry metrics, checkpoint, the
NaN stop), resume and the summary. config.backend supplies the rest (zerodiverse/backends.py): the state
and its train step, evaluation, checkpoint save and restore, and a host copy of the parameters.

`main(config, workdir)` is the entry point of launch.py and of each sweep arm: it applies the process
settings first (zerodiverse.process.start, before JAX starts its backend) and turns a user's mistake into
one line on stderr and exit status 2.

WORKDIR holds config.json (the resolved config), data.json (what was read, fingerprinted), metrics.jsonl,
checkpoints/ and summary.json. Running the same config in the same workdir again resumes from the latest
intact checkpoint; the batches of a step depend on (seed, step) alone, so a resumed run ends bitwise where an
uninterrupted one does. A finished run is left as it is.
"""

import errno
import math
import os
import shutil
import sys
import time

import numpy as np
import tqdm

from zerodiverse import backends, breakers, data, defaults, determinism, models, process, record, symmetry
from zerodiverse import workdir as workdirs
from zerodiverse.errors import ConfigError, Diverged, UserError, WorkdirError
from zerodiverse.train import optim
from zerodiverse.train.metrics_log import MetricsLog

SEED_RANGE = 2 ** 32  # jax.random.key takes a uint32 seed under threefry2x32, the PRNG every run pins
CADENCE = ("log_every", "eval_every", "checkpoint_every", "symmetry_every")


def itstime(step: int, every: int, total: int, last: bool = True) -> bool:
  """Whether a task done every `every` steps is due after `step` steps of `total` (and after the last)."""
  return step % every == 0 or (last and step == total)


def total_steps(cfg, steps_per_epoch: int) -> int:
  """config.train.steps, or config.train.epochs in steps; exactly one of them is set."""
  steps, epochs = cfg.get("steps", 0) or 0, cfg.get("epochs", 0) or 0
  if (steps > 0) == (epochs > 0):
    raise ConfigError(f"config.train.steps={steps}, config.train.epochs={epochs}: set exactly one of them > 0")
  return int(steps) if steps > 0 else max(1, int(round(epochs * steps_per_epoch)))


def length_field(cfg) -> str:
  """Which field set the training length, for summary.json."""
  return "train.steps" if (cfg.get("steps", 0) or 0) > 0 else "train.epochs"


def _finite_positive(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_config(config) -> None:
  """Fails fast, before any data is read or anything written, on a config that cannot run."""
  if "init" in config.model:
    raise ConfigError(defaults.RENAMED["model.init"])
  determinism.check_mode(config.determinism)
  backends.check(config)
  seed = config.seed
  if not isinstance(seed, int) or not 0 <= seed < SEED_RANGE:
    raise ConfigError(f"config.seed={seed}: the PRNG takes seeds 0 <= seed < 2**32; choose one in that range")
  models.for_run(config, data.num_classes(config.data.name))
  if not _finite_positive(config.train.lr):
    raise ConfigError(f"config.train.lr={config.train.lr}: the learning rate must be a finite number > 0")
  for field in ("init_noise", "grad_noise", "rounding_noise_scale", "dropout"):
    value = config.breaker.get(field, 0.0)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
      raise ConfigError(f"config.breaker.{field}={value}: must be a finite number >= 0 (0 = off)")
  if not config.breaker.get("dropout", 0.0) < 1:
    raise ConfigError(f"config.breaker.dropout={config.breaker.dropout}: a dropout rate is < 1")
  breakers.init_noise(config)
  breakers.grad_breakers(config)
  total_steps(config.train, 1)
  optim.schedule(config.train, 1000)
  for field in ("batch_size", "eval_batch_size", "probe_batch_size") + CADENCE:
    if config.train[field] < 1:
      raise ConfigError(f"config.train.{field}={config.train[field]}: must be >= 1")


def check_sizes(config, dataset) -> None:
  """Checks that need the data: a batch cannot hold more examples than the split has."""
  n = len(dataset.train_labels) if hasattr(dataset, "train_labels") else None
  if n is not None and config.train.batch_size > n:
    raise ConfigError(f"config.train.batch_size={config.train.batch_size}: the train split of "
                      f"{dataset.source} holds {n} examples; choose a batch size <= {n}")


def _finished(config, workdir: str, writer: bool):
  """The stored summary if `workdir` holds this config's finished run, else None."""
  summary = workdirs.read_json(os.path.join(workdir, "summary.json"), "the summary of a finished run")
  if summary is None:
    return None
  if writer:
    with workdirs.Lock(workdir):
      workdirs.claim(config, workdir)
    print(f"{workdir} holds a finished run ({summary['steps']} steps); its summary.json is kept as it was. "
          "Choose a new --workdir to train again.", flush=True)
  return summary


def restore_latest(backend, ckpts, workdir: str):
  """(the checkpoints, the restored step or 0, its wall seconds): the newest intact checkpoint wins.

  Damaged steps above it (a kill or a full disk mid-write, a file removed) are moved to
  WORKDIR/damaged_checkpoints/ with one line saying so, so that the run can save those steps again (and the
  checkpoint reader, which infers the layout from the steps it finds, sees only intact ones).
  """
  directory = os.path.join(workdir, "checkpoints")
  aside = os.path.join(workdir, "damaged_checkpoints")
  damaged = []  # (step, reason, path set aside)
  while ckpts.steps():
    step = ckpts.steps()[-1]
    try:
      wall = backend.restore(ckpts, step)
      break
    except UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except  (whatever a damaged file makes the reader raise)
      reason = f"{e.__class__.__name__}: {str(e).splitlines()[0][:120]}" if str(e) else e.__class__.__name__
      ckpts.close()
      os.makedirs(aside, exist_ok=True)
      moved = os.path.join(aside, os.path.basename(ckpts.path(step)))
      shutil.rmtree(moved, ignore_errors=True)
      shutil.move(ckpts.path(step), moved)
      damaged.append((step, reason, moved))
      ckpts = backend.open_checkpoints(directory)
  else:
    if damaged:  # nothing to resume from: put everything back as it was, and say what to do
      ckpts.close()
      for step, _, moved in damaged:
        shutil.move(moved, ckpts.path(step))
      raise WorkdirError(f"{directory}: no intact checkpoint (step {damaged[0][0]}: {damaged[0][1]}); move "
                         f"{directory} aside to train again from step 0, or choose a new --workdir")
    return ckpts, 0, 0.0
  if damaged:
    print(f"{directory}: step {', '.join(str(s) for s, _, _ in damaged)} damaged ({damaged[0][1]}); moved to "
          f"{aside}; resuming from step {step}, the newest intact one.", file=sys.stderr, flush=True)
  return ckpts, step, wall


def stop_if_diverged(backend, finite, ckpts, last_good: int, done: int, workdir: str, what: str = "loss or gradients",
                     fix: str = "lower config.train.lr or change the config") -> None:
  """Raises Diverged, naming the last good checkpoint (kept), if `finite` (the steps since `last_good`) is False."""
  if bool(backend.host(finite)):
    return
  ckpts.close()
  latest = ckpts.steps()
  kept = f"the last good checkpoint (step {latest[-1]})" if latest else "no checkpoint yet"
  raise Diverged(f"{what} became NaN/inf between steps {last_good} and {done}; {kept} in {workdir}/checkpoints; "
                 f"{fix}, in a new --workdir")


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint) and returns the summary."""
  workdir = os.path.abspath(workdir)
  backend_class = backends.load(config.get("backend", "jax"))
  check_config(config)
  workdirs.check_free(workdir)  # reads only: a second process stops here, at once
  workdirs.claim(config, workdir, write=False)  # another config, or a damaged config.json: stop here too
  writer = backend_class.is_writer()
  done = _finished(config, workdir, writer)
  if done is not None:
    return done

  # Input, and every check that needs it, before anything is written.
  dataset = data.load(config.data)
  check_sizes(config, dataset)
  data_record = workdirs.data_record(dataset)
  workdirs.claim_data(workdir, data_record, write=False)
  stream = dataset.train_stream(config.seed, config.train.batch_size, config.data)
  num_steps = total_steps(config.train, stream.steps_per_epoch)
  backend = backend_class(config, dataset, stream, num_steps)
  probe = symmetry.make_probe(models.for_run(config, dataset.num_classes))
  probe_images = next(dataset.eval_batches(config.train.probe_batch_size))["image"]

  lock = None
  if writer:
    workdirs.make(workdir)
    lock = workdirs.Lock(workdir).acquire()
    workdirs.claim(config, workdir)
    workdirs.claim_data(workdir, data_record)
  try:
    return _train(config, workdir, dataset, stream, num_steps, backend, probe, probe_images, writer)
  finally:
    if lock:
      lock.release()


def _train(config, workdir, dataset, stream, num_steps, backend, probe, probe_images, writer) -> dict:
  cfg = config.train
  log = MetricsLog(os.path.join(workdir, "metrics.jsonl"), enabled=writer)

  def log_symmetry(step):  # host copies of the weights, so the metrics never touch the training devices
    if writer:
      params, batch_stats = backend.host_variables()
      log.write({"step": step, "split": "symmetry", **symmetry.record(params, batch_stats, probe, probe_images)})

  # Resume where the last run stopped.
  ckpts = backend.open_checkpoints(os.path.join(workdir, "checkpoints"))
  ckpts, start, wall_before = restore_latest(backend, ckpts, workdir)
  if start and writer:
    print(f"Resuming {workdir} from step {start} of {num_steps}.", flush=True)
  log.truncate_after(start if start else -1)  # from step 0 (killed before its first checkpoint): all again
  if start == 0:
    log_symmetry(0)

  # Loop.
  t0 = time.time()
  finite, window, last_good = None, [], start
  progress = tqdm.tqdm(total=num_steps, initial=start, disable=not (cfg.progress and writer), unit="step",
                       dynamic_ncols=True)
  for step in range(start, num_steps):
    metrics = backend.train_step(step)
    finite = metrics["finite"] if finite is None else finite & metrics["finite"]
    window.append(metrics)
    done = step + 1
    if itstime(done, cfg.log_every, num_steps) or itstime(done, cfg.checkpoint_every, num_steps):
      stop_if_diverged(backend, finite, ckpts, last_good, done, workdir)
      last_good = done
    if itstime(done, cfg.log_every, num_steps):
      means = {k: float(np.mean([backend.host(m[k]) for m in window])) for k in ("loss", "accuracy", "grad_norm")}
      window = []
      log.write({"step": done, "split": "train", "lr": float(backend.lr(step)), **means})
      progress.set_postfix(loss=f"{means['loss']:.4f}")
    if itstime(done, cfg.eval_every, num_steps):
      log.write({"step": done, "split": "test", **backend.evaluate()})
    if itstime(done, cfg.symmetry_every, num_steps) or itstime(done, cfg.eval_every, num_steps):
      log_symmetry(done)
    if itstime(done, cfg.checkpoint_every, num_steps):
      backend.save(ckpts, done, wall_before + time.time() - t0)
    progress.update(1)
  progress.close()
  ckpts.close()

  # Summary.
  records = log.records()
  evals = [r for r in records if r["split"] == "test"]
  if not evals or evals[-1]["step"] != num_steps:  # e.g. a process other than 0, which logs nothing
    records.append({"step": num_steps, "split": "test", **backend.evaluate()})
  params, _ = backend.host_variables()
  summary = {**backend.summary_fields(), **record.run_summary(
      config, params, records, num_steps, stream.steps_per_epoch, wall_before + time.time() - t0,
      dataset.source, backend.determinism(), backend.device(), start), "length_from": length_field(cfg)}
  if writer:
    record.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def describe_os_error(e: OSError) -> str:
  """'cannot write PATH: Read-only file system (EROFS)' from an OSError, with the way out."""
  name = f" ({errno.errorcode[e.errno]})" if e.errno in errno.errorcode else ""
  where = f" {e.filename}" if e.filename else ""
  return f"cannot write{where}: {e.strerror or e}{name}; free space or choose a writable --workdir"


def user_facing(job):
  """job()'s result, or None after printing a user's mistake (a bad config, workdir or file) as one line."""
  try:
    return job()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
  except OSError as e:
    print(f"error: {describe_os_error(e)}", file=sys.stderr)
  return None


def main(config, workdir: str) -> int:
  """launch.py's and each sweep arm's run: process settings, the run, one line and exit 2 on bad input."""
  def job():
    process.start(config)
    return train_and_evaluate(config, workdir)

  summary = user_facing(job)
  if summary is None:
    return 2
  print(f"final test accuracy {summary['final_test_accuracy']:.4f} (best {summary['best_test_accuracy']:.4f}), "
        f"{summary['steps']} steps in {summary['wall_seconds']:.0f}s, fingerprint {summary['param_fingerprint'][:16]}")
  return 0
