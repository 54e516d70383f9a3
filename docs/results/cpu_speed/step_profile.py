"""Where the bench's JAX train step spends its time on CPU: jax.profiler's trace of the compiled step (the
same program as `python -m zerodiverse.bench`, jax_deterministic), summed by XLA thunk kind.

  python docs/results/cpu_speed/step_profile.py --model 10-1 --batch 128

XLA:CPU records one trace event per thunk it runs on the executor threads. A convolution thunk's event
covers its dispatch, not the Eigen work it hands to the intra-op pool, so convolutions show up mostly in
"untraced": the step's wall time minus the summed thunk events.
"""

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import time

from zerodiverse import bench, determinism


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="10-1", help="depth-widen factor")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  determinism.apply("deterministic")
  import jax  # pylint: disable=g-import-not-at-top

  depth, width = map(int, args.model.split("-"))
  case = {"depth": depth, "width": width, "batch": args.batch, "dtype": "float32", "image_size": 32}
  compiled, state, images, labels, _ = bench.jax_step(case)
  for _ in range(2):
    state, _ = compiled(state, images, labels)
  jax.block_until_ready(state)
  trace_dir = tempfile.mkdtemp()
  jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    state, _ = compiled(state, images, labels)
  jax.block_until_ready(state)
  step_ms = (time.perf_counter() - t0) / args.steps * 1e3
  jax.profiler.stop_trace()

  events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))
  events = events["traceEvents"] if isinstance(events, dict) else events
  by_kind = collections.Counter()
  for e in events:  # thunks only: not the executor's own spans, the Python frames or block_until_ready
    if e.get("ph") == "X" and not re.search(r"Thunk|Executable|ThreadPool|ParseArguments|PjitFunction|^\$|"
                                              r"block_until|^end: ", e["name"]):
      by_kind[re.sub(r"\.\d+$", "", e["name"])] += e["dur"] / 1e3 / args.steps
  traced = sum(by_kind.values())
  print(f"WRN-{args.model}, batch {args.batch}: {step_ms:.1f} ms per step (traced step, "
        f"{args.steps} steps), {jax.devices()[0].device_kind}")
  print(f"{'ms/step':>9}  {'share':>5}  thunk kind")
  for kind, ms in by_kind.most_common(15):
    print(f"{ms:9.1f}  {ms / step_ms:5.0%}  {kind}")
  print(f"{step_ms - traced:9.1f}  {(step_ms - traced) / step_ms:5.0%}  untraced (convolutions' Eigen work, gaps)")


if __name__ == "__main__":
  main()
