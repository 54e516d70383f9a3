"""train_and_evaluate(config, workdir) for config.backend = "torch": the JAX trainer's run, in PyTorch.

The same workdir contract as zerodiverse.train.trainer (config.json, metrics.jsonl with the same keys,
checkpoints/, summary.json with the same keys plus "backend"), the same batches (data.TrainStream, NHWC ->
NCHW), the same initial numbers (the JAX initializers and init-noise breaker, converted), the same recipe
(SGD momentum, coupled weight decay, the step schedule of train/optim.py). What differs is the kernels,
which is the point. Residual dropout draws from torch's RNG seeded per step from (seed, "dropout", step),
so its masks are reproducible and resumable but not JAX's masks.
"""

import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import tqdm
from torch.nn import functional as F

from zerodiverse import breakers, data, models, record, rng, symmetry
from zerodiverse.errors import Diverged, WorkdirError
from zerodiverse.torch_baseline import convert
from zerodiverse.torch_baseline import determinism as torch_determinism
from zerodiverse.torch_baseline import models as torch_models
from zerodiverse.torch_baseline.checkpoint import Checkpointer
from zerodiverse.train import optim
from zerodiverse.train import trainer as jax_trainer
from zerodiverse.train.metrics_log import MetricsLog
from zerodiverse.train.step import init_state


def milestones(cfg, total_steps: int) -> list[int]:
  """The steps where train/optim.py's schedule multiplies the rate by lr_drop_factor (repeats compound)."""
  return sorted(int(round(f * total_steps)) for f in cfg.lr_drop_at)


def lr_factor(cfg, total_steps: int):
  """step -> the factor on config.train.lr at that step, as optax.piecewise_constant_schedule has it."""
  drops = milestones(cfg, total_steps)
  return lambda step: cfg.lr_drop_factor ** sum(step >= m for m in drops)


def make_optimizer(model: torch.nn.Module, cfg, total_steps: int):
  """torch.optim.SGD (momentum, no Nesterov, coupled weight decay on every parameter) and its schedule."""
  opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                        nesterov=False)
  return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, total_steps))


def to_torch(batch: dict, device) -> tuple:
  """A TrainStream / eval batch as NCHW float32 images and int64 labels on `device`."""
  images = torch.from_numpy(np.ascontiguousarray(batch["image"])).permute(0, 3, 1, 2).contiguous()
  return images.to(device), torch.from_numpy(np.asarray(batch["label"])).long().to(device)


def step_seed(seed: int, name: str, step: int) -> int:
  return int(np.random.SeedSequence(rng.numpy_seed(seed, name, step)).generate_state(1, np.uint64)[0] >> 1)


def initial_model(config, dataset, example: np.ndarray, device) -> torch.nn.Module:
  """The torch model holding exactly the JAX initializers' numbers (init-noise breaker included)."""
  flax_model = models.build(config.model, dataset.num_classes, config.breaker.dropout)
  state = init_state(flax_model, optim.make(config.train, 1), jnp.asarray(example), rng.root_key(config.seed),
                     breakers.init_noise(config))
  model = torch_models.build(config.model, dataset.num_classes, example.shape[1:], config.breaker.dropout)
  convert.load_flax(model, jax.device_get(state["params"]), jax.device_get(state["batch_stats"]))
  return model.to(device)


def train_step(model, opt, sched, images, labels) -> dict:
  model.train()
  logits = model(images)
  loss = F.cross_entropy(logits, labels)
  opt.zero_grad(set_to_none=True)
  loss.backward()
  grad_norm = torch.sqrt(sum(p.grad.detach().pow(2).sum() for p in model.parameters()))
  opt.step()
  sched.step()
  loss = loss.detach()
  return {"loss": loss, "accuracy": (logits.detach().argmax(-1) == labels).float().mean(), "grad_norm": grad_norm,
          "finite": torch.isfinite(loss) & torch.isfinite(grad_norm)}


@torch.no_grad()
def evaluate(model, dataset, batch_size: int, device) -> dict:
  model.eval()
  correct, loss_sum, count = 0, 0.0, 0
  for batch in dataset.eval_batches(batch_size):
    images, labels = to_torch(batch, device)
    mask = torch.from_numpy(batch["mask"]).to(device)
    logits = model(images)
    losses = F.cross_entropy(logits, labels, reduction="none")
    correct += int(((logits.argmax(-1) == labels) & mask).sum())
    loss_sum += float(torch.where(mask, losses, 0.0).sum())
    count += int(mask.sum())
  return {"accuracy": correct / count, "loss": loss_sum / count}


def device_record(device: torch.device) -> dict:
  if device.type == "cuda":
    kind, count = torch.cuda.get_device_name(device), torch.cuda.device_count()
  else:
    kind, count = platform.processor() or platform.machine(), 1
  return {"platform": device.type, "kind": kind, "count": count, "host_cpus": os.cpu_count(),
          "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None}


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains `config` with PyTorch in `workdir` (resuming if it holds a checkpoint); returns the summary."""
  # JAX only computes the initial numbers here: leave the GPU's memory to torch (before JAX's backend starts).
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  workdir = os.path.abspath(workdir)
  jax_trainer.check_config(config)
  determinism = torch_determinism.apply(config.determinism, config.get("tf32", False))
  jax_trainer.claim_workdir(config, workdir)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

  dataset = data.load(config.data)
  stream = dataset.train_stream(config.seed, config.train.batch_size, config.data)
  num_steps = jax_trainer.total_steps(config.train, stream.steps_per_epoch)
  model = initial_model(config, dataset, stream.batch(0)["image"][:1], device)
  opt, sched = make_optimizer(model, config.train, num_steps)
  lr_at = lambda step: config.train.lr * lr_factor(config.train, num_steps)(step)

  # Symmetry metrics on the weights in Flax layout; activations through the JAX twin of the same weights
  # (deterministic), so both backends log the same records and symmetry_breaking_step means the same thing.
  probe = symmetry.make_probe(models.build(config.model, dataset.num_classes, config.breaker.dropout))
  probe_images = next(dataset.eval_batches(config.train.probe_batch_size))["image"]

  def log_symmetry(step):
    params, batch_stats = convert.to_flax(model)
    log.write({"step": step, "split": "symmetry", **symmetry.record(params, batch_stats, probe, probe_images)})

  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  log = MetricsLog(os.path.join(workdir, "metrics.jsonl"))
  wall_before = 0.0
  start = ckpt.latest_step() or 0
  if start:
    saved = ckpt.restore(start, map_location=device)
    if saved["seed"] != config.seed:
      raise WorkdirError(f"{workdir}/checkpoints: step {start} was saved with seed {saved['seed']}")
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    wall_before = float(saved["wall_seconds"])
    print(f"Resuming {workdir} from step {start} of {num_steps}.", flush=True)
  log.truncate_after(start)
  if start == 0:
    log_symmetry(0)

  t0 = time.time()
  finite, window, last_good = torch.tensor(True, device=device), [], start
  progress = tqdm.tqdm(total=num_steps, initial=start, disable=not config.train.progress, unit="step",
                       dynamic_ncols=True)
  for step in range(start, num_steps):
    images, labels = to_torch(stream.batch(step), device)
    torch.manual_seed(step_seed(config.seed, "dropout", step))  # dropout masks fixed by (seed, step)
    metrics = train_step(model, opt, sched, images, labels)
    finite = finite & metrics["finite"]
    window.append(metrics)
    done = step + 1
    is_last = done == num_steps
    if done % config.train.log_every == 0 or is_last or done % config.train.checkpoint_every == 0:
      if not bool(finite):
        raise Diverged(f"loss or gradients became NaN/inf between steps {last_good} and {done}; the last good "
                       f"checkpoint (step {ckpt.latest_step()}) is kept in {workdir}/checkpoints; lower "
                       "config.train.lr or change the config, in a new --workdir")
      last_good = done
    if done % config.train.log_every == 0 or is_last:
      means = {k: float(torch.stack([m[k] for m in window]).float().mean()) for k in ("loss", "accuracy", "grad_norm")}
      window = []
      log.write({"step": done, "split": "train", "lr": float(lr_at(step)), **means})
      progress.set_postfix(loss=f"{means['loss']:.4f}")
    if done % config.train.eval_every == 0 or is_last:
      log.write({"step": done, "split": "test", **evaluate(model, dataset, config.train.eval_batch_size, device)})
    if done % config.train.symmetry_every == 0 or done % config.train.eval_every == 0 or is_last:
      log_symmetry(done)
    if done % config.train.checkpoint_every == 0 or is_last:
      ckpt.save(done, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                       "step": done, "seed": config.seed, "data_position": stream.position(done),
                       "wall_seconds": wall_before + time.time() - t0})
    progress.update(1)
  progress.close()

  records = log.records()
  evals = [r for r in records if r["split"] == "test"]
  if not evals or evals[-1]["step"] != num_steps:
    records.append({"step": num_steps, "split": "test",
                    **evaluate(model, dataset, config.train.eval_batch_size, device)})
  params, _ = convert.to_flax(model)  # Flax names and layouts: the same fingerprint and per-layer keys
  summary = {"backend": "torch", **record.run_summary(
      config, params, records, num_steps, stream.steps_per_epoch, wall_before + time.time() - t0,
      dataset.source, determinism, device_record(device), start)}
  record.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary
