#!/usr/bin/env bash
# Copies a sweep's records (config, data, metrics, summary; not its checkpoints) into an evidence folder and
# remakes its REPORT.md and figures:
#   docs/results/collect.sh WORKDIR DEST ["what the data is"]
# DEST/make_tables.py, if there is one, writes DEST/tables.md.
set -euo pipefail
src="$1"
dest="$2"
note="${3:-}"
mkdir -p "$dest"
for arm in "$src"/*/; do
  name="$(basename "$arm")"
  [ -f "$arm/config.json" ] || continue
  mkdir -p "$dest/$name"
  cp "$arm"/config.json "$arm"/data.json "$arm"/metrics.jsonl "$dest/$name/"
  if [ -f "$arm/summary.json" ]; then cp "$arm/summary.json" "$dest/$name/"; fi
done
[ -f "$src/table.md" ] && cp "$src/table.md" "$dest/sweep_table.md"
python -m zerodiverse.report "$dest" --data_note "$note"
if [ -f "$dest/make_tables.py" ]; then python "$dest/make_tables.py" "$dest" > "$dest/tables.md"; fi
