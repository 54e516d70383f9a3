"""How much one backward varies from itself, per conv layer, under each determinism mode.

  python -m zerodiverse.gpu_probe --data_dir DIR --out OUT   # ConstNet WRN-16-4, batch 128, 20 repeats
  python -m zerodiverse.gpu_probe --tiny --out OUT           # WRN-7-1 on 8x8 noise: seconds on a CPU

ConstNet in its symmetric state (constant init, then `--steps` SGD steps of the paper's recipe under
deterministic JAX, saved once) gets the same batch's weight gradient `--repeats` times in each mode:
  torch_nondeterministic_allowed  cudnn.benchmark on, nondeterministic algorithms allowed (determinism "nondeterministic_allowed")
  torch_deterministic     deterministic algorithms, benchmark off
  jax_deterministic       XLA's deterministic GPU flags
  jax_nondeterministic_allowed                XLA left free (determinism "nondeterministic_allowed")
Each mode runs in its own process (JAX's flags apply before its backend starts, torch's before CUDA). Per
layer, zerodiverse.nondeterminism counts bitwise-distinct output channels, their spread and the run-to-run
differences in ulps, the fraction unchanged, and whether channels of one output tile move together. What
ran: torch's kernel names from torch.profiler (on a GPU they name cuDNN's engines), JAX's convolutions
and their backend config from the compiled HLO. On a CPU every mode is deterministic: a tiny run checks
the plumbing, not the GPU.

Writes OUT/gpu_probe.json (everything) and OUT/gpu_probe.md (one table per mode).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

MODES = {
    "torch_nondeterministic_allowed": ("torch", "nondeterministic_allowed"),
    "torch_deterministic": ("torch", "deterministic"),
    "jax_deterministic": ("jax", "deterministic"),
    "jax_nondeterministic_allowed": ("jax", "nondeterministic_allowed"),
}
NUM_CLASSES = 10


def probe_config(args):
  """The run's config: ConstNet with the constant init and the paper's recipe (zerodiverse.defaults)."""
  from zerodiverse import defaults  # pylint: disable=g-import-not-at-top
  config = defaults.base()
  config.model.name, config.model.scheme = "constnet", "constant"
  config.model.depth, config.model.width = (7, 1) if args.tiny else (args.depth, args.width)
  config.data.name, config.data.dir = "cifar10", args.data_dir
  config.train.batch_size = 4 if args.tiny else args.batch
  return config


def batches(args, config, count: int) -> list:
  """`count` consecutive (images NHWC float32 normalized, labels) of the training set, or noise if no data."""
  batch = config.train.batch_size
  if args.tiny or not args.data_dir:
    generator = np.random.default_rng(0)
    size = 8 if args.tiny else 32
    return [(generator.normal(size=(batch, size, size, 3)).astype(np.float32),
             generator.integers(0, NUM_CLASSES, batch).astype(np.int32)) for _ in range(count)]
  from zerodiverse import data  # pylint: disable=g-import-not-at-top
  dataset = data.load(config.data)
  return [(dataset.normalize(dataset.train_images[i * batch:(i + 1) * batch]),
           dataset.train_labels[i * batch:(i + 1) * batch]) for i in range(count)]


def prepare(args, path: str) -> None:
  """The symmetric state after `args.steps` deterministic JAX steps, and the probe batch, saved to `path`."""
  from zerodiverse import determinism  # pylint: disable=g-import-not-at-top
  determinism.apply("deterministic")
  import jax  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from zerodiverse import breakers, models, rng  # pylint: disable=g-import-not-at-top
  from zerodiverse.train import optim, step  # pylint: disable=g-import-not-at-top

  config = probe_config(args)
  *train, probe = batches(args, config, args.steps + 1)
  model = models.build(config.model, NUM_CLASSES)
  optimizer = optim.make(config.train)
  lrs = optim.learning_rates(config.train, max(args.steps, 1))
  state = step.init_state(model, optimizer(config.train.lr), jax.numpy.asarray(probe[0][:1]),
                          rng.root_key(config.seed), breakers.init_noise(config))
  train_step = step.make_train_step(model, optimizer)
  for lr, (images, labels) in zip(lrs, train):
    state, _ = train_step(state, {"image": images, "label": labels}, rng.root_key(config.seed), lr)
  flat = {f"{collection}/{'/'.join(path)}": np.asarray(leaf)
          for collection in ("params", "batch_stats")
          for path, leaf in traverse_util.flatten_dict(jax.device_get(state[collection])).items()}
  np.savez(path, probe_images=probe[0], probe_labels=probe[1], **flat)


def load_state(path: str) -> tuple:
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  saved = np.load(path)
  trees = {"params": {}, "batch_stats": {}}
  for key in saved.files:
    collection, _, rest = key.partition("/")
    if collection in trees:
      trees[collection][tuple(rest.split("/"))] = saved[key]
  return (traverse_util.unflatten_dict(trees["params"]), traverse_util.unflatten_dict(trees["batch_stats"]),
          saved["probe_images"], saved["probe_labels"])


def conv_kernels(grads) -> dict:
  """{layer: kernel gradient (kh, kw, in, out)} of every convolution in a Flax-layout tree."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  return {"/".join(path[:-1]): np.asarray(leaf) for path, leaf in traverse_util.flatten_dict(grads).items()
          if path[-1] == "kernel" and np.ndim(leaf) == 4}


def repeat_jax(args, config, state, mode: str) -> tuple:
  from zerodiverse import determinism  # pylint: disable=g-import-not-at-top
  flags = determinism.apply(mode)
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from zerodiverse import models  # pylint: disable=g-import-not-at-top
  params, batch_stats, images, labels = state
  model = models.build(config.model, NUM_CLASSES)

  def loss(params, images, labels):
    logits, _ = model.apply({"params": params, "batch_stats": batch_stats}, images, train=True,
                            mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  compiled = jax.jit(jax.grad(loss)).lower(params, images, labels).compile()
  runs = [conv_kernels(jax.device_get(compiled(params, images, labels))) for _ in range(args.repeats)]
  device = jax.devices()[0]
  return runs, jax_kernels(compiled.as_text()), {"flags": flags, "device": device.device_kind,
                                                  "platform": device.platform, "jax": jax.__version__}


def jax_kernels(hlo: str) -> list:
  """The convolutions XLA compiled: cuDNN custom calls with their algorithm, or plain HLO convolutions."""
  found = []
  for line in hlo.splitlines():
    target = re.search(r'custom_call_target="([^"]*conv[^"]*)"', line, re.IGNORECASE)
    if target:
      algorithm = re.search(r'"algorithm":\s*\{[^{}]*\}|"algo_id":\s*"?\d+"?', line)
      found.append(f"{target.group(1)} {algorithm.group(0) if algorithm else ''}".strip())
    elif re.search(r"\bconvolution\(", line):
      labels = re.search(r"dim_labels=([\w>-]+)", line)
      found.append(f"convolution {labels.group(1) if labels else ''}".strip())
  return sorted(set(found))


def repeat_torch(args, config, state, mode: str) -> tuple:
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  from zerodiverse.torch_baseline import determinism as torch_determinism  # pylint: disable=g-import-not-at-top
  flags = torch_determinism.apply(mode)
  import torch  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top
  from zerodiverse.torch_baseline import convert, models as torch_models  # pylint: disable=g-import-not-at-top
  params, batch_stats, images, labels = state
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  model = torch_models.build(config.model, NUM_CLASSES, images.shape[1:])
  convert.load_flax(model, params, batch_stats)
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(device, memory_format=memory_format).train()
  x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
  x = x.contiguous(memory_format=memory_format)
  y = torch.from_numpy(labels.astype(np.int64)).to(device)

  def backward():
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    if device.type == "cuda":
      torch.cuda.synchronize()

  backward()  # cudnn.benchmark autotunes on the first call; the probed calls reuse its choice
  activities = [torch.profiler.ProfilerActivity.CPU] + (
      [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
  with torch.profiler.profile(activities=activities) as prof:
    backward()
  runs = []
  for _ in range(args.repeats):
    backward()
    runs.append(conv_kernels(convert.grads_to_flax(model)))
  return runs, torch_kernels(prof, device.type), {
      "flags": flags, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
      "platform": device.type, "torch": torch.__version__,
      "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
      "channels_last": args.channels_last}


def torch_kernels(prof, device_type: str) -> list:
  """Names of the kernels (GPU) or convolution ops (CPU) one forward and backward ran."""
  names = set()
  for event in prof.key_averages():
    on_device = str(getattr(event, "device_type", "")).endswith("CUDA")
    if (device_type == "cuda" and on_device) or (device_type != "cuda" and "conv" in event.key.lower()):
      names.add(event.key)
  return sorted(names)


def worker(args) -> dict:
  from zerodiverse import nondeterminism  # pylint: disable=g-import-not-at-top
  backend, mode = MODES[args.worker]
  config = probe_config(args)
  state = load_state(args.state)
  t0 = time.perf_counter()
  runs, kernels, info = (repeat_jax if backend == "jax" else repeat_torch)(args, config, state, mode)
  layers = {name: nondeterminism.layer_stats(np.stack([run[name] for run in runs])) for name in sorted(runs[0])}
  return {"mode": args.worker, **info, "kernels": kernels, "layers": layers,
          "seconds": time.perf_counter() - t0}


def table(result: dict) -> str:
  """One mode's per-layer table in Markdown."""
  head = (f"### {result['mode']} ({result['device']}; {result['platform']})\n\n"
          "| layer | shape | distinct channels | channel spread ulps (median/max) | distinct runs | unchanged "
          "| run-to-run ulps 0/1/2/3-4/>4 | max ulps | tile 8/32 within vs across |\n|---|---|---|---|---|---|---|---|---|\n")
  rows = []
  for name, s in result["layers"].items():
    h = s["run_to_run_ulps"] or {}
    rest = 1.0 - sum(h.get(k, 0.0) for k in ("0", "1", "2", "3-4"))
    hist = "/".join(f"{h.get(k, 0.0):.3f}" for k in ("0", "1", "2", "3-4")) + f"/{rest:.3f}"
    tiles = "; ".join(f"{t['tile']}: {_f(t['within'])} vs {_f(t['across'])}" for t in s["tiles"]
                      if t["tile"] in (8, 32)) or "-"
    d = s["distinct_channels"]
    rows.append(f"| {name} | {'x'.join(map(str, s['shape']))} | {d['min']}-{d['max']} of {s['channels']} | "
                f"{s['channel_spread_ulps']['median']:g}/{s['channel_spread_ulps']['max']} | {s['distinct_runs']} | "
                f"{s['fraction_unchanged']:.4f} | {hist} | {s['run_to_run_max_ulps']} | {tiles} |")
  kernels = "\n".join(f"- `{k}`" for k in result["kernels"]) or "- (none reported)"
  return head + "\n".join(rows) + f"\n\nKernels:\n{kernels}\n"


def forward(args) -> list:
  """The options a child process needs to rebuild the same config and batch."""
  out = ["--data_dir", args.data_dir, "--depth", str(args.depth), "--width", str(args.width), "--batch",
         str(args.batch), "--steps", str(args.steps), "--repeats", str(args.repeats)]
  return out + ["--tiny"] * args.tiny + ["--channels_last"] * args.channels_last


def last_line(text: str) -> str:
  return (text.strip().splitlines() or ["(no output)"])[-1]


def _f(x):
  return "-" if x is None else f"{x:.2f}"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default="", help="folder for gpu_probe.json and gpu_probe.md")
  parser.add_argument("--data_dir", default="", help="CIFAR-10 in the binary layout; empty: Gaussian noise")
  parser.add_argument("--modes", default=",".join(MODES))
  parser.add_argument("--depth", type=int, default=16)
  parser.add_argument("--width", type=int, default=4)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3, help="deterministic SGD steps before the probe")
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--channels_last", action="store_true", help="torch: channels_last (as bench.py)")
  parser.add_argument("--tiny", action="store_true", help="WRN-7-1, batch 4, 8x8 noise: the CPU check")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  parser.add_argument("--state", default="", help=argparse.SUPPRESS)
  parser.add_argument("--prepare", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.prepare:
    prepare(args, args.prepare)
    return 0
  if args.worker:
    print(json.dumps(worker(args)))
    return 0
  modes = args.modes.split(",")
  unknown = sorted(set(modes) - set(MODES))
  if unknown or not args.out:
    parser.error(f"--modes names {unknown}; choose from {list(MODES)}" if unknown else "--out is required")
  common = forward(args)
  with tempfile.TemporaryDirectory() as scratch:
    state = os.path.join(scratch, "state.npz")
    prepared = subprocess.run([sys.executable, "-m", "zerodiverse.gpu_probe", *common, "--prepare", state],
                              capture_output=True, text=True, check=False)
    if prepared.returncode:
      sys.exit(f"error: preparing the symmetric state failed: {last_line(prepared.stderr)}")
    results = []
    for mode in modes:
      run = subprocess.run([sys.executable, "-m", "zerodiverse.gpu_probe", *common, "--worker", mode,
                            "--state", state], capture_output=True, text=True, check=False)
      if run.returncode:
        results.append({"mode": mode, "error": last_line(run.stderr)})
        print(f"{mode}: failed: {results[-1]['error']}", file=sys.stderr)
        continue
      results.append(json.loads(run.stdout.strip().splitlines()[-1]))
      print(f"{mode}: {results[-1]['seconds']:.1f}s", file=sys.stderr)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "gpu_probe.json"), "w") as f:
    json.dump({"args": vars(args), "results": results}, f, indent=1)
  with open(os.path.join(args.out, "gpu_probe.md"), "w") as f:
    f.write("\n".join(table(r) if "error" not in r else f"### {r['mode']}\n\nfailed: {r['error']}\n"
                      for r in results))
  return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
  sys.exit(main())
