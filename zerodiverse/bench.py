"""Training throughput and peak memory of ConstNet, JAX against PyTorch, each determinism mode.

  python -m zerodiverse.bench --out bench.json            # the full grid (a GPU: several minutes)
  python -m zerodiverse.bench --small --out bench.json    # WRN-7-1, batch 8, 8x8 images: seconds, any CPU
  python -m zerodiverse.bench --modes jax_deterministic --breakers 'none;reorder:partials=8;ulp:scale=1'

Grid: ConstNet WRN-16-10 and WRN-16-4, batch 128 and 512, float32 and bfloat16 (mixed precision: float32
master weights, bfloat16 compute), four modes: jax_deterministic, jax_nondeterministic_allowed (XLA flags of
zerodiverse.determinism), torch_nondeterministic_allowed (cudnn.benchmark on, channels_last, nondeterministic algorithms
allowed: its best eager settings), torch_deterministic (deterministic algorithms, benchmark off,
channels_last). TF32 is off everywhere (float32 means float32). Each (mode, case) runs in its own process,
so JAX's determinism flags apply before its backend starts and peak memory is per case.

`--breakers` times the JAX modes once per rounding-noise setting ('none', or a mode of
config.breaker.rounding_noise_mode with its rounding_noise_* fields, e.g. 'reorder:partials=8,data_grad=1');
the PyTorch modes run without breakers.

Measured on one synthetic batch kept on the device (the input pipeline is not timed): compile / warm-up
time separately, then images/s as the median over `--windows` windows of `--steps` steps. Peak memory:
JAX device.memory_stats()["peak_bytes_in_use"] where the backend has it (not on CPU: null); torch
torch.cuda.max_memory_allocated() on a GPU, null on CPU. Model FLOPs utilization = analytic training FLOPs
(3x the forward's convolutions and dense layer) x images/s / the device's peak from PEAK_FLOPS (null when
the device is not in the table).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODES = ("jax_deterministic", "jax_nondeterministic_allowed", "torch_nondeterministic_allowed", "torch_deterministic")
MODELS = ((16, 10), (16, 4))  # (depth, widen factor)
BATCHES = (128, 512)
DTYPES = ("float32", "bfloat16")
NUM_CLASSES = 10

# Dense peak FLOP/s by device kind (first matching substring wins): float32 without tensor cores (TF32 is
# off) and bfloat16 with tensor cores, from the vendors' data sheets (dense, no sparsity).
PEAK_FLOPS = (
    ("H100 PCIe", {"float32": 51e12, "bfloat16": 756e12}),
    ("H100", {"float32": 67e12, "bfloat16": 989e12}),   # SXM
    ("H200", {"float32": 67e12, "bfloat16": 989e12}),
    ("A100", {"float32": 19.5e12, "bfloat16": 312e12}),
    ("L4", {"float32": 30.3e12, "bfloat16": 121e12}),
    ("TPU v4", {"float32": None, "bfloat16": 275e12}),
    ("TPU v5 lite", {"float32": None, "bfloat16": 197e12}),
)


def constnet_flops(depth: int, width: int, image_size: int = 32, in_channels: int = 3,
                   num_classes: int = NUM_CLASSES) -> int:
  """Forward FLOPs of one image through ConstNet: 2 * k * k * cin * cout * Hout * Wout per conv, 2 * in * out
  for the head (multiply-adds count 2; BN, ReLU, pooling and the residual adds are left out)."""
  size, flops = image_size, 2 * 9 * in_channels * 16 * image_size * image_size
  cin = 16
  for stage, cout in enumerate((16 * width, 32 * width, 64 * width)):
    for block in range((depth - 4) // 3):
      stride = 2 if stage > 0 and block == 0 else 1
      size = (size + 2 - 3) // stride + 1  # padding 1
      flops += 2 * 9 * cin * cout * size * size
      if cin != cout or stride != 1:
        flops += 2 * cin * cout * size * size
      cin = cout
  return flops + 2 * cin * num_classes


def train_flops(depth: int, width: int, image_size: int = 32) -> int:
  """Forward + backward (input and weight gradients): 3x the forward."""
  return 3 * constnet_flops(depth, width, image_size)


def peak_flops(device_kind: str, dtype: str):
  for key, peaks in PEAK_FLOPS:
    if key.lower() in device_kind.lower():
      return peaks.get(dtype)
  return None


def _timed_windows(run_steps, steps: int, windows: int) -> list[float]:
  times = []
  for _ in range(windows):
    t0 = time.perf_counter()
    run_steps(steps)
    times.append(time.perf_counter() - t0)
  return times


def _synthetic(batch: int, image_size: int):
  import numpy as np  # pylint: disable=g-import-not-at-top
  gen = np.random.default_rng(0)
  return (gen.normal(size=(batch, image_size, image_size, 3)).astype(np.float32),
          gen.integers(0, NUM_CLASSES, size=batch).astype(np.int32))


def breaker_settings(spec: str) -> dict:
  """config.breaker fields of one --breakers entry: 'none' -> {}, 'ulp:scale=4' -> rounding_noise in mode ulp
  with rounding_noise_scale=4."""
  if spec == "none":
    return {}
  mode, _, fields = spec.partition(":")
  out = {"rounding_noise": True, "rounding_noise_mode": mode}
  for item in filter(None, fields.split(",")):
    k, _, v = item.partition("=")
    out[f"rounding_noise_{k}"] = float(v) if k == "scale" else int(v)
  return out


def jax_step(case: dict):
  """(compiled step, state, images, labels, compile seconds) for one JAX case; call after determinism.apply."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from zerodiverse import breakers  # pylint: disable=g-import-not-at-top
  from zerodiverse.models.constnet import ConstNet  # pylint: disable=g-import-not-at-top

  dtype = jnp.dtype(case["dtype"])
  model = ConstNet(num_classes=NUM_CLASSES, depth=case["depth"], width=case["width"], scheme="he")
  tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.03, momentum=0.9))
  images, labels = map(jnp.asarray, _synthetic(case["batch"], case["image_size"]))
  variables = model.init(jax.random.key(0), images[:1])
  state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
  settings = breaker_settings(case.get("breaker", "none"))
  grad_breakers = breakers.rounding_breaker(settings, case["batch"]) if settings else breakers.GradBreakers()
  key = jax.random.key(0)

  def step(state, images, labels):
    params, batch_stats, opt_state = state

    def loss_fn(params):
      cast = lambda t: jax.tree.map(lambda x: x.astype(dtype), t)
      logits, updates = model.apply({"params": cast(params), "batch_stats": batch_stats}, images.astype(dtype),
                                    train=True, mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
      return loss, jax.tree.map(lambda x: x.astype(jnp.float32), updates["batch_stats"])

    with breakers.reordering(key, grad_breakers):
      (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    grads = breakers.apply_to_grads(grads, key, grad_breakers)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

  t0 = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=0).lower(state, images, labels).compile()
  return compiled, state, images, labels, time.perf_counter() - t0


def bench_jax(case: dict) -> dict:
  from zerodiverse import determinism  # pylint: disable=g-import-not-at-top
  flags = determinism.apply(case["mode"].split("_", 1)[1])  # before the backend starts: this is a fresh process
  import jax  # pylint: disable=g-import-not-at-top

  compiled, state, images, labels, compile_s = jax_step(case)
  t0 = time.perf_counter()
  for _ in range(case["warmup"]):
    state, loss = compiled(state, images, labels)
  jax.block_until_ready(state)
  warmup_s = time.perf_counter() - t0

  def run_steps(n):
    nonlocal state
    for _ in range(n):
      state, _ = compiled(state, images, labels)
    jax.block_until_ready(state)

  times = _timed_windows(run_steps, case["steps"], case["windows"])
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  return {"compile_seconds": compile_s, "warmup_seconds": warmup_s, "window_seconds": times,
          "peak_memory_bytes": stats.get("peak_bytes_in_use"), "device_kind": device.device_kind,
          "platform": device.platform, "flags": flags}


def torch_step(case: dict):
  """(step, device) for one PyTorch case: step() runs one eager training step; call after
  torch_baseline.determinism.apply."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top
  from zerodiverse.torch_baseline.models import ConstNet  # pylint: disable=g-import-not-at-top

  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  model = ConstNet(NUM_CLASSES, case["depth"], case["width"]).to(device, memory_format=torch.channels_last)
  opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
  images, labels = _synthetic(case["batch"], case["image_size"])
  images = torch.from_numpy(images).permute(0, 3, 1, 2).to(device).contiguous(memory_format=torch.channels_last)
  labels = torch.from_numpy(labels).long().to(device)
  use_bf16 = case["dtype"] == "bfloat16"

  def step():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
      loss = F.cross_entropy(model(images).float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

  return step, device


def bench_torch(case: dict) -> dict:
  from zerodiverse.torch_baseline import determinism as torch_determinism  # pylint: disable=g-import-not-at-top
  flags = torch_determinism.apply(case["mode"].split("_", 1)[1])  # before CUDA initializes
  import torch  # pylint: disable=g-import-not-at-top

  step, device = torch_step(case)
  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
  t0 = time.perf_counter()
  for _ in range(case["warmup"]):  # eager: the first steps run cudnn.benchmark's autotuning
    step()
  sync()
  warmup_s = time.perf_counter() - t0

  def run_steps(n):
    for _ in range(n):
      step()
    sync()

  times = _timed_windows(run_steps, case["steps"], case["windows"])
  return {"compile_seconds": None, "warmup_seconds": warmup_s, "window_seconds": times,
          "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
          "device_kind": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
          "platform": device.type, "flags": flags}


def run_case(case: dict) -> dict:
  """One (mode, model, batch, dtype) in a fresh process; its result with images/s and MFU."""
  env = dict(os.environ)
  if case["mode"].startswith("torch"):
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  proc = subprocess.run([sys.executable, "-m", "zerodiverse.bench", "--worker", json.dumps(case)],
                        capture_output=True, text=True, env=env, check=False)
  if proc.returncode:
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {**case, "error": tail}
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  rates = [case["batch"] * case["steps"] / t for t in out["window_seconds"]]
  out["images_per_second"] = statistics.median(rates)
  out["train_flops_per_image"] = train_flops(case["depth"], case["width"], case["image_size"])
  peak = peak_flops(out["device_kind"], case["dtype"])
  out["peak_flops"] = peak
  out["mfu"] = out["train_flops_per_image"] * out["images_per_second"] / peak if peak else None
  return {**case, **out}


def cases(args) -> list[dict]:
  models = [(7, 1)] if args.small else [tuple(map(int, m.split("-"))) for m in args.models.split(",")]
  batches = [8] if args.small else [int(b) for b in args.batches.split(",")]
  dtypes = ["float32"] if args.small else args.dtypes.split(",")
  image_size = 8 if args.small else 32
  steps, windows, warmup = (2, 2, 1) if args.small else (args.steps, args.windows, args.warmup)
  modes = args.modes.split(",")
  for mode in modes:
    if mode not in MODES:
      raise SystemExit(f"--modes: {mode!r} is not one of {MODES}")
  specs = args.breakers.split(";")
  for spec in specs:
    settings = breaker_settings(spec)
    if settings:
      from zerodiverse import breakers  # pylint: disable=g-import-not-at-top
      for b in batches:
        breakers.rounding_breaker(settings, b)  # refuse a bad setting before any case runs
  return [dict(mode=mode, depth=d, width=w, batch=b, dtype=t, image_size=image_size, steps=steps,
               windows=windows, warmup=warmup, breaker=spec)
          for (d, w) in models for b in batches for t in dtypes for mode in modes
          for spec in (specs if mode.startswith("jax") else ["none"])]


def table(results: list[dict]) -> str:
  lines = ["| mode | breaker | model | batch | dtype | images/s | compile s | warm-up s | peak MiB | MFU |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda v, f: "n/a" if v is None else format(v, f)
  for r in results:
    model = f"WRN-{r['depth']}-{r['width']}"
    mode = r["mode"]
    if "error" in r:
      lines.append(f"| {mode} | {r.get('breaker', 'none')} | {model} | {r['batch']} | {r['dtype']} "
                   f"| FAILED: {r['error'][:80]} | | | | |")
      continue
    mib = None if r["peak_memory_bytes"] is None else r["peak_memory_bytes"] / 2**20
    lines.append(f"| {mode} | {r.get('breaker', 'none')} | {model} | {r['batch']} | {r['dtype']} "
                 f"| {r['images_per_second']:.1f} "
                 f"| {fmt(r['compile_seconds'], '.1f')} | {r['warmup_seconds']:.1f} | {fmt(mib, '.0f')} "
                 f"| {fmt(r['mfu'], '.3f')} |")
  return "\n".join(lines)


def ratios(results: list[dict]) -> list[str]:
  """'WRN-10-1 128 float32: jax_deterministic / torch_nondeterministic_allowed = 1.23' for every case both modes ran (no
  breaker), from the same bench run."""
  rate = {(r["mode"], r["depth"], r["width"], r["batch"], r["dtype"]): r["images_per_second"] for r in results
          if "error" not in r and r.get("breaker", "none") == "none"}
  return [f"WRN-{d}-{w} batch {b} {t}: jax_deterministic / torch_nondeterministic_allowed = "
          f"{v / rate[('torch_nondeterministic_allowed', d, w, b, t)]:.2f}"
          for (m, d, w, b, t), v in rate.items() if m == "jax_deterministic" and ("torch_nondeterministic_allowed", d, w, b, t) in rate]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--small", action="store_true", help="WRN-7-1, batch 8, 8x8, float32, 2x2 steps")
  parser.add_argument("--modes", default=",".join(MODES))
  parser.add_argument("--models", default=",".join(f"{d}-{w}" for d, w in MODELS), help="depth-width,...")
  parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
  parser.add_argument("--dtypes", default=",".join(DTYPES))
  parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=5, help="steps after compile, before timing")
  parser.add_argument("--breakers", default="none", help="';'-separated rounding-noise settings for the JAX "
                      "modes, e.g. 'none;reorder:partials=8;ulp:scale=1'")
  parser.add_argument("--out", default="", help="write the results as JSON here")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    case = json.loads(args.worker)
    print(json.dumps((bench_jax if case["mode"].startswith("jax") else bench_torch)(case)))
    return 0
  from zerodiverse.errors import ConfigError  # pylint: disable=g-import-not-at-top
  try:
    grid = cases(args)
  except ConfigError as e:
    print(f"--breakers: {e}", file=sys.stderr)
    return 2
  results = []
  for case in grid:
    results.append(run_case(case))
    print(table(results[-1:]).splitlines()[-1], flush=True)
  from zerodiverse import record  # pylint: disable=g-import-not-at-top
  report = {"device": {r["mode"]: {"kind": r.get("device_kind"), "platform": r.get("platform")} for r in results},
            "versions": record.versions(), "flags": {r["mode"]: r.get("flags") for r in results},
            "peak_flops_table": dict(PEAK_FLOPS), "results": results}
  print(table(results))
  print("\n".join(ratios(results)))
  if args.out:
    record.write_json(args.out, report)
  return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
  sys.exit(main())
