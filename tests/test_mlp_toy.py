"""The toy MLP's duplicated units: the function at init does not depend on k, and copies stay bitwise equal."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zerodiverse import determinism, rng
from zerodiverse.models import mlp
from zerodiverse.train.step import make_train_step


def initial_logits(width, k, inputs, draws=2000):
  """The logits of `draws` independently initialized nets on the same inputs, shape (draws, batch, classes)."""
  model = mlp.MLP(num_classes=10, width=width, unique_features=k)
  keys = jax.random.split(jax.random.key(0), draws)
  logits = jax.jit(jax.vmap(lambda key: model.apply(model.init(key, inputs), inputs)))
  return np.asarray(logits.lower(keys).compile(determinism.fast_compile())(keys))  # only the init's distribution matters


def test_initial_logits_spread_does_not_depend_on_the_number_of_unique_features():
  """Unscaled shared head rows would give std ratios sqrt(64 / k): 8 at k = 1, 2 at k = 16 (of 64); measured here
  over 2000 inits, the ratios stay within 10 % of 1 (the estimate's own spread is about 2 %)."""
  inputs = rng.normal(jax.random.key(1), (16, 16))
  distinct = initial_logits(64, 0, inputs).std()
  for k in (1, 3, 16):  # k = 3 leaves groups of unequal size (22, 21, 21)
    assert initial_logits(64, k, inputs).std() / distinct == pytest.approx(1.0, abs=0.1), k


def test_duplicated_units_stay_bitwise_identical_under_exact_sgd():
  width, k = 10, 4  # groups of 3, 3, 2 and 2 copies
  model = mlp.MLP(num_classes=10, width=width, unique_features=k)
  optimizer = lambda lr: optax.sgd(lr, momentum=0.9)
  images = rng.normal(jax.random.key(2), (32, 4, 4, 1))
  params = model.init(jax.random.key(0), images)["params"]
  before = np.asarray(params["hidden"]["kernel"])  # the step donates its input buffers
  state = {"params": params, "batch_stats": {}, "opt_state": optimizer(0.1).init(params),
           "step": jnp.zeros((), jnp.int32)}
  step = make_train_step(model, optimizer)
  for i in range(30):
    batch = {"image": images, "label": (jnp.arange(32) + i) % 10}
    state, metrics = step(state, batch, jax.random.key(3), 0.1)
  assert bool(metrics["finite"])
  hidden, head = (np.asarray(state["params"][n]["kernel"]) for n in ("hidden", "head"))
  bias = np.asarray(state["params"]["hidden"]["bias"])
  unit = np.arange(width) % k
  assert not np.array_equal(hidden, before)  # it trained
  np.testing.assert_array_equal(hidden, hidden[:, unit])  # each copy bitwise equal to its unit
  np.testing.assert_array_equal(head, head[unit])
  np.testing.assert_array_equal(bias, bias[unit])
  assert len({hidden[:, u].tobytes() for u in range(k)}) == k  # and the k units are still distinct
