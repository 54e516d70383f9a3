"""Pure train and eval steps. A train step is `(state, batch, key, lr) -> (state, metrics)`; every random
choice inside it comes from fold_in(key, step) and a named stream below that."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from zerodiverse import breakers, rng
from zerodiverse.inits import perturb
from zerodiverse.train import optim


def init_state(model: nn.Module, tx: optax.GradientTransformation, example: jax.Array, key: jax.Array,
               init_noise: breakers.InitNoise) -> dict:
  """Parameters from the model's initializers (stream "init"), then the init-noise breaker (stream "init_noise")."""
  variables = model.init({"params": rng.stream(key, "init")}, example, train=False)
  params = perturb(rng.stream(key, "init_noise"), variables["params"], init_noise.eps, init_noise.scale,
                   init_noise.select)
  return {"params": params, "batch_stats": variables.get("batch_stats", {}), "opt_state": tx.init(params),
          "step": jnp.zeros((), jnp.int32)}


def cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def make_train_step(model: nn.Module, optimizer: optim.Optimizer,
                    grad_breakers: breakers.GradBreakers = breakers.GradBreakers()):
  """The jitted step; `optimizer(lr)` is the update rule at this step's learning rate; `grad_breakers`
  perturb the gradients before the optimizer (none: no extra op)."""
  def train_step(state, batch, key, lr):
    step_key = jax.random.fold_in(key, state["step"])
    rngs = {"dropout": rng.stream(step_key, "dropout")}
    if getattr(model, "stem_dropout", 0.0):  # off: no key derived, nothing traced
      rngs["stem_dropout"] = rng.stream(step_key, "stem_dropout")

    def loss_fn(params):
      logits, updates = model.apply({"params": params, "batch_stats": state["batch_stats"]}, batch["image"],
                                    train=True, mutable=["batch_stats"],
                                    rngs=rngs)
      return cross_entropy(logits, batch["label"]).mean(), (logits, updates.get("batch_stats", {}))

    with breakers.reordering(step_key, grad_breakers):
      (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    grads = breakers.apply_to_grads(grads, step_key, grad_breakers)
    updates, opt_state = optimizer(lr).update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.tree.norm(grads)
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
               "grad_norm": grad_norm, "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm)}
    new_state = {"params": params, "batch_stats": batch_stats, "opt_state": opt_state, "step": state["step"] + 1}
    return new_state, metrics

  return jax.jit(train_step, donate_argnums=0)


def make_eval_step(model: nn.Module):
  def eval_step(state, batch):
    logits = model.apply({"params": state["params"], "batch_stats": state["batch_stats"]}, batch["image"],
                         train=False)
    mask = batch["mask"]
    return {"correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) & mask),
            "loss_sum": jnp.sum(jnp.where(mask, cross_entropy(logits, batch["label"]), 0.0)),
            "count": jnp.sum(mask)}

  return jax.jit(eval_step)
