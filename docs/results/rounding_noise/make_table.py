"""Tables of a rounding-noise sweep workdir: per arm and layer, the first step whose channel spread exceeds
zerodiverse.symmetry.THRESHOLD, the first step at which all its channels are bitwise distinct, and the spread
at the last logged step.

  python docs/results/rounding_noise/make_table.py WORKDIR > docs/results/rounding_noise/tables.md
"""

import json
import os
import sys

from zerodiverse import symmetry


def channels(layer: str, width: int) -> int:
  """A ConstNet layer's feature channels: 16 in the stem, 16k / 32k / 64k in stages 1-3, 64k head rows."""
  if layer == "stem":
    return 16
  if layer == "head":
    return 64 * width
  return 16 * 2 ** (int(layer[len("stage")]) - 1) * width


def arm_table(arm_dir: str):
  records = []
  with open(os.path.join(arm_dir, "metrics.jsonl")) as f:
    for line in f:
      try:
        r = json.loads(line)
      except json.JSONDecodeError:  # a run still writing its last line
        continue
      if r.get("split") == "symmetry":
        records.append(r)
  records.sort(key=lambda r: r["step"])
  if not records:
    return None
  breaking = symmetry.breaking_steps(records)
  with open(os.path.join(arm_dir, "config.json")) as f:
    k = json.load(f)["model"]["width"]
  out = {}
  for layer in records[-1]["layers"]:
    width = channels(layer, k)
    all_distinct = next((r["step"] for r in records if r["layers"][layer]["distinct"] == width), None)
    out[layer] = (breaking[layer], all_distinct, f"{records[-1]['layers'][layer]['distinct']}/{width}",
                  records[-1]["layers"][layer]["spread"])
  return records[-1]["step"], out


def main(workdir: str) -> None:
  fmt = lambda s: "-" if s is None else str(s)
  for arm in sorted(os.listdir(workdir)):
    path = os.path.join(workdir, arm)
    if not os.path.isfile(os.path.join(path, "metrics.jsonl")):
      continue
    table = arm_table(path)
    if table is None:
      continue
    last, layers = table
    done = os.path.isfile(os.path.join(path, "summary.json"))
    print(f"## {arm} ({'finished' if done else 'unfinished'}, last logged step {last})\n")
    print("| layer | spread > 1e-3 at step | all channels bitwise distinct at step | distinct channels at last step "
          "| spread at last step |")
    print("|---|---|---|---|---|")
    for layer, (brk, distinct, width, spread) in layers.items():
      print(f"| {layer} | {fmt(brk)} | {fmt(distinct)} | {width} | {spread:.3g} |")
    print()


if __name__ == "__main__":
  main(sys.argv[1])
