"""A sweep's workdir -> REPORT.md and PNG figures (matplotlib, Agg), written into that workdir.

  python -m zerodiverse.report WORKDIR [--data_note="offline CIFAR-10 rebuild (...)"]

Reads every WORKDIR/<arm>/{config.json, summary.json, metrics.jsonl}. Arms that differ only in their seed
form a group (mean and sample spread over seeds). An arm with no summary.json is listed as unfinished and
left out of the figures.

Figures come from the registry FIGURES: a new figure is one function `draw(sweep, path)` and one entry
`Figure(file, caption, draw, applies)`, where `applies(sweep)` says whether the sweep has what the figure
needs. Every figure is titled with the data its runs were trained on (`_save`).
"""

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import textwrap
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as patheffects  # pylint: disable=g-import-not-at-top
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from zerodiverse import breakers, defaults, symmetry  # pylint: disable=g-import-not-at-top

SEED = re.compile(r"(^|-)seed\d+(?=-|$)")


def load(workdir: str) -> list:
  """One dict per arm: name, config, summary (or None), train and symmetry records."""
  arms = []
  for name in sorted(os.listdir(workdir), key=natural):
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
                 "train": [r for r in records if r["split"] == "train"],
                 "test": [r for r in records if r["split"] == "test"],
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


def train_loss(arm: dict):
  """The last logged train loss (mean mini-batch loss over the last log_every steps); None if none logged."""
  return arm["train"][-1]["loss"] if arm["train"] else None


def dead_units(arm: dict):
  """Channels that never fire on the probe batch at the last symmetry record, summed over the sown
  activations; None where the records predate the count."""
  if not arm["symmetry"]:
    return None
  counts = [m["dead"] for m in arm["symmetry"][-1]["activations"].values() if "dead" in m]
  return int(sum(counts)) if counts else None


def groups(arms: list) -> dict:
  out = {}
  for arm in arms:
    out.setdefault(arm["group"], []).append(arm)
  return out


def data_label(arms: list, note: str) -> str:
  sources = sorted({a["summary"]["data"] for a in arms if a["summary"]})
  text = "; ".join(sources) or "no finished runs"
  return f"{text} — {note}" if note else text


@dataclasses.dataclass(frozen=True)
class Sweep:
  """What every figure draws from: all arms, the finished ones, the seed groups and the data label."""
  arms: list
  done: list
  groups: dict
  data: str

  @property
  def models(self) -> set:
    return {a["config"]["model"]["name"] for a in self.done}


def save_figure(fig, title: str, data: str, path: str) -> None:
  """Titles the figure with the data it shows (every figure says which data set), writes and closes it."""
  width = max(40, int(fig.get_figwidth() * 13))
  fig.suptitle(textwrap.fill(f"{title}. Data: {data}", width), fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def fig_accuracy(sweep: Sweep, path: str) -> None:
  gs = sweep.groups
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
  save_figure(fig, "Accuracy per arm", sweep.data, path)


def reference(sweep: Sweep):
  """The group the others are compared with: the one He-initialized group with no breaker, or None."""
  he = [g for g, arms in sweep.groups.items()
        if arms[0]["config"]["model"].get("scheme") == "he" and breaker_of(arms[0]["config"])[0] == "none"]
  return he[0] if len(he) == 1 else None


def steps_per_epoch(sweep: Sweep):
  """From any finished arm's summary (None if none has finished)."""
  for a in sweep.done:
    if a["summary"].get("epochs"):
      return a["summary"]["steps"] / a["summary"]["epochs"]
  return None


def accuracy_gaps(sweep: Sweep) -> dict:
  """{group: {step: [test accuracy - the reference group's mean at that step, per seed]}}, for finished and
  unfinished arms alike, at the steps where every reference arm has been evaluated."""
  ref = reference(sweep)
  if ref is None:
    return {}
  curves = [{r["step"]: r["accuracy"] for r in a["test"]} for a in sweep.groups[ref]]
  base = {s: statistics.mean(c[s] for c in curves) for s in set.intersection(*(set(c) for c in curves))}
  out = {}
  for g, arms in sweep.groups.items():
    if g == ref:
      continue
    per_step = {}
    for a in arms:
      for r in a["test"]:
        if r["step"] in base:
          per_step.setdefault(r["step"], []).append(r["accuracy"] - base[r["step"]])
    if per_step:
      out[g] = dict(sorted(per_step.items()))
  return out


def fig_gap(sweep: Sweep, path: str) -> None:
  spe = steps_per_epoch(sweep) or 1
  fig, ax = plt.subplots(figsize=(7, 4))
  for i, (g, per_step) in enumerate(accuracy_gaps(sweep).items()):
    xs = [s / spe for s in per_step]
    _mean_sd_plot(ax, xs, [[100 * v for v in vals] for vals in per_step.values()], label=g, **line_style(i))
  ax.axhline(0, color="k", lw=0.8)
  ax.set_xlabel("epoch" if spe != 1 else "step")
  ax.set_ylabel(f"test accuracy - {reference(sweep)} (points)")
  ax.legend(fontsize=7)
  save_figure(fig, f"Gap to {reference(sweep)} over training (mean ± sd over seeds)", sweep.data, path)


def gap_table(sweep: Sweep) -> list:
  """REPORT.md lines: the gap to the reference at each evaluation, in points, mean ± sd over seeds."""
  gaps = accuracy_gaps(sweep)
  if not gaps:
    return []
  spe = steps_per_epoch(sweep)
  steps = sorted({s for per_step in gaps.values() for s in per_step})
  head = [f"{s / spe:g}" if spe else str(s) for s in steps]
  lines = ["", f"## Gap to {reference(sweep)}", "",
           f"Test accuracy minus the {reference(sweep)} group's mean at the same {'epoch' if spe else 'step'}, in "
           "points; mean ± sd over seeds (one value: one seed).", "",
           f"| group | {' | '.join(head)} |", "|---" * (len(steps) + 1) + "|"]
  for g, per_step in gaps.items():
    cells = []
    for s in steps:
      v = [100 * x for x in per_step.get(s, [])]
      cells.append("" if not v else f"{v[0]:+.1f}" if len(v) == 1 else
                   f"{statistics.mean(v):+.1f} ± {statistics.stdev(v):.1f}")
    lines.append(f"| {g} | {' | '.join(cells)} |")
  return lines


LINESTYLES = ("-", "--", ":", "-.")


def line_style(i: int) -> dict:
  """The i-th of 40 distinct (colour, line style) pairs: the 10 default colours, then again in the next style."""
  return {"color": f"C{i % 10}", "ls": LINESTYLES[(i // 10) % len(LINESTYLES)]}


def natural(text: str) -> list:
  """A sort key that orders the numbers inside names by value: k4 before k16."""
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


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


def fig_over_time(sweep: Sweep, panels: tuple, title: str, path: str) -> None:
  """One panel per entry of `panels`, one line per arm (a colour and line style per group)."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2))
  styles = {}
  for arm in sweep.arms:
    if not arm["symmetry"]:
      continue
    first = arm["group"] not in styles
    style = styles.setdefault(arm["group"], line_style(len(styles)))
    for ax, (label, fn, scale) in zip(axes, panels):
      steps, ys = _series(arm, fn)
      ax.plot(steps, ys, lw=1, label=arm["group"] if first else None, **style)
      ax.set_yscale(scale)
      ax.set_xlabel("step")
      ax.set_title(textwrap.fill(label, 48), fontsize=8)
  for ax, (label, _, _) in zip(axes, panels):
    if "threshold" in label:
      ax.axhline(symmetry.THRESHOLD, color="k", lw=0.5, ls=":")
  axes[0].legend(fontsize=5, ncol=2 if len(styles) > 12 else 1)
  save_figure(fig, f"{title} (one line per seed, one colour and line style per group)", sweep.data, path)


def fig_symmetry(sweep: Sweep, path: str) -> None:
  fig_over_time(sweep, SYMMETRY_PANELS, "Symmetry over training", path)


def fig_correlations(sweep: Sweep, path: str) -> None:
  fig_over_time(sweep, CORRELATION_PANELS, "The authors' weight correlations and Diversity over training", path)


def _flat(tree: dict, prefix: str = "") -> dict:
  """{"model.width": 256, ...}: a nested config as dotted field names (lists as tuples, to compare)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return out


def _setting(config: dict) -> tuple:
  """Every field of a config but the seed and the breakers: arms with the same setting form one eps series."""
  return tuple(sorted((k, repr(v)) for k, v in _flat(config).items() if k != "seed" and not k.startswith("breaker.")))


def eps_series(arms: list) -> dict:
  """{(label, breaker): [(eps, [arms])]}: one series per breaker and setting of the other fields (seeds
  pooled), the same setting's arms with no breaker at eps 0; only series over two or more eps values. The
  label names the fields that differ between the series' settings (the init when none do)."""
  done = [a for a in arms if a["summary"]]
  series, plain = {}, {}
  for arm in done:
    name, eps = breaker_of(arm["config"])
    if "+" in name:
      continue
    setting = _setting(arm["config"])
    if name == "none":
      plain.setdefault(setting, []).append(arm)
    else:
      series.setdefault((setting, name), {}).setdefault(eps, []).append(arm)
  for (setting, _), points in series.items():
    if setting in plain:
      points[0.0] = plain[setting]
  settings = [dict(setting) for setting, _ in series]
  varied = [k for k in sorted(set().union(*settings)) if len({s.get(k) for s in settings}) > 1]

  def label(setting: tuple) -> str:
    fields = dict(setting)
    return ", ".join(f"{k.split('.')[-1]}={fields.get(k)}" for k in varied) or fields["model." + defaults.init_field(fields["model.name"].strip("'"))].strip("'")

  out = {(label(setting), name): sorted(points.items()) for (setting, name), points in series.items()
         if len(points) >= 2}
  return dict(sorted(out.items(), key=lambda item: natural(" ".join(item[0]))))


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


def _breaking(arm: dict) -> str:
  b = arm["summary"]["symmetry_breaking"]
  return f"{symmetry.format_step(b['median'])} / {symmetry.format_step(b['max'])} ({b['never']} of {b['layers']})"


def _mean_sd_plot(ax, xs: list, per_x: list, **style) -> None:
  """Mean with a sample-sd bar over seeds at each x, and every seed as a dot in the same colour."""
  means = [statistics.mean(v) for v in per_x]
  sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in per_x]
  line = ax.errorbar(xs, means, yerr=sds, capsize=3, marker="o", ms=4, lw=1.2, **style)
  for x, v in zip(xs, per_x):
    ax.plot([x] * len(v), v, ".", color=line[0].get_color(), ms=3, alpha=0.6)


def _eps_axis(ax, eps: list) -> None:
  """A log eps axis that still shows eps = 0 (linear below the smallest nonzero eps)."""
  positive = [e for e in eps if e > 0]
  ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0, linscale=0.5)
  ax.set_xticks(sorted(set(eps)), [f"{e:g}" for e in sorted(set(eps))], fontsize=7)
  ax.set_xlabel("eps")


def fig_vs_eps(sweep: Sweep, path: str) -> None:
  series = eps_series(sweep.arms)
  panels = (("final test accuracy", lambda a: a["summary"]["final_test_accuracy"], "linear"),
            ("train loss (last logged window)", train_loss, "log"),
            ("symmetry-breaking step (median over layers; top = never)", None, "linear"))
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  all_eps = []
  for i, ((label, name), points) in enumerate(series.items()):
    eps = [e for e, _ in points]
    all_eps += eps
    never = max(a["summary"]["steps"] for _, arms in points for a in arms)
    for ax, (_, fn, _) in zip(axes, panels):
      fn = fn or (lambda a, never=never: breaking_step(a) if breaking_step(a) is not None else never)
      per_eps = [[v for v in map(fn, arms) if v is not None] for _, arms in points]
      keep = [j for j, v in enumerate(per_eps) if v]
      _mean_sd_plot(ax, [eps[j] for j in keep], [per_eps[j] for j in keep], label=f"{label} / {name}",
                    **line_style(i))
  for ax, (label, _, scale) in zip(axes, panels):
    _eps_axis(ax, all_eps)
    ax.set_yscale(scale)
    ax.set_ylabel(label, fontsize=8)
  axes[0].legend(fontsize=6)
  save_figure(fig, "Accuracy, train loss and symmetry-breaking step vs eps, one line per setting (mean ± sd over "
        "seeds, dots: single seeds)", sweep.data, path)


def fig_leakynet(sweep: Sweep, path: str) -> None:
  done = sweep.done
  inits = sorted({defaults.init_of(a["config"]["model"]) for a in done}, key=lambda s: (s.count("1"), s))
  kinds = sorted({breaker_of(a["config"])[0] for a in done})
  fig, ax = plt.subplots(figsize=(max(6, len(inits) * 1.1), 4))
  for j, kind in enumerate(kinds):
    for i, init in enumerate(inits):
      vals = [a["summary"]["final_test_accuracy"] for a in done
              if defaults.init_of(a["config"]["model"]) == init and breaker_of(a["config"])[0] == kind]
      if vals:
        ax.bar(i + (j - (len(kinds) - 1) / 2) * 0.8 / len(kinds), statistics.mean(vals), 0.8 / len(kinds),
               color=f"C{j}", label=kind if i == 0 else None)
  ax.set_xticks(range(len(inits)), inits, rotation=30, ha="right", fontsize=7)
  ax.set_ylabel("final test accuracy (mean over seeds)")
  ax.legend(fontsize=7)
  save_figure(fig, "LeakyNet grid (more '1' layers to the right)", sweep.data, path)


def toy_cells(done: list) -> tuple:
  """(ks, columns, {(k, column): [arms]}) of a toy sweep: a column per init-noise eps of the duplicated nets
  (unique_features = k > 0, any width), and "width k" for the controls (unique_features = 0, width = k)."""
  cells = {}
  for a in done:
    model = a["config"]["model"]
    column = a["config"]["breaker"]["init_noise"] if model["unique_features"] else "width k"
    cells.setdefault((model["unique_features"] or model["width"], column), []).append(a)
  ks = sorted({k for k, _ in cells})
  eps = sorted({c for _, c in cells if c != "width k"})
  return ks, eps + (["width k"] if any(c == "width k" for _, c in cells) else []), cells


TOY_METRICS = (("final test accuracy", lambda a: a["summary"]["final_test_accuracy"], "viridis", "{:.3f}"),
               ("train loss (last logged window)", train_loss, "magma_r", "{:.3f}"),
               ("dead hidden units (never fire on the probe batch)", dead_units, "Greys", "{:.0f}"))


def fig_toy(sweep: Sweep, path: str) -> None:
  ks, columns, cells = toy_cells(sweep.done)
  width = max(a["config"]["model"]["width"] for a in sweep.done)
  fig, axes = plt.subplots(1, len(TOY_METRICS), figsize=(len(TOY_METRICS) * (0.9 * len(columns) + 2.2),
                                                         0.55 * len(ks) + 2.2))
  for ax, (label, fn, cmap, fmt) in zip(axes, TOY_METRICS):
    grid = [[float("nan")] * len(columns) for _ in ks]
    for i, k in enumerate(ks):
      for j, c in enumerate(columns):
        vals = [v for v in map(fn, cells.get((k, c), [])) if v is not None]
        if vals:
          grid[i][j] = statistics.mean(vals)
          sd = f"\n±{fmt.format(statistics.stdev(vals))}" if len(vals) > 1 else ""
          ax.text(j, i, fmt.format(grid[i][j]) + sd, ha="center", va="center", fontsize=7,
                  path_effects=[patheffects.withStroke(linewidth=2, foreground="w")])
    im = ax.imshow(grid, cmap=cmap, aspect="auto", origin="lower")
    if "width k" in columns:
      ax.axvline(len(columns) - 1.5, color="w", lw=3)
    ax.set_xticks(range(len(columns)), [c if isinstance(c, str) else f"{c:g}" for c in columns], fontsize=7)
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("init noise eps on the hidden layer | control: an MLP of width k", fontsize=7)
    ax.set_ylabel("unique hidden features k")
    ax.set_title(label, fontsize=8)
    fig.colorbar(im, ax=ax)
  seeds = sorted({len(v) for v in cells.values()})
  save_figure(fig, f"Toy MLP (width {width} with k unique features, or width k): mean ± sd over "
        f"{'/'.join(map(str, seeds))} seeds per cell", sweep.data, path)


def fig_toy_over_time(sweep: Sweep, path: str) -> None:
  """Small multiples: a column per k, a colour per eps, the width-k control in black; one line per seed."""
  ks, columns, cells = toy_cells(sweep.done)
  rows = (("train loss", lambda a: ([r["step"] for r in a["train"]], [r["loss"] for r in a["train"]]), "log"),
          ("train accuracy", lambda a: ([r["step"] for r in a["train"]], [r["accuracy"] for r in a["train"]]), "linear"),
          ("dead hidden units", lambda a: ([r["step"] for r in a["symmetry"]],
                                           [sum(m.get("dead", 0) for m in r["activations"].values())
                                            for r in a["symmetry"]]), "linear"))
  fig, axes = plt.subplots(len(rows), len(ks), figsize=(2.6 * len(ks) + 1, 2.1 * len(rows) + 0.8),
                           sharex=True, sharey="row", squeeze=False)
  colours = {c: ("k" if c == "width k" else f"C{j}") for j, c in enumerate(columns)}
  for col, k in enumerate(ks):
    axes[0][col].set_title(f"k = {k}", fontsize=9)
    for c in columns:
      for n, arm in enumerate(cells.get((k, c), [])):
        name = c if isinstance(c, str) else f"eps {c:g}"
        for row, (_, fn, _) in enumerate(rows):
          steps, ys = fn(arm)
          axes[row][col].plot(steps, ys, color=colours[c], ls="--" if c == "width k" else "-", lw=0.9,
                              alpha=0.8, label=name if n == 0 and row == 0 else None)
  for row, (label, _, scale) in enumerate(rows):
    axes[row][0].set_ylabel(label, fontsize=8)
    for ax in axes[row]:
      ax.set_yscale(scale)
  for ax in axes[-1]:
    ax.set_xlabel("step")
  handles = {}
  for ax in axes[0]:
    for h, l in zip(*ax.get_legend_handles_labels()):
      handles.setdefault(l, h)
  axes[0][-1].legend(handles.values(), handles.keys(), fontsize=6)
  save_figure(fig, "Toy MLP over training: a panel per k, a colour per eps (dashed black: width-k control), one "
        "line per seed", sweep.data, path)


@dataclasses.dataclass(frozen=True)
class Figure:
  """One report figure: `draw(sweep, path)` writes `file` when `applies(sweep)`; `caption` heads its section."""
  file: str
  caption: str
  draw: Callable
  applies: Callable = lambda sweep: bool(sweep.done)


FIGURES = (
    Figure("accuracy.png", "Final and best test accuracy per arm", fig_accuracy),
    Figure("symmetry_over_time.png", "Distinct channels, functional spread and activation variance over time",
           fig_symmetry),
    Figure("correlations_over_time.png", "The authors' weight correlations and Diversity over time",
           fig_correlations),
    Figure("gap_to_he.png", "Gap to the He-initialized arms over training", fig_gap,
           lambda sweep: bool(accuracy_gaps(sweep))),
    Figure("vs_eps.png", "Accuracy and symmetry-breaking step vs eps", fig_vs_eps,
           lambda sweep: bool(eps_series(sweep.arms))),
    Figure("leakynet_grid.png", "LeakyNet grid", fig_leakynet, lambda sweep: sweep.models == {"leakynet"}),
    Figure("toy_grid.png", "Toy grid: unique features x eps, beside width-k networks", fig_toy,
           lambda sweep: sweep.models == {"mlp"}),
    Figure("toy_over_time.png", "Toy runs over training, per k", fig_toy_over_time,
           lambda sweep: sweep.models == {"mlp"}),
)


def write(workdir: str, data_note: str = "") -> str:
  """Writes WORKDIR/REPORT.md and its figures; returns the report's path."""
  arms = load(workdir)
  if not arms:
    raise SystemExit(f"error: {workdir} holds no arm folders (WORKDIR/<arm>/config.json); run the sweep first")
  gs = groups(arms)
  data = data_label(arms, data_note)
  done = [a for a in arms if a["summary"]]
  sweep = Sweep(arms=arms, done=done, groups=gs, data=data)
  figures = []
  for figure in FIGURES:
    if figure.applies(sweep):
      figure.draw(sweep, os.path.join(workdir, figure.file))
      figures.append((figure.caption, figure.file))

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
           "log sqrt(1 - backward correlation^2), at the end. Train loss: the last logged mean mini-batch loss (over "
           "the last log_every steps). Dead units: channels with no positive activation on the whole probe batch at "
           "the end. Per-seed values are separated by commas.", "",
           "| group | model | init | breaker | eps | seeds | final acc | best acc | train loss | dead units "
           "| bitwise channels (min-max) "
           "| functional channels (min-max) | breaking step median / max (never of layers) "
           "| bitwise-distinct from step (median) | break epoch | Diversity at end | act var rel at end (median) |",
           "|---" * 17 + "|"]
  for g, members in gs.items():
    finished = [a for a in members if a["summary"]]
    cfg = members[0]["config"]
    name, eps = breaker_of(cfg)
    if not finished:
      lines.append(f"| {g} | {cfg['model']['name']} | {defaults.init_of(cfg['model'])} | {name} | {eps:g} | 0 "
                   "| not finished |" + " |" * 10)
      continue
    channels = [c for a in finished for c in a["summary"]["distinct_channels"].values()]
    functional = [c for a in finished for c in a["summary"]["functional_channels"].values()] or [0]
    last = [a["symmetry"][-1] for a in finished if a["symmetry"]]
    diversity = ", ".join(f"{r['diversity']:.1f}" for r in last)
    act_var = ", ".join(f"{_median(r['activations'], 'act_var_rel'):.1e}" for r in last)
    lines.append(
        f"| {g} | {cfg['model']['name']} | {defaults.init_of(cfg['model'])} | {name} | {eps:g} | {len(finished)} "
        f"| {mean_sd([a['summary']['final_test_accuracy'] for a in finished])} "
        f"| {mean_sd([a['summary']['best_test_accuracy'] for a in finished])} "
        f"| {mean_sd([x for x in map(train_loss, finished) if x is not None])} "
        f"| {', '.join('?' if d is None else str(d) for d in map(dead_units, finished))} "
        f"| {min(channels)}-{max(channels)} | {min(functional)}-{max(functional)} "
        f"| {', '.join(map(_breaking, finished))} "
        f"| {', '.join(symmetry.format_step(s) for s in map(distinct_step, finished))} "
        f"| {', '.join(symmetry.format_step(a['summary']['symmetry_break_epoch']) for a in finished)} "
        f"| {diversity} | {act_var} |")
  lines += gap_table(sweep)
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
