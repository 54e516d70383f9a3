"""Breakers: off means the foundation's run bit for bit; each draws from its own keys; rounding noise breaks
a tiny ConstNet's symmetry."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodiverse import breakers, defaults, models, rng
from zerodiverse.data import TrainStream, load
from zerodiverse.errors import ConfigError
from zerodiverse.train import optim, step as step_lib, trainer

def tiny(init="constant", **breaker):
  c = defaults.base()
  c.model.depth, c.model.width, c.model.init = 7, 1, init
  c.data.name, c.data.augment = "digits", False
  c.train.epochs, c.train.steps, c.train.batch_size, c.train.lr = 0.0, 12, 32, 0.05
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 6
  c.train.eval_batch_size, c.train.progress = 360, False
  for k, v in breaker.items():
    c.breaker[k] = v
  return c


def without_breaker_code(monkeypatch):
  """Bypasses every breaker hook of the JAX step: init noise is never applied and the gradients go straight
  to the optimizer, i.e. the step as it was before any breaker code existed."""
  monkeypatch.setattr(step_lib, "perturb", lambda key, params, *args, **kwargs: params)
  monkeypatch.setattr(breakers, "apply_to_grads", lambda grads, *args, **kwargs: grads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  out = {}
  for name, cfg in {"constant": tiny(), "he": tiny("he"), "zero_eps": tiny(grad_noise=0.0, rounding_noise=False),
                    "rounding": tiny(rounding_noise=True)}.items():
    out[name] = trainer.train_and_evaluate(cfg, str(tmp_path_factory.mktemp(name)))
  with pytest.MonkeyPatch.context() as mp:  # the same configs, in this process, with the hooks bypassed
    without_breaker_code(mp)
    for name, cfg in {"bare_constant": tiny(), "bare_he": tiny("he")}.items():
      out[name] = trainer.train_and_evaluate(cfg, str(tmp_path_factory.mktemp(name)))
  return out


def test_breakers_off_is_the_foundation_bitwise(runs):
  # Fingerprints depend on the CPU and library versions, so the reference is a run made here, in this
  # session, with every breaker hook bypassed; the breaker code must not change a bit when it is off.
  assert runs["constant"]["param_fingerprint"] == runs["bare_constant"]["param_fingerprint"]
  assert runs["he"]["param_fingerprint"] == runs["bare_he"]["param_fingerprint"]
  assert runs["zero_eps"]["param_fingerprint"] == runs["bare_constant"]["param_fingerprint"]
  assert runs["constant"]["param_fingerprint"] != runs["he"]["param_fingerprint"]  # the check can fail


def test_rounding_noise_breaks_a_tiny_constnet_and_off_keeps_one_channel(runs):
  assert set(runs["constant"]["distinct_channels"].values()) == {1}
  broken = runs["rounding"]["distinct_channels"]
  # Within 12 steps the stem, the first residual conv and the head's input rows are all bitwise distinct.
  assert broken["stem"] == 16 and broken["stage1_block0/conv"] == 16 and broken["head"] == 64, broken
  assert runs["rounding"]["param_fingerprint"] != runs["bare_constant"]["param_fingerprint"]


def trace(grad_breakers):
  cfg = tiny()
  model = models.build(cfg.model, 10)
  tx = optim.make(cfg.train, 12)
  state = step_lib.init_state(model, tx, jnp.zeros((1, 8, 8, 1)), rng.root_key(0), breakers.init_noise(cfg))
  batch = {"image": jnp.zeros((4, 8, 8, 1)), "label": jnp.zeros((4,), jnp.int32)}
  fn = step_lib.make_train_step(model, tx, grad_breakers)
  return str(jax.make_jaxpr(fn)(state, batch, rng.root_key(1)))


def test_breakers_off_add_no_operation():
  off = trace(breakers.GradBreakers())
  assert off == trace(breakers.grad_breakers(tiny(grad_noise=0.0)))
  assert "random_bits" not in off and "threefry" not in off
  assert "random_bits" in trace(breakers.GradBreakers(rounding_noise=2.0 ** -24))


def test_each_grad_breaker_draws_from_its_own_stream():
  grads = {"a": {"kernel": jnp.ones((3, 4))}, "b": {"bias": jnp.full((4,), 2.0)}}
  key = jax.random.key(7)
  both = breakers.apply_to_grads(grads, key, breakers.GradBreakers(1e-3, 2.0 ** -10))
  noise_only = breakers.add_grad_noise(rng.stream(key, "grad_noise"), grads, 1e-3)
  composed = breakers.add_rounding_noise(rng.stream(key, "rounding_noise"), noise_only, 2.0 ** -10)
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(x, y), both, composed)
  # The factors are 1 + u r with u spread over [-1, 1] (not all the same), different per element.
  f = np.asarray(breakers.rounding_factors(key, grads, 2.0 ** -10)["a"]["kernel"])
  assert len(np.unique(f)) == f.size and np.all(np.abs(f - 1) <= 2.0 ** -10)


def test_switching_a_breaker_on_leaves_init_data_and_dropout_alone():
  base = tiny(dropout=0.2)
  noisy = tiny(dropout=0.2, rounding_noise=True, grad_noise=1e-3)
  ds = load(base.data)
  batch = TrainStream(ds, base.seed, base.train.batch_size).batch(0)
  out = []
  for cfg in (base, noisy):
    model = models.build(cfg.model, ds.num_classes, cfg.breaker.dropout)
    tx = optim.make(cfg.train, 12)
    state = step_lib.init_state(model, tx, jnp.asarray(batch["image"][:1]), rng.root_key(cfg.seed),
                                breakers.init_noise(cfg))
    init = jax.device_get(state["params"])
    new, metrics = step_lib.make_train_step(model, tx, breakers.grad_breakers(cfg))(
        state, batch, rng.stream(rng.root_key(cfg.seed), "step"))
    out.append((init, float(metrics["loss"]), jax.device_get(new["params"])))
  (init0, loss0, new0), (init1, loss1, new1) = out
  jax.tree_util.tree_map(np.testing.assert_array_equal, init0, init1)  # same init
  assert loss0 == loss1  # the first loss sees the same data and the same dropout mask, bit for bit
  assert not np.array_equal(new0["stem"]["kernel"], new1["stem"]["kernel"])  # the breakers did act


def test_bad_breaker_settings_name_the_field():
  with pytest.raises(ConfigError, match="config.breaker.grad_noise"):
    breakers.grad_breakers(tiny(grad_noise=-1.0))
  with pytest.raises(ConfigError, match="rounding_noise_scale"):
    breakers.grad_breakers(tiny(rounding_noise=True, rounding_noise_scale=2.0))
