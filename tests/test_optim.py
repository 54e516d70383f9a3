"""The learning rate as an input of the step gives optax's scheduled SGD bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zerodiverse import defaults, rng
from zerodiverse.train import optim


def recipe():
  train = defaults.base().train
  train.lr, train.lr_drop_factor = 0.07, 0.3  # factors that round in float32
  train.lr_drop_at = (0.3, 0.3, 0.7)  # a repeated boundary compounds
  return train


def test_learning_rates_are_the_schedule_evaluated_inside_a_step():
  train = recipe()
  in_step = jax.jit(optim.schedule(train, 50))
  expected = np.array([in_step(jnp.int32(s)) for s in range(50)], np.float32)
  rates = optim.learning_rates(train, 50)
  assert rates.dtype == np.float32 and len(np.unique(rates)) == 3
  np.testing.assert_array_equal(rates, expected)


def test_rate_as_input_updates_like_the_scheduled_optimizer_bitwise():
  train = recipe()
  scheduled = optax.chain(optax.add_decayed_weights(train.weight_decay),
                          optax.sgd(optim.schedule(train, 50), momentum=train.momentum))
  optimizer, rates = optim.make(train), optim.learning_rates(train, 50)
  params = {"w": rng.normal(jax.random.key(0), (8, 8)), "b": jnp.ones(8)}
  a_state, b_state = scheduled.init(params), optimizer(0.0).init(params)
  assert jax.tree.structure(a_state) == jax.tree.structure(b_state)  # checkpoints keep their layout
  a = b = params

  @jax.jit
  def old(p, s, g):
    u, s = scheduled.update(g, s, p)
    return optax.apply_updates(p, u), s

  @jax.jit
  def new(p, s, g, lr):
    u, s = optimizer(lr).update(g, s, p)
    return optax.apply_updates(p, u), s

  for t in range(50):
    grads = jax.tree.map(lambda x: rng.normal(jax.random.fold_in(jax.random.key(1), t), x.shape), params)
    a, a_state = old(a, a_state, grads)
    b, b_state = new(b, b_state, grads, rates[t])
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a["w"], params["w"])
