"""The PyTorch twin against the JAX side: same numbers in, same logits, gradients and loss curves out.

Tolerance (float32): logits, gradients and BN statistics agree elementwise within rtol 1e-4, atol 1e-6
(measured differences are around 1e-7: the two frameworks sum in different orders); for gradients atol
grows to 1e-5 of the leaf's largest entry, since a 13-layer plain LeakyNet carries summation-order
differences of up to ~7e-6 of it to entries that cancel to near 0; loss curves over 20 steps within rtol
1e-4. Parameter conversion is exact (bitwise).
"""

import functools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from zerodiverse import determinism

determinism.apply("deterministic")  # before any JAX computation (at collection), as launch.py does it

from zerodiverse import breakers, data, defaults, models, record, rng, run  # pylint: disable=g-import-not-at-top
from zerodiverse.errors import WorkdirError  # pylint: disable=g-import-not-at-top
from zerodiverse.torch_baseline import checkpoint as torch_checkpoint
from zerodiverse.torch_baseline import convert
from zerodiverse.torch_baseline import determinism as torch_determinism
from zerodiverse.torch_baseline import models as torch_models
from zerodiverse.torch_baseline import trainer as torch_trainer
from zerodiverse.train import optim
from zerodiverse.train.step import cross_entropy, init_state

RTOL, ATOL = 1e-4, 1e-6
LEAF_ATOL = 1e-5  # gradients: atol is the larger of ATOL and this share of the leaf's largest entry
# One intra-op thread: on 2 cores shared with other test workers, torch's spinning OpenMP threads make
# small CPU steps up to 100x slower (measured: 1.5 s vs 17 ms per WRN-7-1 step under load).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def restore_torch_flags():
  yield
  torch_determinism.apply("nondeterministic_allowed")  # leave torch's process-global flags as other tests expect them
  torch.backends.cudnn.benchmark = False


def small_config(name="constnet", init="constant", noise=0.0, depth=7, **model):
  config = defaults.base()
  config.model.name, config.breaker.init_noise = name, noise
  config.model[defaults.init_field(name)] = init
  config.model.depth, config.model.width = depth, 1
  config.model.update(model)
  if name == "mlp":
    config.model.width, config.model.hidden_init = 32, "he_normal"
  return config


def synthetic_batch(n=8, size=16, channels=3):
  gen = np.random.default_rng(0)
  return {"image": gen.normal(size=(n, size, size, channels)).astype(np.float32),
          "label": gen.integers(0, 10, size=n).astype(np.int32)}


@functools.lru_cache(maxsize=None)
def jax_grad_fn(model_items: tuple, train: bool):
  """One compiled (params, batch_stats, images, labels) -> (logits, stats, grads) per architecture
  (config.model's items): a ConstNet/MLP init scheme does not change `apply`, so it is left out of the key;
  a LeakyNet code does."""
  items = dict(model_items)
  config = small_config(items["name"])
  config.model.update(items)
  model = models.build(config.model, 10)

  def loss_fn(params, batch_stats, images, labels):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, images, train=train,
                                  mutable=["batch_stats"])
    return cross_entropy(logits, labels).mean(), (logits, updates.get("batch_stats", {}))

  # Compared within tolerances: XLA's cheapest compile suffices.
  return jax.jit(jax.value_and_grad(loss_fn, has_aux=True), compiler_options=determinism.fast_compile())


def both_sides(config, batch, train=True):
  """(JAX logits, grads, batch_stats), (torch logits, grads, batch_stats) from the same initial numbers."""
  model = models.build(config.model, 10)
  state = init_state(model, optim.make(config.train)(config.train.lr), jnp.asarray(batch["image"][:1]),
                     rng.root_key(config.seed), breakers.init_noise(config))
  params = jax.device_get(state["params"])
  if "head" in params and not np.any(params["head"]["kernel"]):  # ConstNet's zero head: make logits nonzero
    params["head"]["kernel"] = np.asarray(
        rng.normal(jax.random.key(1), params["head"]["kernel"].shape)) * 0.1
  structure = tuple(sorted((k, v) for k, v in config.model.items()
                            if k != defaults.init_field(config.model.name) or config.model.name == "leakynet"))
  (_, (logits, stats)), grads = jax_grad_fn(structure, train)(params, state["batch_stats"], batch["image"],
                                                              batch["label"])
  twin = torch_models.build(config.model, 10, batch["image"].shape[1:])
  convert.load_flax(twin, params, jax.device_get(state["batch_stats"]))
  twin.train(train)
  images, labels = torch_trainer.to_torch(batch, "cpu")
  t_logits = twin(images)
  F.cross_entropy(t_logits, labels).backward()
  _, t_stats = convert.to_flax(twin)
  return ((np.asarray(logits), jax.device_get(grads), jax.device_get(stats)),
          (t_logits.detach().numpy(), convert.grads_to_flax(twin), t_stats), params)


def assert_trees_close(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    atol = max(ATOL, LEAF_ATOL * float(np.abs(y).max()))
    np.testing.assert_allclose(np.asarray(x), y, rtol=RTOL, atol=atol, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name,init,noise,model", [
    ("constnet", "constant", 0.0, {}), ("constnet", "he", 0.0, {}), ("constnet", "he", 0.0, {"shortcut_input": "bn"}),
    ("constnet", "constant", 1e-2, {}), ("constnet", "random_residual", 0.0, {"bn_group_size": 4, "bn_decay": 0.81}),
    ("mlp", "he_normal", 0.0, {}),
    ("leakynet", "1_iiii_11ii_iiii", 0.0, {"depth": 16}), ("leakynet", "h_hhhh_hhhh_hhhh", 0.0, {"depth": 16}),
    ("leakynet", "k_kx_1i_hx", 0.0, {"depth": 10, "bn_group_size": 4})])
def test_logits_and_gradients_match_jax(name, init, noise, model):
  (logits, grads, stats), (t_logits, t_grads, t_stats), _ = both_sides(small_config(name, init, noise, **model),
                                                                       synthetic_batch())
  assert np.abs(logits).max() > 0.01  # a real comparison, not 0 == 0
  np.testing.assert_allclose(logits, t_logits, rtol=RTOL, atol=ATOL)
  assert_trees_close(grads, t_grads)
  # BN running means match; running variances differ by torch's unbiased n / (n - 1), n = batch * H * W.
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(stats)[0], jax.tree.leaves(t_stats)):
    if path[-1].key == "mean":
      np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


def test_eval_mode_logits_match_jax():
  (logits, _, _), (t_logits, _, _), _ = both_sides(small_config("constnet", "he"), synthetic_batch(), train=False)
  np.testing.assert_allclose(logits, t_logits, rtol=RTOL, atol=ATOL)


def test_conversion_is_exact_both_ways():
  config = small_config("constnet", "he")
  batch = synthetic_batch()
  *_, params = both_sides(config, batch)
  twin = torch_models.build(config.model, 10, batch["image"].shape[1:])
  convert.load_flax(twin, params)
  back, _ = convert.to_flax(twin)
  assert record.param_fingerprint(back) == record.param_fingerprint(params)
  assert twin.stem.weight.shape == (16, 3, 3, 3)  # (out, in, kh, kw) from Flax (kh, kw, in, out)
  np.testing.assert_array_equal(twin.stem.weight.detach().numpy()[5, 2], params["stem"]["kernel"][:, :, 2, 5])


def test_schedule_matches_optax():
  train = defaults.base().train
  train.lr_drop_at = (0.3, 0.3, 0.7)  # a repeated boundary compounds, as in optim.schedule
  reference = optim.schedule(train, 50)
  factor = torch_trainer.lr_factor(train, 50)
  np.testing.assert_allclose([train.lr * factor(s) for s in range(50)],
                             [float(reference(s)) for s in range(50)], rtol=1e-6)


def run_config(backend, mode="deterministic"):
  config = small_config(depth=10)
  config.backend, config.determinism = backend, mode
  config.data.name, config.data.augment = "digits", False
  config.train.epochs, config.train.steps, config.train.batch_size = 0.0, 20, 32
  config.train.lr_drop_at = (0.5,)
  config.train.log_every, config.train.eval_every, config.train.checkpoint_every = 1, 20, 10
  config.train.eval_batch_size, config.train.progress = 400, False
  return config


@pytest.fixture(scope="module")
def twenty_steps(tmp_path_factory):
  """20 steps of ConstNet (constant, no breaker) on digits, once per backend, same data and recipe."""
  root = tmp_path_factory.mktemp("twin")
  jax_summary = run.train_and_evaluate(run_config("jax"), str(root / "jax"))
  torch_summary = run.train_and_evaluate(run_config("torch"), str(root / "torch"))
  return root, jax_summary, torch_summary


def records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_twenty_steps_loss_curves_agree(twenty_steps):
  root, _, _ = twenty_steps
  jax_log, torch_log = records(root / "jax"), records(root / "torch")
  assert [sorted(r) for r in jax_log] == [sorted(r) for r in torch_log]  # the same metrics, the same keys
  jax_loss = [r["loss"] for r in jax_log if r["split"] == "train"]
  torch_loss = [r["loss"] for r in torch_log if r["split"] == "train"]
  assert len(jax_loss) == 20 and jax_loss[0] > jax_loss[-1]  # it trains
  np.testing.assert_allclose(torch_loss, jax_loss, rtol=RTOL)
  np.testing.assert_allclose([r["lr"] for r in torch_log if "lr" in r], [r["lr"] for r in jax_log if "lr" in r],
                             rtol=1e-6)


def test_torch_constnet_on_cpu_stays_symmetric(twenty_steps):
  _, jax_summary, torch_summary = twenty_steps
  assert set(torch_summary["distinct_channels"].values()) == {1}
  assert torch_summary["distinct_channels"] == jax_summary["distinct_channels"]
  assert set(torch_summary) == set(jax_summary) | {"backend"}
  assert torch_summary["determinism"]["use_deterministic_algorithms"] is True
  assert torch_summary["determinism"]["cudnn_allow_tf32"] is False


def test_checkpoints_load_with_weights_only_and_resume_bitwise(twenty_steps):
  root, _, torch_summary = twenty_steps
  ckpt = torch_checkpoint.Checkpointer(str(root / "torch" / "checkpoints"))
  assert ckpt.steps() == [10, 20]
  saved = torch.load(ckpt.path(20), weights_only=True)
  assert saved["step"] == 20 and "stem.weight" in saved["model"] and saved["optimizer"]["state"]
  # Interrupt after step 10: drop what came later, then the same command resumes and ends bitwise equal.
  os.remove(ckpt.path(20))
  os.remove(root / "torch" / "summary.json")
  resumed = run.train_and_evaluate(run_config("torch"), str(root / "torch"))
  assert resumed["resumed_from_step"] == 10
  assert resumed["param_fingerprint"] == torch_summary["param_fingerprint"]
  assert len([r for r in records(root / "torch") if r["split"] == "train"]) == 20


def test_damaged_latest_torch_checkpoint_restores_the_newest_intact_step(twenty_steps, tmp_path, capsys):
  root, _, _ = twenty_steps
  shutil.copytree(root / "torch" / "checkpoints", tmp_path / "checkpoints")
  ckpts = torch_checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
  newest = ckpts.steps()[-1]
  with open(ckpts.path(newest), "r+b") as f:  # a kill or a full disk mid-write
    f.truncate(os.path.getsize(ckpts.path(newest)) // 2)
  config = run_config("torch")
  dataset = data.load(config.data)
  stream = dataset.train_stream(config.seed, config.train.batch_size, config.data)
  backend = torch_trainer.TorchBackend(config, dataset, stream, 20)
  ckpts, step, _ = run.restore_latest(backend, ckpts, str(tmp_path))
  assert step == ckpts.steps()[-1] < newest and os.path.exists(tmp_path / "damaged_checkpoints" / f"step_{newest}.pt")
  lines = [l for l in capsys.readouterr().err.splitlines() if "damaged" in l]
  assert len(lines) == 1 and f"resuming from step {step}" in lines[0]
  with open(ckpts.path(step), "wb") as f:
    f.write(b"garbled")
  with pytest.raises(WorkdirError, match="no intact checkpoint"):
    run.restore_latest(backend, ckpts, str(tmp_path))


def test_unknown_backend_is_a_config_error():
  from zerodiverse import backends  # pylint: disable=g-import-not-at-top
  from zerodiverse.errors import ConfigError  # pylint: disable=g-import-not-at-top
  config = small_config()
  config.backend = "tf"
  with pytest.raises(ConfigError, match="config.backend"):
    backends.check(config)
  assert backends.check(run_config("torch")) == "torch"


@pytest.mark.parametrize("field,value", [("breaker.grad_noise", 1e-3), ("breaker.rounding_noise", True),
                                         ("data.name", "imagenet2012")])
def test_torch_backend_refuses_what_it_cannot_mean_the_same(field, value):
  from zerodiverse import backends  # pylint: disable=g-import-not-at-top
  from zerodiverse.errors import ConfigError  # pylint: disable=g-import-not-at-top
  config = run_config("torch")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=f"config.{section}"):
    backends.check(config)
