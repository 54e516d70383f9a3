"""Signal-propagation diagnostics at init, written as JSON + PNG.

  python -m zerodiverse.diagnostics signal --arms constnet:constant,wrn:he --depths 10,16,28 --out DIR
  python -m zerodiverse.diagnostics qchain --widths 4,16,64 --depth 10 --out DIR

signal: for each arm (model:init), depth and BN mode (--modes: train = batch statistics, as in training;
eval = running averages, which at init make BN do nothing), the per-layer forward RMS and backward RMS
(d loss / d output) on a probe batch of N(0, 1) images, and the singular values of the Jacobian of the
penultimate features with respect to one image (exact when the Jacobian has at most --exact_max entries,
else the top --k by a randomized range finder). qchain: Burkholz & Dubatovka's exact law of q per layer for Gaussian ReLU nets,
against mean field and a Monte Carlo sample of real nets.
"""

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


def _model(name, init, depth, width):
  from zerodiverse import defaults, models
  return models.build(ml_collections.ConfigDict({"name": name, "depth": depth, "width": width,
                                                 defaults.init_field(name): init}), 10)


def run_signal(args) -> dict:
  from zerodiverse.diagnostics import signal
  key = jax.random.key(args.seed)
  x = jax.random.normal(jax.random.fold_in(key, 1), (args.probe, args.image_size, args.image_size, 3))
  labels = jnp.arange(args.probe) % 10
  results = []
  for arm in args.arms.split(","):
    name, init = arm.split(":")
    for depth in [int(d) for d in args.depths.split(",")]:
      model = _model(name, init, depth, args.width)
      variables = jax.jit(lambda k: model.init(k, x))(jax.random.fold_in(key, 0))
      for mode in args.modes.split(","):
        start, train = time.time(), mode == "train"
        norms = signal.layer_norms(model, variables, x, labels, train=train)
        f = signal.features_fn(model, variables, x if train else None)
        n_out = f(x[0]).size
        exact = n_out * x[0].size <= args.exact_max
        svals = signal.jacobian_svals(f, x[0], exact=exact, k=args.k, key=jax.random.fold_in(key, 2))
        results.append({"arm": arm, "model": name, "init": init, "depth": depth, "width": args.width,
                        "mode": mode, **norms,
                        "jacobian": {"exact": bool(exact), "shape": [int(n_out), int(x[0].size)],
                                     "singular_values": [float(s) for s in svals], **signal.spread(svals)}})
        print(f"{arm} depth {depth} {mode}: jacobian {results[-1]['jacobian']['max']:.3g}.."
              f"{results[-1]['jacobian']['min']:.3g}, last block RMS {last_block_rms(results[-1]):.3g} "
              f"({time.time() - start:.0f}s)", flush=True)
  return {"args": vars(args), "results": results}


def last_block_rms(result: dict) -> float:
  """The RMS of the last block's output (the residual stream the head reads; the last layer's output for a
  model that sows no stream)."""
  return result["stream_rms"][-1] if result["stream_rms"] else result["forward_rms"][-1]


def plot_signal(out: dict, path: str) -> None:
  """One row per BN mode (train first): per-layer forward RMS, residual-stream RMS per block and backward RMS,
  and the Jacobian spectrum at the deepest depth, and the largest singular value vs depth."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  results = out["results"]
  arms = list(dict.fromkeys(r["arm"] for r in results))
  modes = sorted({r.get("mode", "eval") for r in results}, key=lambda m: m != "train")
  deepest = max(r["depth"] for r in results)
  fig, axes = plt.subplots(len(modes), 5, figsize=(22, 3.6 * len(modes)), squeeze=False)
  for row, mode in zip(axes, modes):
    for i, arm in enumerate(arms):
      color = f"C{i % 10}"
      ls = "-" if i < 10 else "--"
      rs = [r for r in results if r["arm"] == arm and r.get("mode", "eval") == mode]
      deep = max(rs, key=lambda r: r["depth"])
      row[0].semilogy(np.maximum(deep["forward_rms"], 1e-12), color=color, ls=ls, label=f"{arm} (d={deep['depth']})")
      row[1].semilogy(np.maximum(deep.get("stream_rms", []), 1e-12), color=color, ls=ls)
      row[2].semilogy(np.maximum(deep["backward_rms"], 1e-12), color=color, ls=ls)
      row[3].semilogy(np.maximum(deep["jacobian"]["singular_values"], 1e-12), color=color, ls=ls)
      row[4].semilogy([r["depth"] for r in rs], [r["jacobian"]["max"] for r in rs], marker="o", color=color, ls=ls)
    bn = "BN: batch statistics" if mode == "train" else "BN: running averages, identity at init"
    row[0].set(title=f"{mode} mode ({bn}): Conv/Dense output RMS, depth {deepest}", xlabel="layer (call order)")
    row[1].set(title=f"{mode} mode: residual stream RMS (stem, each block)", xlabel="block")
    row[2].set(title=f"{mode} mode: backward RMS d loss / d output", xlabel="layer (call order)")
    row[3].set(title=f"{mode} mode: Jacobian singular values (deepest)", xlabel="index")
    row[4].set(title=f"{mode} mode: largest Jacobian singular value vs depth", xlabel="depth")
    for ax in row:
      ax.title.set_fontsize(8)
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=55)


def run_qchain(args) -> dict:
  from zerodiverse.diagnostics import qchain
  out = {"args": vars(args), "results": []}
  grid = qchain.default_grid(args.q0, args.sw2, args.sb2, args.depth)
  mf = qchain.mean_field(args.q0, args.sw2, args.sb2, args.depth)
  for width in [int(w) for w in args.widths.split(",")]:
    start = time.time()
    cdfs = qchain.exact_cdf(width, args.depth, args.q0, args.sw2, args.sb2, grid)
    mc = qchain.monte_carlo(jax.random.key(args.seed + width), width, args.depth, args.q0, args.sw2, args.sb2,
                            args.samples)
    ks = [qchain.ks_statistic(mc[:, l], grid, cdfs[l]) for l in range(args.depth)]
    out["results"].append({"width": width, "mean_field": mf.tolist(), "ks_exact_vs_mc": ks,
                           "exact_mean": [qchain.mean_of(grid, c) for c in cdfs],
                           "mc_mean": mc.mean(0).tolist(),
                           "exact_p_far_from_mf": [float(1 - np.interp(1.5 * m, grid, c) + np.interp(0.5 * m, grid, c))
                                                   for m, c in zip(mf, cdfs)],
                           "grid": grid[::5].tolist(), "exact_cdf": [c[::5].tolist() for c in cdfs],
                           "mc_quantiles": np.quantile(mc, np.linspace(0, 1, 101), axis=0).T.tolist()})
    print(f"width {width}: max KS {max(ks):.4f} ({time.time() - start:.0f}s)", flush=True)
  out["ks_threshold_alpha_0.001"] = 1.95 / np.sqrt(args.samples)
  return out


def plot_qchain(out: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  results, depth = out["results"], out["args"]["depth"]
  layers = sorted({1, max(1, depth // 2), depth})
  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
  for ax, r in zip(axes[0], results):
    grid = np.asarray(r["grid"])
    for j, layer in enumerate(layers):
      mf = r["mean_field"][layer - 1]
      ax.plot(grid / mf, r["exact_cdf"][layer - 1], color=f"C{j}", label=f"exact, layer {layer}")
      q = np.asarray(r["mc_quantiles"][layer - 1])
      ax.plot(q / mf, np.linspace(0, 1, 101), ".", color=f"C{j}", ms=3, label=f"Monte Carlo, layer {layer}")
    ax.axvline(1.0, color="k", ls="--", label="mean field (point mass)")
    ax.set(xscale="log", xlim=(1e-3, 20), title=f"width {r['width']}: CDF of q_l / q_mf", xlabel="q / q_mean_field")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=80)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m zerodiverse.diagnostics", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  s = sub.add_parser("signal")
  s.add_argument("--arms", default="constnet:constant,constnet:he,wrn:looks_linear,wrn:zero,wrn:fixup,wrn:delta_orthogonal")
  s.add_argument("--depths", default="10,16,28")
  s.add_argument("--width", type=int, default=1)
  s.add_argument("--modes", default="train,eval", help="BN modes: train (batch statistics), eval (running averages)")
  s.add_argument("--image_size", type=int, default=8)
  s.add_argument("--probe", type=int, default=16)
  s.add_argument("--exact_max", type=int, default=200_000)
  s.add_argument("--k", type=int, default=32)
  q = sub.add_parser("qchain")
  q.add_argument("--widths", default="4,16,64")
  q.add_argument("--depth", type=int, default=10)
  q.add_argument("--q0", type=float, default=1.0)
  q.add_argument("--sw2", type=float, default=2.0)
  q.add_argument("--sb2", type=float, default=0.05)
  q.add_argument("--samples", type=int, default=20000)
  for p in (s, q):
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--determinism", default="deterministic", help="or default (XLA left free)")
    p.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  from zerodiverse import determinism
  determinism.apply(args.determinism)
  os.makedirs(args.out, exist_ok=True)
  out = run_signal(args) if args.command == "signal" else run_qchain(args)
  out["command"] = "python -m zerodiverse.diagnostics " + " ".join(sys.argv[1:] if argv is None else argv)
  with open(os.path.join(args.out, f"{args.command}.json"), "w") as f:
    json.dump(out, f, default=float)
  (plot_signal if args.command == "signal" else plot_qchain)(out, os.path.join(args.out, f"{args.command}.png"))


if __name__ == "__main__":
  main()
