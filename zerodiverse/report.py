"""A sweep's workdir -> REPORT.md and PNG figures (matplotlib, Agg), written into that workdir.

  python -m zerodiverse.report WORKDIR [--data_note="offline CIFAR-10 rebuild (...)"]

Reads every WORKDIR/<arm>/{config.json, summary.json, metrics.jsonl}. Arms that differ only in their seed
form a group (mean and sample spread over seeds). Figures, each titled with the data it was trained on:
accuracy per group; accuracy and symmetry-breaking step vs eps per breaker (when some breaker has an eps
grid); bitwise and functionally distinct channels, functional spread and activation variance over time per
arm; the authors' -log|corr| (forward, backward, per kernel) and Diversity over time; the LeakyNet grid (when
the runs are leakynet); the toy grid as a heat map (mlp runs over unique_features x init_noise). An arm with
no summary.json is listed as unfinished and left out of the figures.
"""

import argparse
import json
import os
import re
import statistics
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from zerodiverse import breakers, symmetry  # pylint: disable=g-import-not-at-top

SEED = re.compile(r"(^|-)seed\d+(?=-|$)")


def load(workdir: str) -> list:
  """One dict per arm: name, config, summary (or None), symmetry records."""
  arms = []
  for name in sorted(os.listdir(workdir)):
    path = os.path.join(workdir, name)
    if not os.path.isfile(os.path.join(path, "config.json")):
      continue
    with open(os.path.join(path, "config.json")) as f:
      config = json.load(f)
    summary = None
    if os.path.exists(os.path.join(path, "summary.json")):
      with open(os.path.join(path, "summary.json")) as f:
        summary = json.load(f)
    records = []
    if os.path.exists(os.path.join(path, "metrics.jsonl")):
      with open(os.path.join(path, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    arms.append({"name": name, "config": config, "summary": summary,
                 "symmetry": [r for r in records if r["split"] == "symmetry"],
                 "group": SEED.sub("", name).strip("-") or name})
  return arms


def breaker_of(config: dict) -> tuple:
  """(breaker name, eps) of an arm: 'none', or the one breaker switched on (joined with '+' if several)."""
  on = breakers.switched_on(config["breaker"])
  if not on:
    return "none", 0.0
  return "+".join(k for k, _ in on), on[0][1]


def mean_sd(values: list) -> str:
  if not values:
    return ""
  if len(values) == 1:
    return f"{values[0]:.4f}"
  return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def groups(arms: list) -> dict:
  out = {}
  for arm in arms:
    out.setdefault(arm["group"], []).append(arm)
  return out


def data_label(arms: list, note: str) -> str:
  sources = sorted({a["summary"]["data"] for a in arms if a["summary"]})
  text = "; ".join(sources) or "no finished runs"
  return f"{text} — {note}" if note else text


def _save(fig, title: str, data: str, path: str) -> None:
  """Titles the figure with the data it shows (every figure says which data set), writes and closes it."""
  width = max(40, int(fig.get_figwidth() * 13))
  fig.suptitle(textwrap.fill(f"{title}. Data: {data}", width), fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def fig_accuracy(gs: dict, data: str, path: str) -> None:
  names = [g for g, arms in gs.items() if any(a["summary"] for a in arms)]
  fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(names) + 2), 4))
  for i, g in enumerate(names):
    for key, dx, color in (("final_test_accuracy", -0.15, "C0"), ("best_test_accuracy", 0.15, "C1")):
      vals = [a["summary"][key] for a in gs[g] if a["summary"]]
      ax.bar(i + dx, statistics.mean(vals), 0.3, color=color, label=key if i == 0 else None,
             yerr=statistics.stdev(vals) if len(vals) > 1 else 0, capsize=3)
      ax.plot([i + dx] * len(vals), vals, "k.", ms=3)
  ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
  ax.set_ylabel("test accuracy (bar: mean, dot: seed)")
  ax.legend(fontsize=7)
  _save(fig, "Accuracy per arm", data, path)


def _series(arm: dict, fn) -> tuple:
  steps = [r["step"] for r in arm["symmetry"]]
  return steps, [fn(r) for r in arm["symmetry"]]


def _median(layers: dict, metric: str, floor: float = 0.0) -> float:
  return max(statistics.median(m[metric] for m in layers.values()), floor)


def _representations(r: dict) -> dict:
  return {k: m for k, m in r["activations"].items() if "func_spread" in m}


# Panels over training: (title, record -> value, y scale). One figure per list; a new panel is one entry.
SYMMETRY_PANELS = (
    ("bitwise-distinct channels (mean over kernels)",
     lambda r: statistics.mean(m["distinct"] for m in r["layers"].values()), "log"),
    ("functionally distinct channels (mean over layers)",
     lambda r: statistics.mean(m["func_distinct"] for m in _representations(r).values()), "log"),
    (f"functional spread (median over layers; dotted: breaking threshold {symmetry.THRESHOLD:g})",
     lambda r: _median(_representations(r), "func_spread", 1e-12), "log"),
    ("activation variance across channels / mean square (median over sown activations)",
     lambda r: _median(r["activations"], "act_var_rel", 1e-20), "log"),
)
CORRELATION_PANELS = (
    ("-log|corr| between output filters (forward; median over layers)",
     lambda r: _median(r["layers"], "neglog_corr_forward", 1e-8), "log"),
    ("-log|corr| between input-channel slices (backward)",
     lambda r: _median(r["layers"], "neglog_corr_backward", 1e-8), "log"),
    ("-log|corr| between kh x kw kernels", lambda r: _median(r["layers"], "neglog_corr_kernel", 1e-8), "log"),
    ("Diversity: sum over layers of log sqrt(1 - backward^2)", lambda r: r["diversity"], "linear"),
)


def fig_over_time(arms: list, panels: tuple, title: str, data: str, path: str) -> None:
  """One panel per entry of `panels`, one line per arm (colour per group, dashed for later seeds)."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2))
  colors = {}
  for arm in arms:
    if not arm["symmetry"]:
      continue
    color = colors.setdefault(arm["group"], f"C{len(colors) % 10}")
    style = "-" if len(colors) <= 10 else ":"
    first = arm["name"] == next(a["name"] for a in arms if a["group"] == arm["group"])
    for ax, (label, fn, scale) in zip(axes, panels):
      steps, ys = _series(arm, fn)
      ax.plot(steps, ys, color=color, ls=style if first else "--", lw=1, label=arm["group"] if first else None)
      ax.set_yscale(scale)
      ax.set_xlabel("step")
      ax.set_title(textwrap.fill(label, 48), fontsize=8)
  for ax, (label, _, _) in zip(axes, panels):
    if "threshold" in label:
      ax.axhline(symmetry.THRESHOLD, color="k", lw=0.5, ls=":")
  axes[0].legend(fontsize=6)
  _save(fig, f"{title} (one line per seed)", data, path)


def eps_series(arms: list) -> dict:
  """{(init, breaker): [(eps, [arms])]} for breakers run at two or more eps values."""
  out = {}
  for arm in arms:
    if not arm["summary"]:
      continue
    name, eps = breaker_of(arm["config"])
    if name == "none" or "+" in name:
      continue
    out.setdefault((arm["config"]["model"]["init"], name), {}).setdefault(eps, []).append(arm)
  return {k: sorted(v.items()) for k, v in out.items() if len(v) >= 2}


def breaking_step(arm: dict):
  """The median over layers of the symmetry-breaking step (None if no layer broke)."""
  return arm["summary"]["symmetry_breaking"]["median"]


def distinct_step(arm: dict):
  """The median over layers of the first logged step with more than 1 bitwise-distinct channel (None: never)."""
  first = {}
  for r in arm["symmetry"]:
    for layer, m in r["layers"].items():
      first.setdefault(layer, None)
      if first[layer] is None and m["distinct"] > 1:
        first[layer] = r["step"]
  steps = [s for s in first.values() if s is not None]
  return statistics.median(steps) if steps else None


def _step(s) -> str:
  return "never" if s is None else f"{s:g}"


def _breaking(arm: dict) -> str:
  b = arm["summary"]["symmetry_breaking"]
  return f"{_step(b['median'])} / {_step(b['max'])} ({b['never']} of {b['layers']})"


def fig_vs_eps(series: dict, data: str, path: str) -> None:
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
  for (init, name), points in series.items():
    eps = [e for e, _ in points]
    acc = [statistics.mean(a["summary"]["final_test_accuracy"] for a in arms) for _, arms in points]
    a1.plot(eps, acc, "o-", label=f"{init} / {name}")
    never = max(a["summary"]["steps"] for _, arms in points for a in arms)
    steps = [statistics.mean(breaking_step(a) if breaking_step(a) is not None else never for a in arms)
             for _, arms in points]
    a2.plot(eps, steps, "o-", label=f"{init} / {name}")
  for ax, label in ((a1, "final test accuracy (mean over seeds)"),
                    (a2, "symmetry-breaking step (median over layers; top = never)")):
    ax.set_xscale("log")
    ax.set_xlabel("eps")
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
  _save(fig, "Accuracy and symmetry-breaking step vs eps", data, path)


def fig_leakynet(arms: list, data: str, path: str) -> None:
  done = [a for a in arms if a["summary"]]
  inits = sorted({a["config"]["model"]["init"] for a in done}, key=lambda s: (s.count("1"), s))
  kinds = sorted({breaker_of(a["config"])[0] for a in done})
  fig, ax = plt.subplots(figsize=(max(6, len(inits) * 1.1), 4))
  for j, kind in enumerate(kinds):
    for i, init in enumerate(inits):
      vals = [a["summary"]["final_test_accuracy"] for a in done
              if a["config"]["model"]["init"] == init and breaker_of(a["config"])[0] == kind]
      if vals:
        ax.bar(i + (j - (len(kinds) - 1) / 2) * 0.8 / len(kinds), statistics.mean(vals), 0.8 / len(kinds),
               color=f"C{j}", label=kind if i == 0 else None)
  ax.set_xticks(range(len(inits)), inits, rotation=30, ha="right", fontsize=7)
  ax.set_ylabel("final test accuracy (mean over seeds)")
  ax.legend(fontsize=7)
  _save(fig, "LeakyNet grid (more '1' layers to the right)", data, path)


def fig_toy(arms: list, data: str, path: str) -> None:
  done = [a for a in arms if a["summary"]]
  width = done[0]["config"]["model"]["width"]
  ks = sorted({a["config"]["model"]["unique_features"] or width for a in done})
  eps = sorted({a["config"]["breaker"]["init_noise"] for a in done})
  grid = [[float("nan")] * len(eps) for _ in ks]
  for i, k in enumerate(ks):
    for j, e in enumerate(eps):
      vals = [a["summary"]["final_test_accuracy"] for a in done
              if (a["config"]["model"]["unique_features"] or width) == k and a["config"]["breaker"]["init_noise"] == e]
      if vals:
        grid[i][j] = statistics.mean(vals)
  fig, ax = plt.subplots(figsize=(1.2 * len(eps) + 3, 0.6 * len(ks) + 2))
  im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
  for i in range(len(ks)):
    for j in range(len(eps)):
      ax.text(j, i, f"{grid[i][j]:.3f}", ha="center", va="center", color="w", fontsize=8)
  ax.set_xticks(range(len(eps)), [f"{e:g}" for e in eps])
  ax.set_yticks(range(len(ks)), [str(k) for k in ks])
  ax.set_xlabel("init noise eps on the hidden layer")
  ax.set_ylabel("unique hidden features k")
  fig.colorbar(im, label="final test accuracy")
  _save(fig, f"Toy MLP (width {width}): accuracy vs unique features x eps", data, path)


def write(workdir: str, data_note: str = "") -> str:
  """Writes WORKDIR/REPORT.md and its figures; returns the report's path."""
  arms = load(workdir)
  if not arms:
    raise SystemExit(f"error: {workdir} holds no arm folders (WORKDIR/<arm>/config.json); run the sweep first")
  gs = groups(arms)
  data = data_label(arms, data_note)
  done = [a for a in arms if a["summary"]]
  figures = []
  if done:
    fig_accuracy(gs, data, os.path.join(workdir, "accuracy.png"))
    figures.append(("Final and best test accuracy per arm", "accuracy.png"))
    fig_over_time(arms, SYMMETRY_PANELS, "Symmetry over training", data, os.path.join(workdir, "symmetry_over_time.png"))
    figures.append(("Distinct channels, functional spread and activation variance over time", "symmetry_over_time.png"))
    fig_over_time(arms, CORRELATION_PANELS, "The authors' weight correlations and Diversity over training", data,
                  os.path.join(workdir, "correlations_over_time.png"))
    figures.append(("The authors' weight correlations and Diversity over time", "correlations_over_time.png"))
    series = eps_series(arms)
    if series:
      fig_vs_eps(series, data, os.path.join(workdir, "vs_eps.png"))
      figures.append(("Accuracy and symmetry-breaking step vs eps", "vs_eps.png"))
    models = {a["config"]["model"]["name"] for a in done}
    if models == {"leakynet"}:
      fig_leakynet(arms, data, os.path.join(workdir, "leakynet_grid.png"))
      figures.append(("LeakyNet grid", "leakynet_grid.png"))
    if models == {"mlp"}:
      fig_toy(arms, data, os.path.join(workdir, "toy_grid.png"))
      figures.append(("Toy grid: unique features x eps", "toy_grid.png"))

  lines = [f"# Report: {os.path.basename(os.path.abspath(workdir))}", "",
           f"Data: {data}.", f"Arms: {len(arms)} ({len(done)} finished) in {len(gs)} groups (arms that differ "
           "only in the seed). Accuracy: mean ± sample sd over seeds. Breaking step of a layer (the stem, each "
           "block): the first logged step at which its output's channels, each standardized over the probe "
           f"batch, differ by {symmetry.THRESHOLD:g} of their std (zerodiverse/symmetry.py); median and max over "
           "the layers that broke, and how many never did. Functional channels: channels that differ after "
           f"that standardization by more than {symmetry.TOLERANCE:g} (scale, offset and +0/-0 do not count); "
           "bitwise-distinct: first logged step at which a kernel has more than one bitwise-distinct channel. "
           f"Break epoch: the authors' rule (test accuracy above {symmetry.ACCURACY_THRESHOLD:.0%} at more than "
           f"{symmetry.EPOCHS_ABOVE} epoch ends). Diversity: the authors' sum over layers of "
           "log sqrt(1 - backward correlation^2), at the end. Per-seed values are separated by commas.", "",
           "| group | model | init | breaker | eps | seeds | final acc | best acc | bitwise channels (min-max) "
           "| functional channels (min-max) | breaking step median / max (never of layers) "
           "| bitwise-distinct from step (median) | break epoch | Diversity at end | act var rel at end (median) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for g, members in gs.items():
    finished = [a for a in members if a["summary"]]
    cfg = members[0]["config"]
    name, eps = breaker_of(cfg)
    if not finished:
      lines.append(f"| {g} | {cfg['model']['name']} | {cfg['model']['init']} | {name} | {eps:g} | 0 "
                   "| not finished | | | | | | | | |")
      continue
    channels = [c for a in finished for c in a["summary"]["distinct_channels"].values()]
    functional = [c for a in finished for c in a["summary"]["functional_channels"].values()] or [0]
    last = [a["symmetry"][-1] for a in finished if a["symmetry"]]
    diversity = ", ".join(f"{r['diversity']:.1f}" for r in last)
    act_var = ", ".join(f"{_median(r['activations'], 'act_var_rel'):.1e}" for r in last)
    lines.append(
        f"| {g} | {cfg['model']['name']} | {cfg['model']['init']} | {name} | {eps:g} | {len(finished)} "
        f"| {mean_sd([a['summary']['final_test_accuracy'] for a in finished])} "
        f"| {mean_sd([a['summary']['best_test_accuracy'] for a in finished])} "
        f"| {min(channels)}-{max(channels)} | {min(functional)}-{max(functional)} "
        f"| {', '.join(map(_breaking, finished))} "
        f"| {', '.join(_step(s) for s in map(distinct_step, finished))} "
        f"| {', '.join(_step(a['summary']['symmetry_break_epoch']) for a in finished)} "
        f"| {diversity} | {act_var} |")
  lines += ["", "## Arms", "", "| arm | status | final acc | steps | wall s | fingerprint |", "|---|---|---|---|---|---|"]
  for a in arms:
    s = a["summary"]
    lines.append(f"| {a['name']} | finished | {s['final_test_accuracy']:.4f} | {s['steps']} | {s['wall_seconds']:.0f} "
                 f"| {s['param_fingerprint'][:12]} |" if s else f"| {a['name']} | not finished | | | | |")
  for caption, file in figures:
    lines += ["", f"## {caption}", "", f"![{caption}]({file})"]
  path = os.path.join(workdir, "REPORT.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir")
  parser.add_argument("--data_note", default="", help="what the data is, e.g. 'offline CIFAR-10 rebuild'")
  args = parser.parse_args(argv)
  if not os.path.isdir(args.workdir):
    print(f"error: {args.workdir} is not a folder; give a sweep's --workdir", file=sys.stderr)
    return 2
  print(write(args.workdir, args.data_note))
  return 0


if __name__ == "__main__":
  sys.exit(main())
