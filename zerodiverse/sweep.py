"""Sweeps: a config with `arms` runs each arm in its own process and workdir, then prints one table.

`config.arms` maps an arm name to nested overrides of the base config ({"model": {"scheme": "he"}}). Arm A
runs in WORKDIR/A as `python -m zerodiverse.sweep WORKDIR/A` (its own process, so determinism settings
apply before its JAX backend starts), which reads the arm's config from its stdin. Re-running the sweep skips
finished arms, resumes unfinished ones and leaves alone arms another sweep is running; a failed arm is reported
and does not stop the others.

`config.grid` (optional, with or instead of `arms`) maps an axis name to {label: nested overrides}; the
arms are the cross product of the axes, named by their labels joined with "-" (e.g. "constant-rounding-s0"),
plus any explicit `arms`. `axis("model.scheme", ["constant", "he"])` builds an axis over one field with
readable labels (strings as they are, numbers as field name + value, booleans as the name or no_name).
"""

import concurrent.futures
import itertools
import json
import os
import subprocess
import sys
import threading
import time

import ml_collections

from zerodiverse import breakers, defaults, symmetry
from zerodiverse import run as zrun
from zerodiverse import workdir as workdirs
from zerodiverse.errors import ConfigError


def nested(field: str, value) -> dict:
  """{"model": {"scheme": v}} for field "model.scheme"."""
  out = value
  for part in reversed(field.split(".")):
    out = {part: out}
  return out


def number(value) -> str:
  """A number for an arm name (no '.', which config fields cannot hold): 0.01 -> 1e-02, 0.5 -> 0p5."""
  text = f"{value:g}"
  if "." in text and float(f"{value:.0e}") == value:
    return f"{value:.0e}"
  return text.replace(".", "p")


def label(field: str, value) -> str:
  leaf = field.split(".")[-1]
  if isinstance(value, bool):
    return leaf if value else f"no_{leaf}"
  if isinstance(value, (int, float)):
    return f"{leaf}{number(value)}"
  return str(value)


def axis(field: str, values, labels=None) -> dict:
  """A grid axis over one config field: {label: nested override}."""
  labels = labels or [label(field, v) for v in values]
  return {name: nested(field, v) for name, v in zip(labels, values)}


def merge(*overrides: dict) -> dict:
  """Nested overrides combined, later ones winning field by field."""
  out = {}
  for o in overrides:
    for k, v in o.items():
      out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def expand(grid: dict) -> dict:
  """{arm name: overrides} for the cross product of the grid's axes."""
  axes = [list(a.items()) for a in grid.values()]
  for name, a in zip(grid, axes):
    if not a:
      raise ConfigError(f"config.grid.{name} is empty; give at least one value")
  return {"-".join(label for label, _ in combo): merge(*(o for _, o in combo)) for combo in itertools.product(*axes)}


def arm_configs(config: ml_collections.ConfigDict) -> dict:
  """{arm name: the full config of that arm} (the base config without `arms`/`grid`, plus the arm's overrides)."""
  base = config.to_dict()
  arms = dict(expand(base.pop("grid")) if "grid" in base else {})
  for name, overrides in (base.pop("arms", None) or {}).items():
    if name in arms:
      raise ConfigError(f"config.arms.{name}: the grid already makes an arm of that name")
    arms[name] = overrides
  if not arms:
    raise ConfigError("config.arms is empty; give at least one arm, e.g. {'he': {'model': {'scheme': 'he'}}}")
  out = {}
  for name, overrides in arms.items():
    if not name.replace("_", "").replace("-", "").isalnum():
      raise ConfigError(f"config.arms.{name}: arm names may hold letters, digits, '_' and '-' only")
    arm = ml_collections.ConfigDict(base)
    _override(arm, overrides, f"config.arms.{name}")
    out[name] = arm
  return out


def _override(cfg: ml_collections.ConfigDict, overrides: dict, where: str) -> None:
  for key, value in overrides.items():
    if key not in cfg:
      dotted = f"{where}.{key}".split(".", 3)[-1]
      if dotted in defaults.RENAMED:
        raise ConfigError(f"{where}.{key}: {defaults.RENAMED[dotted]}")
      raise ConfigError(f"{where}.{key}: the base config has no field {key!r}; check the spelling")
    if isinstance(value, dict):
      _override(cfg[key], value, f"{where}.{key}")
      continue
    try:
      cfg[key] = value  # ConfigDict checks the type against the base field's
    except TypeError:
      raise ConfigError(f"{where}.{key}={value!r}: the base config's field is a {type(cfg[key]).__name__}; "
                        "give a value of that type") from None


def run(config: ml_collections.ConfigDict, workdir: str, workers: int = 1) -> int:
  """Runs every arm not yet finished, `workers` at a time; prints and saves the table; 0 if all succeeded.

  An arm whose workdir another process holds (a sweep started twice) is reported as running, not started
  again. Each arm's process stops when this one goes (it watches its stdin, a pipe from here), so a killed
  sweep leaves no arm training on its own.
  """
  workdirs.make(workdir)
  arms = arm_configs(config)
  for arm in arms.values():
    zrun.check_config(arm)

  def launch(name):
    arm_dir = os.path.join(workdir, name)
    if os.path.exists(os.path.join(arm_dir, "summary.json")):
      return name, "done before", 0.0
    holder = workdirs.in_use(arm_dir) if os.path.isdir(arm_dir) else None
    if holder:
      return name, f"running in {holder}, not started again", 0.0
    workdirs.make(arm_dir)
    t0 = time.time()
    with open(os.path.join(arm_dir, "log.txt"), "a") as log:
      child = subprocess.Popen([sys.executable, "-m", "zerodiverse.sweep", arm_dir], stdin=subprocess.PIPE,
                               stdout=log, stderr=subprocess.STDOUT)
      child.stdin.write((arms[name].to_json() + "\n").encode())
      child.stdin.flush()
      code = child.wait()  # stdin stays open until then: its end tells the arm this process is gone
      child.stdin.close()
    return name, ("ok" if code == 0 else f"FAILED (exit {code}, see {arm_dir}/log.txt)"), time.time() - t0

  print(f"Sweep of {len(arms)} arms in {workdir}, {workers} at a time.", flush=True)
  status = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
    for name, outcome, seconds in pool.map(launch, arms):
      status[name] = outcome
      print(f"  {name}: {outcome}" + (f" in {seconds:.0f}s" if seconds else ""), flush=True)
      if outcome.startswith("FAILED"):
        print("    " + _last_line(os.path.join(workdir, name, "log.txt")), flush=True)
  table = summary_table(workdir, arms, status)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table + "\n")
  print(table, flush=True)
  return 0 if all(not s.startswith("FAILED") for s in status.values()) else 1


def _last_line(path: str) -> str:
  with open(path, errors="replace") as f:
    lines = [line.strip() for line in f.read().replace("\r", "\n").splitlines() if line.strip()]
  return lines[-1] if lines else "(no output)"


def summary_table(workdir: str, arms: dict, status: dict) -> str:
  """A Markdown table of every arm's summary.json."""
  header = ("| arm | init | breakers | final acc | best acc | distinct channels (min-max) "
            "| breaking step median / max (never) | steps | wall s | fingerprint |")
  lines = [header, "|" + "---|" * (header.count("|") - 1)]
  for name, arm in arms.items():
    path = os.path.join(workdir, name, "summary.json")
    if not os.path.exists(path):
      lines.append(f"| {name} | {defaults.init_of(arm.model)} | {_breakers(arm)} | {status.get(name, 'not run')} | | | | | | |")
      continue
    with open(path) as f:
      s = json.load(f)
    channels = s["distinct_channels"].values()
    b = s["symmetry_breaking"]
    lines.append(f"| {name} | {defaults.init_of(arm.model)} | {_breakers(arm)} | {s['final_test_accuracy']:.4f} | {s['best_test_accuracy']:.4f} "
                 f"| {min(channels)}-{max(channels)} | {symmetry.format_step(b['median'])} / {symmetry.format_step(b['max'])} ({b['never']} of {b['layers']}) "
                 f"| {s['steps']} | {s['wall_seconds']:.0f} "
                 f"| {s['param_fingerprint'][:12]} |")
  return "\n".join(lines)


def _breakers(arm) -> str:
  """The breakers switched on in an arm, e.g. 'init_noise=0.001, rounding_noise'; 'none' if none."""
  on = [f"{k}={v:.3g}" if k == "rounding_noise" else f"{k}={v:g}" for k, v in breakers.switched_on(arm.breaker)]
  return ", ".join(on) or "none"


def _stop_when_parent_goes() -> None:
  """Reads stdin to its end (the sweep process closing its pipe, or dying), then ends this process."""
  while os.read(sys.stdin.fileno(), 1 << 16):  # unbuffered: no stream lock held at interpreter exit
    pass
  print("error: the sweep that started this arm is gone; rerun the sweep to resume it", file=sys.stderr,
        flush=True)
  os._exit(3)  # pylint: disable=protected-access  (no cleanup: as if killed; the run resumes from its checkpoint)


def run_arm(arm_dir: str) -> int:
  """Trains the arm whose config comes as one JSON line on stdin (the child process of `run`)."""
  config = ml_collections.ConfigDict(json.loads(sys.stdin.buffer.readline()))
  threading.Thread(target=_stop_when_parent_goes, daemon=True).start()
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  return zrun.main(config, arm_dir)


if __name__ == "__main__":
  sys.exit(run_arm(sys.argv[1]))
