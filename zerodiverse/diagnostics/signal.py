"""Signal propagation of a model at init: per-layer forward and backward norms, input-output Jacobian spectrum.

Every Conv and Dense call is tapped with `nn.intercept_methods`, so any registered model works unchanged:
- forward: the RMS of each layer's output on a probe batch, in train mode (BN normalizes with the batch's
  statistics, as in training) or eval mode (BN uses its running averages, which at init are mean 0 and
  variance 1, so BN then does nothing but divide by sqrt(1 + eps) and a network without normalization is
  what is measured);
- backward: the RMS of d(loss)/d(layer output), cross-entropy on the probe labels (a zero tap is added to
  each output and differentiated), i.e. the backward signal, not the weight gradient;
- Jacobian: of the penultimate features (the input of the Dense named "head") with respect to one input
  image (in train mode: that image inside the probe batch, the others held fixed). Exact (jax.jacfwd + SVD) when small; otherwise the top-k singular values by a randomized range
  finder (Halko, Martinsson & Tropp 2011: J Omega by forward-mode, Q^T J by reverse-mode, SVD of Q^T J).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from zerodiverse import rng


def _path(module) -> str:
  return "/".join(module.scope.path)


def tapped_apply(model, variables, x, taps=None, train: bool = False, sown=None):
  """(logits, {layer: output}, head input) with `taps[layer]` added to each Conv/Dense output; `train`: BN
  uses batch statistics (the updated running averages are dropped); `sown`, a dict, receives the model's
  sown "output" intermediates (the stem's and every block's output: the residual stream)."""
  outputs, head_in = {}, []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name != "__call__" or not isinstance(context.module, (nn.Conv, nn.Dense)):
      return out
    name = _path(context.module)
    if context.module.name == "head":
      head_in.append(args[0])
    if taps is not None:
      out = out + taps[name]
    outputs[name] = out
    return out

  mutable = (["batch_stats"] if train else []) + (["intermediates"] if sown is not None else [])
  with nn.intercept_methods(interceptor):
    logits = model.apply(variables, x, train=train, mutable=mutable) if mutable else model.apply(variables, x, train=False)
  if mutable:
    logits, state = logits
    for path, value in jax.tree_util.tree_flatten_with_path(state.get("intermediates", {}))[0]:
      name = rng.path_name(path)[:-len("/0")]  # sow keeps a tuple per name
      if name.split("/")[-1] == "output":
        sown[name] = value
  return logits, outputs, head_in[0]


def _rms(a) -> jax.Array:
  return jnp.sqrt(jnp.mean(jnp.square(a)))


def layer_norms(model, variables, x, labels, train: bool = False) -> dict:
  """{"layers": [...], "forward_rms": [...], "backward_rms": [...]} in call order, and the RMS of the
  residual stream ({"streams": [...], "stream_rms": [...]}: the sown stem and block outputs), one jitted pass."""
  order, stream_order = [], []

  @jax.jit
  def run(variables, x, labels):
    sown = {}
    _, outputs, _ = tapped_apply(model, variables, x, train=train, sown=sown)
    order[:] = list(outputs)  # a plain dict built while tracing: its keys are in call order
    stream_order[:] = list(sown)

    def loss(taps):
      logits, outs, _ = tapped_apply(model, variables, x, taps, train)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), outs

    grads, outs = jax.grad(loss, has_aux=True)(jax.tree.map(jnp.zeros_like, outputs))
    return jax.tree.map(_rms, outs), jax.tree.map(_rms, grads), jax.tree.map(_rms, sown)

  forward, backward, stream = run(variables, x, labels)
  return {"layers": list(order), "forward_rms": [float(forward[n]) for n in order],
          "backward_rms": [float(backward[n]) for n in order],
          "streams": list(stream_order), "stream_rms": [float(stream[n]) for n in stream_order]}


def features_fn(model, variables, batch=None):
  """image (H, W, C) -> penultimate features (the head's input), flattened. With `batch` (train mode): the
  image takes the place of batch[0], and BN normalizes with the statistics of that whole batch."""
  if batch is None:
    return lambda image: tapped_apply(model, variables, image[None])[2].ravel()
  return lambda image: tapped_apply(model, variables, batch.at[0].set(image), train=True)[2][0].ravel()


def jacobian_svals(f, x, exact: bool = True, k: int = 32, key=None) -> np.ndarray:
  """Singular values (descending) of the Jacobian of f at x: all of them, or the top-k estimate."""
  if exact:  # reverse mode when there are fewer outputs than inputs (one pass per row instead of per column)
    wide = jax.eval_shape(f, x).size < x.size
    jac = jax.jit(jax.jacrev(f) if wide else jax.jacfwd(f))(x)
    return np.linalg.svd(np.asarray(jac, np.float64).reshape(jac.shape[0], -1), compute_uv=False)

  @jax.jit
  def sketch(x, key):
    omega = rng.normal(key, (k,) + x.shape)
    y = jax.vmap(lambda v: jax.jvp(f, (x,), (v,))[1])(omega)          # rows: (J omega_i)^T, shape (k, m)
    q, _ = jnp.linalg.qr(y.T)                                          # (m, k): a basis of J's range
    _, vjp = jax.vjp(f, x)
    return jax.vmap(lambda v: vjp(v)[0].ravel())(q.T)                  # Q^T J, shape (k, n)

  b = sketch(x, key)
  return np.linalg.svd(np.asarray(b, np.float64), compute_uv=False)


def spread(svals: np.ndarray, rtol: float = 1e-6) -> dict:
  """max/min singular value (min over the nonzero ones), and the count of (numerically) zero ones."""
  s = np.asarray(svals)
  nonzero = s[s > rtol * max(s.max(), 1e-30)]
  return {"max": float(s.max()), "min": float(s.min()), "rank_deficit": int(len(s) - len(nonzero)),
          "max_over_min_nonzero": float(nonzero.max() / nonzero.min()) if len(nonzero) else float("nan")}
