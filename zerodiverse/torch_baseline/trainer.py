"""The backend of config.backend = "torch" (zerodiverse.run drives it): the JAX backend's run, in PyTorch.

The same run (zerodiverse.run: metrics.jsonl with the same keys, summary.json with the same keys plus
"backend"), the same batches (data.TrainStream, NHWC -> NCHW), the same initial numbers (the JAX initializers and init-noise breaker, converted), the same recipe
(SGD momentum, coupled weight decay, the step schedule of train/optim.py). What differs is the kernels,
which is the point. Residual dropout draws from torch's RNG seeded per step from (seed, "dropout", step),
so its masks are reproducible and resumable but not JAX's masks.
"""

import os
import platform

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch.nn import functional as F

from zerodiverse import breakers, models, rng
from zerodiverse.errors import WorkdirError
from zerodiverse.torch_baseline import convert
from zerodiverse.torch_baseline import determinism as torch_determinism
from zerodiverse.torch_baseline import models as torch_models
from zerodiverse.torch_baseline.checkpoint import Checkpointer
from zerodiverse.train import optim
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
  state = init_state(flax_model, optim.make(config.train)(config.train.lr), jnp.asarray(example),
                     rng.root_key(config.seed), breakers.init_noise(config))
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


class TorchBackend:
  """The PyTorch backend of a run (zerodiverse.run drives it): one device, torch's own kernels."""

  def __init__(self, config, dataset, stream, num_steps: int):
    self.config, self.dataset, self.stream = config, dataset, stream
    self._determinism = torch_determinism.apply(config.determinism, config.get("tf32", False))
    self.device_ = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    self.model = initial_model(config, dataset, stream.batch(0)["image"][:1], self.device_)
    self.opt, self.sched = make_optimizer(self.model, config.train, num_steps)
    factor = lr_factor(config.train, num_steps)
    self.lr = lambda step: config.train.lr * factor(step)

  @staticmethod
  def is_writer() -> bool:
    return True

  def train_step(self, step: int) -> dict:
    images, labels = to_torch(self.stream.batch(step), self.device_)
    torch.manual_seed(step_seed(self.config.seed, "dropout", step))  # dropout masks fixed by (seed, step)
    return train_step(self.model, self.opt, self.sched, images, labels)

  def evaluate(self) -> dict:
    return evaluate(self.model, self.dataset, self.config.train.eval_batch_size, self.device_)

  @staticmethod
  def host(value) -> np.ndarray:
    return value.detach().cpu().numpy()

  def host_variables(self) -> tuple:
    return convert.to_flax(self.model)  # Flax names and layouts: the same fingerprint and per-layer keys

  @staticmethod
  def open_checkpoints(directory: str) -> Checkpointer:
    return Checkpointer(directory)

  def save(self, ckpts: Checkpointer, step: int, wall_seconds: float) -> None:
    ckpts.save(step, {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                      "scheduler": self.sched.state_dict(), "step": step, "seed": self.config.seed,
                      "data_position": self.stream.position(step), "wall_seconds": wall_seconds})

  def restore(self, ckpts: Checkpointer, step: int) -> float:
    saved = ckpts.restore(step, map_location=self.device_)
    if saved["seed"] != self.config.seed:
      raise WorkdirError(f"{ckpts.path(step)}: step {step} was saved with seed {saved['seed']}")
    self.model.load_state_dict(saved["model"])
    self.opt.load_state_dict(saved["optimizer"])
    self.sched.load_state_dict(saved["scheduler"])
    return float(saved["wall_seconds"])

  def determinism(self) -> dict:
    return self._determinism

  def device(self) -> dict:
    return device_record(self.device_)

  @staticmethod
  def summary_fields() -> dict:
    return {"backend": "torch"}
