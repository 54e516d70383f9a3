"""wrn / resnet18 / resnet50 under every applicable initialization: build, train step, identity at init, ZerO."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from zerodiverse import defaults, determinism, models, rng
from zerodiverse.errors import ConfigError
from zerodiverse.models import preact, resnet50
from zerodiverse.run import train_and_evaluate
from zerodiverse.train.metrics_log import MetricsLog
from zerodiverse.train.step import make_train_step

# Tiny shapes: (model, width, image size). resnet50's ImageNet stem divides the image by 4.
SHAPES = {"wrn": (1, 8), "resnet18": (16, 8), "resnet50": (2, 16)}  # (width, image size): resnet18 reuses wrn's conv shapes
NOT_APPLICABLE = {("resnet50", "risotto"), ("resnet50", "delta_orthogonal")}
APPLICABLE = {m: [s for s in preact.SCHEMES if (m, s) not in NOT_APPLICABLE] for m in SHAPES}
# ResNet-50's bottleneck blocks under every scheme, on a short stack of them: an identity-skip block after the
# first stage's projection block, one projection block in each other stage. The schemes set each block by its
# kind, so only the repetition count differs from [3, 4, 6, 3]; the real stack trains under he below, and
# every scheme builds it (test_every_scheme_builds_the_real_resnet50).
SHORT_BOTTLENECK = dataclasses.replace(resnet50.arch(SHAPES["resnet50"][0]), blocks=(2, 1, 1, 1))
CASES = ([(m, s) for m in ("wrn", "resnet18") for s in APPLICABLE[m]] + [("resnet50", "he")]
         + [("short_bottleneck", s) for s in APPLICABLE["resnet50"]])


def fast_jit(fn, *args):
  """fn (jitted or not) compiled with determinism.fast_compile() for `args`: these tests check structure and
  finiteness."""
  fn = fn if hasattr(fn, "lower") else jax.jit(fn)
  return fn.lower(*args).compile(determinism.fast_compile())


def init_vars(model, x, seed=0):
  key = jax.random.key(seed)
  return fast_jit(lambda k: model.init(k, x), key)(key)


def apply_with_intermediates(model, variables, x):
  """model.apply in eval mode, returning (logits, {"intermediates": ...}), compiled with determinism.fast_compile()."""
  fn = lambda v, x_: model.apply(v, x_, mutable=["intermediates"])
  return fast_jit(fn, variables, x)(variables, x)


def model_cfg(name, init, **kw):
  fields = dict(name=name, depth=10, width=SHAPES[name][0], scheme=init)
  fields.update(kw)
  return ml_collections.ConfigDict(fields)


def build(name, init):
  if name == "short_bottleneck":
    return preact.build_arch(model_cfg("resnet50", init), 10, 0.0, SHORT_BOTTLENECK, "resnet50")
  return models.build(model_cfg(name, init), 10)


def batch(name, n=2):
  size = SHAPES["resnet50" if name == "short_bottleneck" else name][1]
  x = rng.normal(jax.random.key(0), (n, size, size, 3))
  return {"image": x, "label": jnp.arange(n) % 10}


@pytest.mark.parametrize("name,init", CASES)
def test_every_model_and_applicable_init_builds_and_trains_one_step(name, init):
  """Init and the runs' train step compiled with determinism.fast_compile(); the persistent cache shares the
  step's program between schemes that leave the forward pass unchanged (he, delta_orthogonal, zero, constant...)."""
  model = build(name, init)
  b = batch(name)
  optimizer = lambda lr: optax.sgd(lr, momentum=0.9)
  variables = init_vars(model, b["image"])
  state = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {}),
           "opt_state": optimizer(0.01).init(variables["params"]), "step": jnp.zeros((), jnp.int32)}
  before = jax.tree.map(np.array, state["params"])  # copies: the step donates the state
  args = (state, b, jax.random.key(1), np.float32(0.01))
  state, metrics = fast_jit(make_train_step(model, optimizer), *args)(*args)
  assert bool(metrics["finite"])
  moved = jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), before, state["params"])
  assert any(jax.tree.leaves(moved))


@pytest.mark.parametrize("init", APPLICABLE["resnet50"])
def test_every_scheme_builds_the_real_resnet50(init):
  """The [3, 4, 6, 3] stack's variables under the scheme, traced (jax.eval_shape: nothing compiled)."""
  model = models.build(model_cfg("resnet50", init), 10)
  shapes = jax.eval_shape(lambda k: model.init(k, batch("resnet50")["image"]), jax.random.key(0))
  blocks = [k for k in shapes["params"] if "_block" in k]
  assert len(blocks) == 16 and {k.split("_")[0] for k in blocks} == {"stage1", "stage2", "stage3", "stage4"}
  assert shapes["params"]["head"]["kernel"].shape == (32 * SHAPES["resnet50"][0], 10)


@pytest.mark.parametrize("name,init", [("resnet50", "risotto"), ("resnet50", "delta_orthogonal")])
def test_inapplicable_inits_fail_with_a_config_error(name, init):
  with pytest.raises(ConfigError, match="config.model.scheme"):
    models.build(model_cfg(name, init), 10)


def test_looks_linear_refuses_odd_widths():
  with pytest.raises(ConfigError, match="even"):
    models.build(ml_collections.ConfigDict(dict(name="resnet18", depth=18, width=3, scheme="looks_linear")), 10)
  with pytest.raises(ConfigError, match="config.model.scheme"):
    models.build(model_cfg("wrn", "xavier"), 10)


@pytest.mark.parametrize("init", ["skipinit", "rezero", "fixup", "zero", "constant"])
def test_branches_are_zero_so_each_block_computes_its_skip_at_init(init):
  model = models.build(model_cfg("wrn", init), 10)
  x = batch("wrn")["image"]
  variables = init_vars(model, x)
  _, state = model.apply(variables, x, mutable=["intermediates"])  # eager: its ops are shared by the schemes
  inter = state["intermediates"]
  blocks = [k for k in inter if "_block" in k]
  assert len(blocks) == 3
  for name in blocks:  # out = skip + 0: every block computes its skip
    np.testing.assert_array_equal(inter[name]["residual"][0], 0.0)
  # stage1_block0 has the identity skip (16 -> 16 channels, stride 1): it returns the stem's output, bitwise
  np.testing.assert_array_equal(inter["stage1_block0"]["output"][0], inter["output"][0])


def test_risotto_wrn_block_is_an_isometry_at_init():
  """A stride-1 widening block of the real model (BN in eval mode at init: factor 1/sqrt(1 + 1e-5))."""
  model = models.build(model_cfg("wrn", "risotto", width=2), 10)  # 16 -> 32 channels in stage 1
  x = rng.normal(jax.random.key(0), (1, 2, 2, 3))
  variables = init_vars(model, x)
  block = preact.Block(32, 1, False, model.opts)
  bvars = {"params": variables["params"]["stage1_block0"],
           "batch_stats": variables["batch_stats"]["stage1_block0"]}

  def f(y):  # y: the 8 free channels of the mirrored 16-channel state, on a 2x2 image
    state = jnp.concatenate([y, -y], axis=-1)
    return block.apply(bvars, state, train=False)[..., :16]

  y = rng.normal(jax.random.key(1), (1, 2, 2, 8))
  full = lambda y_: block.apply(bvars, jnp.concatenate([y_, -y_], -1), train=False)
  out = fast_jit(full, y)(y)
  np.testing.assert_allclose(out[..., :16], -out[..., 16:], atol=1e-5)
  jac = fast_jit(jax.jacfwd(f), y)(y).reshape(2 * 2 * 16, 2 * 2 * 8)
  sv = np.linalg.svd(np.asarray(jac), compute_uv=False)
  np.testing.assert_allclose(sv, 1.0, atol=1e-4)  # 1e-4: two eval-mode BNs scale the branch by 1 - 1e-5


def test_zero_init_is_deterministic_and_trains_without_a_breaker(tmp_path):
  model = models.build(model_cfg("wrn", "zero"), 10)
  x = batch("wrn")["image"]
  a, b = init_vars(model, x, 0), init_vars(model, x, 123)
  jax.tree.map(np.testing.assert_array_equal, a, b)  # no randomness at all

  config = defaults.base()
  config.determinism = "nondeterministic_allowed"  # the backend is already up in this process; XLA flags cannot change now
  config.model.update(name="wrn", depth=10, width=1, scheme="zero")
  config.data.update(name="digits", augment=False)
  config.train.update(epochs=0.0, steps=60, batch_size=64, lr=0.05, lr_drop_at=(0.75,), log_every=10,
                      eval_every=60, eval_batch_size=360, checkpoint_every=60, progress=False)
  summary = train_and_evaluate(config, str(tmp_path))
  train = [r["loss"] for r in MetricsLog(str(tmp_path / "metrics.jsonl")).records() if r["split"] == "train"]
  print(summary["final_test_accuracy"], train[0], train[-1], summary["distinct_channels"])
  assert train[-1] < 0.5 * train[0]  # log(10) = 2.3 at the start
  assert summary["final_test_accuracy"] > 0.8
  assert max(summary["distinct_channels"].values()) > 1


@pytest.mark.parametrize("name", ["wrn", "resnet50"])
def test_constant_scheme_gives_identical_features_and_zero_logits(name):
  from zerodiverse.symmetry import distinct_channels, distinct_slices  # pylint: disable=g-import-not-at-top
  model = models.build(model_cfg(name, "constant"), 10)
  x = batch(name)["image"]
  variables = init_vars(model, x)
  logits, state = apply_with_intermediates(model, variables, x)
  assert not np.asarray(logits).any()
  assert set(distinct_channels(variables["params"]).values()) == {1}
  outputs = [v["output"][0] for k, v in state["intermediates"].items() if "_block" in k]
  assert outputs and all(distinct_slices(o, -1) == 1 for o in outputs)
  assert all(not np.asarray(v["residual"][0]).any() for k, v in state["intermediates"].items() if "_block" in k)
