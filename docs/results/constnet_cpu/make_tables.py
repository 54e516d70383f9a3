"""Per-arm tables of a ConstNet sweep (launch.py ... :cpu) that REPORT.md does not hold.

  python docs/results/constnet_cpu/make_tables.py DIR > tables.md

1. Each arm: final and best test accuracy, the authors' symmetry-break epoch, wall time, machine.
2. The functional breaking step of every layer (the first logged step at which its normalized output's
   channels differ by 1e-2 of their std, zerodiverse/symmetry.py), in epochs, one column per arm.
Unfinished arms are listed with the last test accuracy they logged.
"""

import json
import os
import sys


def load(folder: str) -> dict:
  arms = {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if not os.path.isfile(os.path.join(path, "config.json")):
      continue
    summary = os.path.join(path, "summary.json")
    records = [json.loads(l) for l in open(os.path.join(path, "metrics.jsonl")) if l.strip()]
    arms[name] = {"summary": json.load(open(summary)) if os.path.exists(summary) else None, "records": records}
  return arms


def main(folder: str) -> None:
  arms = load(folder)
  print("| arm | final acc | best acc | break epoch (authors' rule) | epochs | wall min | device, CPUs |")
  print("|---|---|---|---|---|---|---|")
  for name, arm in arms.items():
    s = arm["summary"]
    if s is None:
      tests = [r for r in arm["records"] if r["split"] == "test"]
      last = f"{tests[-1]['accuracy']:.4f} at step {tests[-1]['step']}" if tests else "none yet"
      print(f"| {name} | not finished (last test accuracy {last}) | | | | | |")
      continue
    print(f"| {name} | {s['final_test_accuracy']:.4f} | {s['best_test_accuracy']:.4f} "
          f"| {s['symmetry_break_epoch'] if s['symmetry_break_epoch'] is not None else 'never'} | {s['epochs']:g} "
          f"| {s['wall_seconds'] / 60:.0f} | {s['device']['kind']}, {s['device']['host_cpus']} |")
  done = {n: a["summary"] for n, a in arms.items() if a["summary"]}
  if not done:
    return
  spe = next(iter(done.values()))["steps"] / next(iter(done.values()))["epochs"]
  layers = sorted({l for s in done.values() for l in s["symmetry_breaking_step"]})
  print("\nFunctional breaking step per layer, in epochs ('never': not within the run):\n")
  print("| layer | " + " | ".join(done) + " |")
  print("|---" * (len(done) + 1) + "|")
  for layer in layers:
    cells = []
    for s in done.values():
      step = s["symmetry_breaking_step"].get(layer)
      cells.append("never" if step is None else f"{step / spe:.2f}")
    print(f"| {layer} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv[1])
