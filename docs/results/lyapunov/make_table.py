"""One row per twins workdir (python -m zerodiverse.lyapunov) under DIR: its growth rates side by side.

  python docs/results/lyapunov/make_table.py DIR > table.md

Rates are d ln(distance) / d step x 1000. `all`: ||theta_b - theta_a|| over every parameter. `across`: the
across-channel part of the difference of the stage representations on the probe batch (outputs_across),
median over the stages; `last`: the same for the network's last representation. Early: fitted until the
distance has grown 1000-fold (zerodiverse.lyapunov.GROWTH); "1000x by step" is that step (the run's last
step for a distance that never grew so much).
"""

import json
import os
import statistics
import sys


def rate(value) -> str:
  return "-" if value is None else f"{1000 * value:+.1f}"


def median(rates: dict, phase: str):
  values = [r[phase] for r in rates.values() if r[phase] is not None]
  return statistics.median(values) if values else None


def grown(rates: dict) -> str:
  """Median and max over stages of the step by which the distance had grown 1000-fold (or the run's end)."""
  steps = [r["early_until"] for r in rates.values()]
  return f"{statistics.median(steps):g} / {max(steps)}"


def row(name: str, s: dict) -> str:
  model = s["model"]
  init = model["init_string"] if model["name"] == "leakynet" else model["scheme"]
  ones = init.count("1") if model["name"] == "leakynet" else ""
  weights, across = s["rates_per_step"]["weights"]["all"], s["rates_per_step"]["outputs_across"]
  last = across[sorted(across)[-1]]
  end = s["distances"]["end"]["outputs_across"]
  return (f"| {name} | {s['eps']:g} | {model['name']}-{model['depth']}-{model['width']} | {init} | {ones} "
          f"| {rate(weights['early'])} | {rate(weights['before_drop'])} | {rate(weights['after_drop'])} "
          f"| {rate(median(across, 'early'))} | {rate(median(across, 'before_drop'))} "
          f"| {rate(median(across, 'after_drop'))} | {grown(across)} | {rate(last['early'])} "
          f"| {end[sorted(end)[-1]]:.2g} "
          f"| {s['first_drop_step']} / {s['steps']} | {s['wall_seconds']:.0f} |")


def main(folder: str) -> None:
  runs = sorted(d for d in os.listdir(folder) if os.path.exists(os.path.join(folder, d, "lyapunov.json")))
  summaries = {d: json.load(open(os.path.join(folder, d, "lyapunov.json"))) for d in runs}
  first = next(iter(summaries.values()))
  print(f"Twins; data: {first['data']}; {first['versions'].get('jax')} on "
        f"{first['device']['platform']}.\n")
  print("| run | eps | model | init | '1' layers | all: early | all: before drop | all: after drop "
        "| across (median of stages): early | before drop | after drop | across: 1000x by step (median / max) "
        "| across, last stage: early "
        "| across, last stage, at end | first lr drop / steps | wall s |")
  print("|---" * 16 + "|")
  for d, s in summaries.items():
    print(row(d, s))


if __name__ == "__main__":
  main(sys.argv[1])
