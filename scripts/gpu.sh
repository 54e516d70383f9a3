#!/usr/bin/env bash
# The GPU measurements, one step per call, on a machine with no registry (docs/gpu.md).
#
#   scripts/gpu.sh setup      install (no deps), add missing wheels from .whl/, build .data/cifar10, versions
#   scripts/gpu.sh probe      one backward repeated per mode: nondeterminism per conv layer (zerodiverse.gpu_probe)
#   scripts/gpu.sh symmetry   ConstNet without breaker, 300 steps, the four modes, each twice
#   scripts/gpu.sh accuracy   He and ConstNet arms side by side (STEPS=2000 by default)
#   scripts/gpu.sh bench      throughput and MFU (BENCH_MODELS=16-4 or 16-10, BENCH_BATCHES=128,512)
#   scripts/gpu.sh all        setup, probe, symmetry, accuracy, bench in turn (several device commands' worth)
#
# Every step writes at most 4 files to $OUT (default ./gpu_out): its tables (.md, with device, versions,
# command and date) and one JSON. Workdirs stay on the machine (workdirs/gpu/), so a step cut off by the
# 10-minute command limit resumes when called again on the same warm machine. TINY=1 shrinks every step to
# seconds (WRN-7-1 or WRN-10-1, a few steps): the CPU check of this script (INSTALL=0 skips the pip install,
# for a shared environment that already has the project's dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
DATA=${DATA:-$PWD/.data/cifar10}
BUNDLE=${BUNDLE:-$PWD/.data/cifar10-bundle}
WORK=${WORK:-$PWD/workdirs/gpu}
STEPS=${STEPS:-2000}
TINY=${TINY:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"

# Modules our GPU path imports that the device image may lack, with the wheel that provides each.
NEEDED="ml_collections:ml_collections tqdm:tqdm absl:absl_py yaml:pyyaml PIL:pillow"

header() {  # a Markdown header for a table: what ran, where, when
  {
    echo "# $1"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- command: \`scripts/gpu.sh $2\` (TINY=$TINY, STEPS=$STEPS)"
    echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi: CPU')"
    echo "- versions: $($PY -c 'import sys, jax, jaxlib, flax, optax, numpy, torch; print("python", sys.version.split()[0], "jax", jax.__version__, "jaxlib", jaxlib.__version__, "flax", flax.__version__, "optax", optax.__version__, "numpy", numpy.__version__, "torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())')"
    echo "- data: the offline CIFAR-10 rebuild (labels exact, 90 % of the pixels JPEG-decoded)"
    echo
  }
}

setup() {
  local missing=""
  for pair in $NEEDED; do
    $PY -c "import ${pair%%:*}" 2>/dev/null || missing="$missing ${pair#*:}"
  done
  if [ -n "$missing" ]; then
    echo "installing from .whl/:$missing"
    # shellcheck disable=SC2086
    $PY -m pip install -q --no-deps --no-index --find-links .whl $missing || {
      echo "error: wheels missing in .whl/ for:$missing; on a machine with a registry run" \
           "pip download --only-binary=:all: --no-deps --python-version 3.12 --platform manylinux2014_x86_64" \
           "--platform manylinux_2_28_x86_64 -d .whl ml-collections tqdm absl-py pyyaml pillow" >&2
      exit 2
    }
  fi
  # The project itself, without touching the image's torch or jax; the build backend (setuptools) must be
  # on the image already (no registry). If the editable install cannot be built, PYTHONPATH does the job.
  if [ "${INSTALL:-1}" = 1 ]; then
    $PY -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
      || echo "editable install not possible here; using PYTHONPATH=$PWD"
  fi
  if [ ! -f "$DATA/cifar-10-batches-bin/test_batch.bin" ]; then
    [ -f "$BUNDLE/build.py" ] || { echo "error: no $DATA/cifar-10-batches-bin and no rebuild bundle in $BUNDLE (docs/gpu.md)" >&2; exit 2; }
    $PY "$BUNDLE/build.py" "$DATA"
  fi
  header "GPU machine" setup > "$OUT/setup.md"
  $PY -c "import jax, torch; print('jax devices', jax.devices()); print('torch cuda', torch.cuda.is_available())" \
    | tee -a "$OUT/setup.md"
}

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

probe() {
  local size=()
  [ "$TINY" = 1 ] && size=(--tiny --repeats 3 --steps 1)
  $PY -m zerodiverse.gpu_probe --data_dir "$DATA" --out "$WORK/probe" "${size[@]}"
  { header "Nondeterminism of one backward, ConstNet in its symmetric state" probe; cat "$WORK/probe/gpu_probe.md"; } > "$OUT/gpu_probe.md"
  cp "$WORK/probe/gpu_probe.json" "$OUT/gpu_probe.json"
}

sweep_tables() {  # $1: sweep workdir, $2: name in $OUT, $3: title, $4: step name
  { header "$3" "$4"; cat "$1/table.md"; } > "$OUT/$2.md"
  $PY - "$1" "$OUT/$2.json" <<'EOF'
# Per arm: its summary, and per logged symmetry record the distinct channels and spread of every layer.
import glob, json, os, sys
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*", "summary.json"))):
  arm = os.path.dirname(path)
  over_steps = []
  with open(os.path.join(arm, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line) if line.strip().endswith("}") else {}
      if record.get("split") == "symmetry":
        over_steps.append({"step": record["step"], "layers": {
            name: {k: v for k, v in m.items() if k in ("distinct", "spread")}
            for name, m in record.get("layers", {}).items()}})
  out[os.path.basename(arm)] = {"summary": json.load(open(path)), "symmetry_over_steps": over_steps}
json.dump(out, open(sys.argv[2], "w"), indent=1)
EOF
}

symmetry() {
  local extra=()
  [ "$TINY" = 1 ] && extra=(--config.model.depth=10 --config.model.width=1 --config.train.steps=4
                            --config.train.symmetry_every=2 --config.train.log_every=2
                            --config.train.eval_every=4 --config.train.checkpoint_every=4)
  $PY launch.py --config configs/constnet_torch_gpu.py:symmetry --workdir "$WORK/symmetry" \
    --config.data.dir="$DATA" "${extra[@]}"
  sweep_tables "$WORK/symmetry" symmetry "ConstNet without breaker, four modes, each twice" symmetry
}

accuracy() {
  local extra=(--config.train.steps="$STEPS")
  [ "$TINY" = 1 ] && extra=(--config.model.depth=10 --config.model.width=1 --config.train.steps=4
                            --config.train.log_every=2 --config.train.eval_every=4 --config.train.checkpoint_every=4)
  $PY launch.py --config configs/constnet_torch_gpu.py:side_by_side --workdir "$WORK/accuracy" \
    --config.data.dir="$DATA" "${extra[@]}"
  sweep_tables "$WORK/accuracy" accuracy "Accuracy side by side, ConstNet WRN-16-4" accuracy
}

bench() {
  local models=${BENCH_MODELS:-16-4} batches=${BENCH_BATCHES:-128,512} size=()
  [ "$TINY" = 1 ] && size=(--small)
  $PY -m zerodiverse.bench --models "$models" --batches "$batches" --out "$WORK/bench_$models.json" "${size[@]}" \
    > "$WORK/bench_$models.md"
  # bench prints a row per case as it goes, then the whole table: keep the table.
  { header "Throughput and MFU, ConstNet WRN-$models" bench; sed -n '/^| mode |/,$p' "$WORK/bench_$models.md"; } \
    > "$OUT/bench_$models.md"
  cp "$WORK/bench_$models.json" "$OUT/bench_$models.json"
}

case "${1:-}" in
  setup|probe|symmetry|accuracy|bench) "$1" ;;
  all) setup; probe; symmetry; accuracy; bench ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
