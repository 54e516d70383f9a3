"""Run by tests/test_parallel.py in a process with 8 simulated CPU devices; prints measurements as JSON."""

import json
import os
import shutil
import sys
import tempfile

from zerodiverse import determinism

determinism.apply("deterministic")

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import orbax.checkpoint as ocp

sys.path.insert(0, os.path.dirname(__file__))
from conftest import tiny_config  # pylint: disable=g-import-not-at-top
from zerodiverse import data, models, parallel, rng  # pylint: disable=g-import-not-at-top
from zerodiverse.run import train_and_evaluate  # pylint: disable=g-import-not-at-top
from zerodiverse.train import optim  # pylint: disable=g-import-not-at-top
from zerodiverse.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
from zerodiverse.train.step import init_state, make_train_step  # pylint: disable=g-import-not-at-top
from zerodiverse import breakers  # pylint: disable=g-import-not-at-top


def max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def one_step_on(devices, config):
  dataset = data.load(config.data)
  stream = data.TrainStream(dataset, config.seed, config.train.batch_size, 0)
  model = models.build(config.model, dataset.num_classes)
  optimizer, lrs = optim.make(config.train), optim.learning_rates(config.train, config.train.steps)
  mesh = parallel.make_mesh(config.parallel, devices)
  key = rng.root_key(0)
  # Jitted (the runs' init is eager; only the 1- and 8-device steps from one state are compared here).
  init = jax.jit(lambda k: init_state(model, optimizer(lrs[0]), stream.batch(0)["image"][:1], k,
                                      breakers.init_noise(config)))
  state = init.lower(key).compile(determinism.fast_compile())(key)
  state = parallel.replicate(state, mesh)
  step = make_train_step(model, optimizer)  # the runs' step: their compiled program is this one
  for s in range(3):
    state, metrics = step(state, parallel.shard_batch(stream.batch(s), mesh, config.train.batch_size), key,
                           parallel.replicate(lrs[s], mesh))
  return parallel.to_host(state), parallel.to_host(metrics), state


def main():
  out = {"devices": jax.device_count()}
  config = tiny_config(**{"model.scheme": "he", "breaker.init_noise": 1e-3, "train.steps": 6})
  one, one_metrics, _ = one_step_on(jax.devices()[:1], config)
  eight, eight_metrics, sharded_state = one_step_on(jax.devices(), config)
  out["step_max_param_diff_1_vs_8"] = max_diff(one["params"], eight["params"])
  out["step_max_batch_stats_diff_1_vs_8"] = max_diff(one["batch_stats"], eight["batch_stats"])
  out["step_loss_1_vs_8"] = [float(one_metrics["loss"]), float(eight_metrics["loss"])]
  leaf = jax.tree.leaves(sharded_state["params"])[0]
  out["params_replicated_on"] = len(leaf.sharding.device_set)

  # Checkpoint saved on 8 devices, restored on 1 and on 8.
  tmp = tempfile.mkdtemp()
  ckpt = Checkpointer(os.path.join(tmp, "ckpt"))
  ckpt.save(3, sharded_state)
  ckpt.close()
  for n in (1, 8):
    mesh = parallel.make_mesh(tiny_config().parallel, jax.devices()[:n])
    like = parallel.replicate(jax.tree.map(np.zeros_like, eight), mesh)
    restored = Checkpointer(os.path.join(tmp, "ckpt")).restore(3, like)
    out[f"restore_on_{n}_bitwise"] = all(np.array_equal(a, b) for a, b in
                                         zip(jax.tree.leaves(parallel.to_host(restored)), jax.tree.leaves(eight)))
    out[f"restore_on_{n}_devices"] = len(jax.tree.leaves(restored["params"])[0].sharding.device_set)

  # Whole runs: two on 8 devices, and a copy of the second resumed on 1 device from step 3 (as if it had
  # been stopped there and moved).
  run = lambda n, d: train_and_evaluate(tiny_config(**{"parallel.num_devices": n, "train.steps": 6,
                                                       "train.checkpoint_every": 3}), d)
  dirs = {name: os.path.join(tmp, name) for name in ("eight_a", "eight_b", "moved")}
  fingerprints = {name: run(8, dirs[name])["param_fingerprint"] for name in ("eight_a", "eight_b")}
  out["fingerprint_8_a"], out["fingerprint_8_b"] = fingerprints["eight_a"], fingerprints["eight_b"]
  shutil.copytree(dirs["eight_b"], dirs["moved"])
  shutil.rmtree(os.path.join(dirs["moved"], "checkpoints", "6"))
  os.remove(os.path.join(dirs["moved"], "summary.json"))
  moved = run(1, dirs["moved"])
  out["moved_resumed_from"] = moved["resumed_from_step"]
  final = lambda d: ocp.StandardCheckpointer().restore(os.path.join(d, "checkpoints", "6", "default"))
  out["moved_vs_8_max_param_diff"] = max_diff(final(dirs["moved"])["state"]["params"],
                                              final(dirs["eight_a"])["state"]["params"])
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main()
