"""How fast a tiny difference between two copies of a network grows in training: a Lyapunov-style exponent.

  python -m zerodiverse.lyapunov --config configs/<exp>.py[:variant] --workdir DIR [--eps 1e-6] [--every 10]
      [--arm NAME] [--config.field=value ...]

A network (`a`, the run the config describes) and its twin (`b`) start from the same state; the twin's
parameters are moved by eps * N(0, 1) / sqrt(fan_in) (inits.perturb, key stream "twin"). Both then train on
the same batches with the same step keys, so the same dropout masks and rounding-noise orders: under
deterministic XLA the only difference between them is the perturbation and what training makes of it (`a`
ends bitwise where the ordinary run of the config does). Every `--every` steps, per layer:
- `weights`: ||W_b - W_a||_F for every kernel (and `all`, over every parameter);
- `outputs`: ||x_b - x_a|| / ||x_a|| on a fixed test-set batch (eval mode), for the representation each
  stage passes on (symmetry.REPRESENTATION);
- `weights_across`, `outputs_across`: the same for the part of the difference that differs between channels
  (the difference minus its mean over the feature channels, as symmetry.channel_spread counts them): a
  perturbation shared by all channels moves the network without breaking its symmetry, and is not in these.
The growth rate of a distance d over a phase is the least-squares slope of ln d against the step (per step;
d grows as exp(rate * steps)), over the records before the first learning-rate drop and over those from it
on. A difference that has grown to the size of the network itself stops growing, so a phase's rate is an
average over growth and saturation; the `early` rate is fitted only up to the record at which the distance has
grown GROWTH-fold from step 0 (the exponential phase). The figure shows which is which.

For a ConstNet with no breaker, `a` stays symmetric and the distance is how far the twin's channels have
moved apart: the rate at which symmetry breaking grows. A perturbation that float32 rounding would swallow
is refused: every kernel must have most of its elements moved.

DIR holds config.json (the config, with `twin`: eps, every, arm), data.json, divergence.jsonl (one record
per measurement), checkpoints/ (both states; a rerun resumes, bitwise), and at the end lyapunov.json (rates,
per-layer moved fractions, both fingerprints, versions, device, determinism, wall time), lyapunov.md and
divergence.png.
"""

import math
import os
import sys
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from zerodiverse import cli, data, models, process, record, report, rng, run, sweep, symmetry
from zerodiverse import workdir as workdirs
from zerodiverse.errors import ConfigError, WorkdirError
from zerodiverse.inits import perturb
from zerodiverse.train import optim
from zerodiverse.train.checkpoint import Checkpointer
from zerodiverse.train.metrics_log import MetricsLog
from zerodiverse.train.trainer import JaxBackend
import matplotlib.pyplot as plt  # after zerodiverse.report, which selects the Agg backend

_EPS = flags.DEFINE_float("eps", 1e-6, "The twin's perturbation: eps * N(0, 1) / sqrt(fan_in) on every parameter.")
_EVERY = flags.DEFINE_integer("every", 10, "Steps between two measurements of the distances.")
_ARM = flags.DEFINE_string("arm", "", "For a sweep config: the arm to measure.")

MIN_MOVED = 0.5  # the smallest fraction of a kernel's elements the perturbation must change in float32
KINDS = ("weights", "weights_across", "outputs", "outputs_across")
LABELS = {"weights": "||W_b - W_a||_F", "weights_across": "||D - mean_c D||_F, D = W_b - W_a",
          "outputs": "||x_b - x_a|| / ||x_a||", "outputs_across": "||D - mean_c D|| / ||x_a||, D = x_b - x_a"}
GROWTH = 1e3  # the `early` rate is fitted up to the first record at which a distance has grown this much


def growth_rate(steps, distances):
  """The least-squares slope of ln(distance) against step over the points with a finite positive distance;
  None with fewer than two such points at distinct steps."""
  steps, d = np.asarray(steps, np.float64), np.asarray(distances, np.float64)
  keep = np.isfinite(d) & (d > 0)
  if len(np.unique(steps[keep])) < 2:
    return None
  return float(np.polyfit(steps[keep], np.log(d[keep]), 1)[0])


def first_drop(lrs) -> int:
  """The first step whose learning rate is below the first step's (len(lrs) if the rate never drops)."""
  lower = np.flatnonzero(np.asarray(lrs) < lrs[0])
  return int(lower[0]) if lower.size else len(lrs)


def early_points(points: list, factor: float = GROWTH) -> list:
  """The (step, distance) points up to the first whose distance is `factor` times the first one's: the
  exponential phase, before the difference is large enough to saturate (all of them if it never gets there)."""
  for i, (_, d) in enumerate(points):
    if points[0][1] > 0 and d >= factor * points[0][1]:
      return points[:i + 1]
  return points


def phase_rates(records: list, drop: int) -> dict:
  """{kind: {layer: {phase: rate}}} from divergence records: the phases before the first drop and from it on
  (the record at the drop step is in both), and `early`, the first GROWTH-fold growth from step 0."""
  spans = {"before_drop": lambda s: s <= drop, "after_drop": lambda s: s >= drop}
  out = {}
  for kind in KINDS:
    layers = sorted({name for r in records for name in r[kind]})
    out[kind] = {}
    for layer in layers:
      series = [(r["step"], r[kind][layer]) for r in records if layer in r[kind]]
      rates = {phase: growth_rate(*zip(*p)) if (p := [x for x in series if inside(x[0])]) else None
               for phase, inside in spans.items()}
      early = early_points(series)
      rates["early"], rates["early_until"] = growth_rate(*zip(*early)), early[-1][0]
      out[kind][layer] = rates
  return out


def moved_fractions(a, b, head: str = "head") -> dict:
  """{kernel layer: fraction of its elements that differ between the two parameter trees}."""
  kb = {layer: k for layer, k, _ in symmetry.kernels(b, head)}
  return {layer: float(np.mean(np.asarray(k) != np.asarray(kb[layer]))) for layer, k, _ in symmetry.kernels(a, head)}


def make_distances(model, head: str = "head"):
  """A jitted `(state_a, state_b, images) -> {kind: {layer: distance}}` for the KINDS."""

  def norm(x):
    return jnp.sqrt(jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))))

  def relative(delta, x):
    return norm(delta) / jnp.maximum(norm(x), jnp.finfo(jnp.float32).tiny)

  def distances(a, b, images):
    kb = {layer: k for layer, k, _ in symmetry.kernels(b["params"], head)}
    out = {kind: {} for kind in KINDS}
    for layer, k, axis in symmetry.kernels(a["params"], head):
      out["weights"][layer] = norm(kb[layer] - k)
      out["weights_across"][layer] = norm(symmetry.across_channels(kb[layer] - k, axis))
    out["weights"]["all"] = jnp.sqrt(sum(jnp.sum(jnp.square(x - y)) for x, y in
                                         zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]))))
    xa = symmetry.intermediates(model, a["params"], a["batch_stats"], images)
    xb = symmetry.intermediates(model, b["params"], b["batch_stats"], images)
    for name, x in xa.items():
      if symmetry.is_representation(name):
        out["outputs"][name] = relative(xb[name] - x, x)
        out["outputs_across"][name] = relative(symmetry.across_channels(xb[name] - x, -1), x)
    return out

  return jax.jit(distances)


class Twins:
  """The two states behind one JAX backend (its batches, step keys and learning rates), checkpointed together.

  Has the backend's restore / open_checkpoints, so run.restore_latest resumes it past a damaged checkpoint."""

  def __init__(self, backend, eps: float):
    self.backend = backend
    self.a = backend.state
    copy = jax.tree.map(lambda x: jnp.array(x, copy=True), backend.state)  # the step donates its input
    self.b = {**copy, "params": perturb(rng.stream(backend.key, "twin"), copy["params"], eps)}

  def train_step(self, step: int) -> tuple:
    metrics = []
    for name in ("a", "b"):
      self.backend.state = getattr(self, name)
      metrics.append(self.backend.train_step(step))
      setattr(self, name, self.backend.state)
    return tuple(metrics)

  def _tree(self) -> dict:
    return {"a": self.a, "b": self.b, "rng": jax.random.key_data(self.backend.key)}

  def save(self, ckpts, step: int, wall_seconds: float) -> None:
    ckpts.save(step, {**self._tree(), "wall_seconds": np.asarray(wall_seconds, np.float64)})

  def restore(self, ckpts, step: int) -> float:
    saved = ckpts.restore(step, like={**self._tree(), "wall_seconds": np.asarray(0.0, np.float64)})
    if not np.array_equal(saved["rng"], jax.random.key_data(self.backend.key)):
      raise WorkdirError(f"{ckpts.path(step)}: step {step} was saved with another seed's keys")
    self.a, self.b = saved["a"], saved["b"]
    return float(saved["wall_seconds"])

  open_checkpoints = staticmethod(Checkpointer)


def twin_config(config, eps: float, every: int, arm: str = "") -> ml_collections.ConfigDict:
  """The config of one arm (a sweep config needs `arm`), with the instrument's settings as `config.twin`."""
  if "arms" in config or "grid" in config:
    arms = sweep.arm_configs(config)
    if arm not in arms:
      raise ConfigError(f"--arm={arm!r}: this config is a sweep; measure one of its arms, --arm=NAME with NAME "
                        f"one of {', '.join(arms)}")
    config = arms[arm]
  elif arm:
    raise ConfigError(f"--arm={arm!r}: this config has no arms; leave --arm out")
  if config.get("backend", "jax") != "jax":
    raise ConfigError(f"config.backend={config.backend!r}: the twins are trained by the JAX backend, whose "
                      "steps are keyed; set --config.backend=jax")
  if config.parallel.get("distributed", False):
    raise ConfigError("config.parallel.distributed=True: the twins run in one process; set it to False")
  if not (math.isfinite(eps) and eps > 0):
    raise ConfigError(f"--eps={eps}: the twin's perturbation must be a finite number > 0")
  if every < 1:
    raise ConfigError(f"--every={every}: must be >= 1")
  out = ml_collections.ConfigDict(config.to_dict())
  out.twin = ml_collections.ConfigDict({"eps": float(eps), "every": int(every), "arm": arm})
  return out


def check_moved(moved: dict, eps: float) -> None:
  """Refuses a perturbation that float32 rounding swallows in some kernel."""
  low = {layer: f for layer, f in moved.items() if f < MIN_MOVED}
  if low:
    layer, fraction = min(low.items(), key=lambda kv: kv[1])
    raise ConfigError(f"--eps={eps:g}: the perturbation moves only {fraction:.1%} of the elements of {layer} in "
                      f"float32 ({len(low)} kernel(s) below {MIN_MOVED:.0%}); choose a larger --eps")


def measure(config, workdir: str) -> dict:
  """Trains the twins of `config` (a twin_config) in `workdir`, resuming if it holds a checkpoint; returns
  lyapunov.json's contents."""
  workdir = os.path.abspath(workdir)
  run.check_config(config)
  workdirs.check_free(workdir)
  workdirs.claim(config, workdir, write=False)
  summary_path = os.path.join(workdir, "lyapunov.json")
  done = workdirs.read_json(summary_path, "the summary of finished twins")
  if done is not None:
    print(f"{workdir} holds finished twins; {summary_path} is kept as it was. Choose a new --workdir to measure "
          "again.", flush=True)
    return done
  dataset = data.load(config.data)
  run.check_sizes(config, dataset)
  data_record = workdirs.data_record(dataset)
  workdirs.claim_data(workdir, data_record, write=False)
  stream = dataset.train_stream(config.seed, config.train.batch_size, config.data)
  num_steps = run.total_steps(config.train, stream.steps_per_epoch)
  backend = JaxBackend(config, dataset, stream, num_steps)
  twins = Twins(backend, config.twin.eps)
  moved = moved_fractions(twins.a["params"], twins.b["params"])
  check_moved(moved, config.twin.eps)
  images = next(dataset.eval_batches(config.train.probe_batch_size))["image"]
  distances = make_distances(models.for_run(config, dataset.num_classes))

  workdirs.make(workdir)
  with workdirs.Lock(workdir):
    workdirs.claim(config, workdir)
    workdirs.claim_data(workdir, data_record)
    log = MetricsLog(os.path.join(workdir, "divergence.jsonl"))

    def measurement(step, metrics=None):
      d = jax.device_get(distances(twins.a, twins.b, images))
      out = {"step": step, "lr": backend.lr(max(step - 1, 0)),  # the rate of the step that led here
             **{kind: {k: float(v) for k, v in d[kind].items()} for kind in KINDS}}
      if metrics:
        out.update({f"loss_{name}": float(backend.host(m["loss"])) for name, m in zip("ab", metrics)})
      return out

    ckpts, start, wall_before = run.restore_latest(twins, twins.open_checkpoints(
        os.path.join(workdir, "checkpoints")), workdir)
    if start:
      print(f"Resuming {workdir} from step {start} of {num_steps}.", flush=True)
    log.truncate_after(start if start else -1)  # from step 0 (killed before its first checkpoint): all again
    if start == 0:
      log.write({**measurement(0), "moved": moved})
    t0, finite, last_good = time.time(), None, start
    every, save_every = config.twin.every, config.train.checkpoint_every
    try:
      for step in range(start, num_steps):
        metrics = twins.train_step(step)
        ok = metrics[0]["finite"] & metrics[1]["finite"]
        finite = ok if finite is None else finite & ok
        done = step + 1
        if run.itstime(done, every, num_steps) or run.itstime(done, save_every, num_steps):
          run.stop_if_diverged(backend, finite, ckpts, last_good, done, workdir, "loss or gradients of the twins",
                               "lower config.train.lr or --eps")
          last_good = done
        if run.itstime(done, every, num_steps):
          log.write(measurement(done, metrics))
        if run.itstime(done, save_every, num_steps):
          twins.save(ckpts, done, wall_before + time.time() - t0)
    finally:
      ckpts.close()  # a save under way completes, so that an interrupted run resumes from it
    records = log.records()
    summary = twins_summary(config, twins, backend, records, num_steps, stream.steps_per_epoch, dataset.source,
                            wall_before + time.time() - t0)
    record.write_json(summary_path, summary)
    with open(os.path.join(workdir, "lyapunov.md"), "w") as f:
      f.write(table(summary))
    figure(records, summary, os.path.join(workdir, "divergence.png"))
  return summary


def twins_summary(config, twins, backend, records, num_steps, steps_per_epoch, source, wall) -> dict:
  drop = first_drop(optim.learning_rates(config.train, num_steps))
  ends = {"start": records[0]}
  ends["drop"] = min(records, key=lambda r: abs(r["step"] - drop))
  ends["end"] = records[-1]
  return {
      "eps": config.twin.eps, "every": config.twin.every, "arm": config.twin.arm,
      "steps": num_steps, "steps_per_epoch": steps_per_epoch, "first_drop_step": drop,
      "rates_per_step": phase_rates(records, drop),
      "distances": {where: {kind: r[kind] for kind in KINDS} | {"step": r["step"]} for where, r in ends.items()},
      "moved": records[0].get("moved"),
      "param_fingerprint": {"a": record.param_fingerprint(jax.device_get(twins.a["params"])),
                            "b": record.param_fingerprint(jax.device_get(twins.b["params"]))},
      "model": config.model.to_dict(), "breaker": config.breaker.to_dict(), "seed": config.seed,
      "data": source, "determinism": backend.determinism(), "versions": record.versions(),
      "device": backend.device(), "wall_seconds": wall,
  }


def _rate(value) -> str:
  return "-" if value is None else f"{1000 * value:+.2f}"


def table(summary: dict) -> str:
  """lyapunov.md: per layer, the distance at the start, at the first drop and at the end, and the rates."""
  d, rates = summary["distances"], summary["rates_per_step"]
  lines = [f"Twins at eps {summary['eps']:g}, {summary['steps']} steps, first lr drop at step "
           f"{summary['first_drop_step']}; rates are d ln(distance) / d step x 1000 (least squares); the early "
           f"rate is fitted until the step at which the distance has grown {GROWTH:g}-fold. "
           f"Data: {summary['data']}.", ""]
  for kind, what in LABELS.items():
    lines += [f"{kind}: {what}", "",
              f"| layer | step {d['start']['step']} | step {d['drop']['step']} | step {d['end']['step']} | "
              "early rate (until step) | rate before drop | rate after drop |", "|---|---|---|---|---|---|---|"]
    for layer in sorted(rates[kind], key=report.natural):
      r = rates[kind][layer]
      cells = [f"{d[w][kind].get(layer, float('nan')):.3g}" for w in ("start", "drop", "end")]
      lines.append(f"| {layer} | {' | '.join(cells)} | {_rate(r['early'])} ({r['early_until']}) | "
                   f"{_rate(r['before_drop'])} | {_rate(r['after_drop'])} |")
    lines.append("")
  return "\n".join(lines)


def figure(records: list, summary: dict, path: str) -> None:
  fig, axes = plt.subplots(2, 2, figsize=(12, 9))
  steps = [r["step"] for r in records]
  for ax, kind in zip(axes.flat, KINDS):
    layers = sorted({k for r in records for k in r[kind]}, key=report.natural)
    for i, layer in enumerate(layers):
      values = [r[kind].get(layer, np.nan) for r in records]
      ax.plot(steps, np.where(np.asarray(values) > 0, values, np.nan), label=layer, lw=1, **report.line_style(i))
    ax.axvline(summary["first_drop_step"], color="grey", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(LABELS[kind])
    ax.legend(fontsize=6, ncol=2)
  report.save_figure(fig, f"Twins at eps {summary['eps']:g}: distance per layer (dotted: first lr drop)",
                     summary["data"], path)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}; overrides look like --config.train.steps=100")
  logging.set_verbosity(logging.WARNING)
  def job():
    config = cli.CONFIG.value
    cli.length_from_command_line(config, sys.argv[1:])
    config = twin_config(config, _EPS.value, _EVERY.value, _ARM.value)
    process.start(config)
    return measure(config, cli.WORKDIR.value)

  summary = run.user_facing(job)
  if summary is None:
    return 2
  rates = summary["rates_per_step"]["weights"]["all"]
  print(f"twins: ||theta_b - theta_a|| grows at {_rate(rates['early'])} / 1000 steps at first, "
        f"{_rate(rates['before_drop'])} over all steps before the first lr drop and {_rate(rates['after_drop'])} "
        f"after it; {cli.WORKDIR.value}/lyapunov.md has every layer")
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
