#!/usr/bin/env bash
# Copies a ConstNet :cpu sweep's records (not its checkpoints) here and remakes the report and tables:
#   docs/results/constnet_cpu/collect.sh WORKDIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$1"
for arm in "$src"/*/; do
  name="$(basename "$arm")"
  [ -f "$arm/config.json" ] || continue
  mkdir -p "$here/$name"
  cp "$arm"/config.json "$arm"/data.json "$arm"/metrics.jsonl "$here/$name/"
  [ -f "$arm/summary.json" ] && cp "$arm/summary.json" "$here/$name/"
done
python -m zerodiverse.report "$here" --data_note "the offline CIFAR-10 rebuild (shared/data/cifar10/build.py: labels exact, pixels JPEG-decoded for 90% of images)"
python "$here/make_tables.py" "$here" > "$here/tables.md"
