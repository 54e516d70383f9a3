"""20-step loss curve and parameter fingerprint of ConstNet 10-1 (He init, batch 128, deterministic XLA) on
the offline CIFAR-10 rebuild, with whatever zerodiverse is on PYTHONPATH; with --against, the largest
relative loss difference from an earlier run's JSON (e.g. the same script run with the previous code).

  python docs/results/cpu_speed/check_numerics.py DIR > run.json
  python docs/results/cpu_speed/check_numerics.py DIR --against previous.json > run.json
"""

import argparse
import json

from zerodiverse import determinism

flags = determinism.apply("deterministic")

import jax  # noqa: E402  (after the determinism flags)
import jax.numpy as jnp  # noqa: E402

from zerodiverse import breakers, defaults, models, record, rng  # noqa: E402
from zerodiverse.data import load  # noqa: E402
from zerodiverse.train import optim, step as step_lib  # noqa: E402


def run(cfg):
  ds = load(cfg.data)
  stream = ds.train_stream(cfg.seed, cfg.train.batch_size, cfg.data)
  model = models.build(cfg.model, ds.num_classes)
  optimizer, lrs = optim.make(cfg.train), optim.learning_rates(cfg.train, cfg.train.steps)
  key = rng.root_key(cfg.seed)
  state = step_lib.init_state(model, optimizer(lrs[0]), jnp.asarray(stream.batch(0, slice(0, 1))["image"]), key,
                              breakers.init_noise(cfg))
  train_step = step_lib.make_train_step(model, optimizer)
  losses = []
  for t in range(cfg.train.steps):
    state, metrics = train_step(state, stream.batch(t), rng.stream(key, "step"), lrs[t])
    losses.append(float(metrics["loss"]))
  return losses, record.param_fingerprint(jax.device_get(state["params"]))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("data_dir")
  parser.add_argument("--against", default="")
  args = parser.parse_args()
  cfg = defaults.base()
  cfg.data.dir = args.data_dir
  cfg.model.depth, cfg.model.width, cfg.model.scheme = 10, 1, "he"
  cfg.train.epochs, cfg.train.steps, cfg.train.batch_size = 0.0, 20, 128
  losses, fingerprint = run(cfg)
  out = {"xla_flags": flags["xla_flags"], "loss": losses, "fingerprint": fingerprint}
  if args.against:
    with open(args.against) as f:
      previous = json.load(f)["loss"]
    out["max_relative_difference"] = max(abs(a - b) / abs(b) for a, b in zip(losses, previous))
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
