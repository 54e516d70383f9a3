"""20-step loss curves of ConstNet 10-1 (He init) on the offline CIFAR-10 rebuild, deterministic XLA, with the
CPU conv layer (a matrix-product weight gradient) and with XLA's own conv backward, and the parameter
fingerprint of each. Run it in two processes and compare the printed fingerprints.

  python docs/results/cpu_speed/check_numerics.py DIR > run1.json; python ... DIR > run2.json
"""

import contextlib
import json
import sys

from zerodiverse import determinism

determinism.apply("deterministic")

import jax  # noqa: E402  (after the determinism flags)
import jax.numpy as jnp  # noqa: E402

from zerodiverse import breakers, defaults, layers, models, record, rng  # noqa: E402
from zerodiverse.data import load  # noqa: E402
from zerodiverse.train import optim, step as step_lib  # noqa: E402


def run(cfg, xla: bool):
  ds = load(cfg.data)
  stream = ds.train_stream(cfg.seed, cfg.train.batch_size, cfg.data)
  model = models.build(cfg.model, ds.num_classes)
  tx = optim.make(cfg.train, cfg.train.steps)
  key = rng.root_key(cfg.seed)
  state = step_lib.init_state(model, tx, jnp.asarray(stream.batch(0, slice(0, 1))["image"]), key,
                              breakers.init_noise(cfg))
  with contextlib.nullcontext() if xla else layers.matmul_conv_backward():
    train_step = step_lib.make_train_step(model, tx)
    losses = []
    for t in range(cfg.train.steps):
      state, metrics = train_step(state, stream.batch(t), rng.stream(key, "step"))
      losses.append(float(metrics["loss"]))
  return losses, record.param_fingerprint(jax.device_get(state["params"]))


def main(data_dir: str):
  cfg = defaults.base()
  cfg.data.dir = data_dir
  cfg.model.depth, cfg.model.width, cfg.model.init = 10, 1, "he"
  cfg.train.epochs, cfg.train.steps, cfg.train.batch_size = 0.0, 20, 128
  matmul, matmul_fp = run(cfg, xla=False)
  xla, xla_fp = run(cfg, xla=True)
  rel = max(abs(a - b) / abs(b) for a, b in zip(matmul, xla))
  print(json.dumps({"loss_matmul_backward": matmul, "loss_xla_backward": xla, "max_relative_difference": rel,
                    "fingerprint_matmul_backward": matmul_fp, "fingerprint_xla_backward": xla_fp}, indent=1))


if __name__ == "__main__":
  main(sys.argv[1])
