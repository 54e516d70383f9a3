"""The report on a toy sweep's files: per-k eps series over seeds, controls beside the grid, the figure
registry, train loss and dead units in the table. The arms are written by hand, so no training runs here."""

import json

import pytest

from zerodiverse import report

KS, EPS, SEEDS = (1, 4), (0.0, 1e-3, 1e-1), (0, 1)


def write_arm(root, name, k, width, eps, seed):
  """An arm folder as a finished run leaves it; accuracy and dead count encode (k, eps, seed), loss the seed."""
  config = {"seed": seed, "model": {"name": "mlp", "hidden_init": "he_normal", "width": width, "unique_features": k},
            "breaker": {"init_noise": eps, "dropout": 0.0, "grad_noise": 0.0, "rounding_noise": False}}
  acc = 0.5 + 0.1 * (k or width) / 4 + eps + 0.01 * seed
  weights = {"neglog_corr_forward": 0.5, "neglog_corr_backward": 0.5, "neglog_corr_kernel": 0.0,
             "distinct": k or width, "spread": 0.5}
  layers = {"hidden": weights, "head": weights}
  records = [{"split": "train", "step": 10, "loss": 9.0, "accuracy": 0.1},
             {"split": "train", "step": 20, "loss": 1.0 + seed, "accuracy": 0.2},
             {"split": "test", "step": 20, "loss": 1.0, "accuracy": acc}]
  records += [{"split": "symmetry", "step": s, "layers": layers, "diversity": -1.0,
               "activations": {"output": {"act_var": 1.0, "act_var_rel": 0.1, "dead": float(seed + k),
                                          "func_spread": 0.5, "func_distinct": k or width}}}
              for s in (0, 20)]
  summary = {"final_test_accuracy": acc, "best_test_accuracy": acc, "steps": 20, "wall_seconds": 1.0,
             "param_fingerprint": f"{name:0<12}", "distinct_channels": {"hidden": k or width, "head": k or width},
             "symmetry_breaking_step": {"output": 0}, "functional_channels": {"output": k or width},
             "symmetry_breaking": {"median": 0, "max": 0, "never": 0, "layers": 1}, "symmetry_break_epoch": None,
             "data": "made-up digits"}
  arm = root / name
  arm.mkdir()
  (arm / "config.json").write_text(json.dumps(config))
  (arm / "summary.json").write_text(json.dumps(summary))
  (arm / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(name="toy_sweep")
def fixture_toy_sweep(tmp_path):
  for s in SEEDS:
    for k in KS:
      for e in EPS:
        write_arm(tmp_path, f"seed{s}-eps{e:g}-k{k}", k, 8, e, s)
      write_arm(tmp_path, f"seed{s}-width{k}", 0, k, 0.0, s)
  return tmp_path


def test_eps_series_are_per_k_with_every_seed_and_leave_the_controls_out(toy_sweep):
  series = report.eps_series(report.load(str(toy_sweep)))
  assert sorted(series) == [("unique_features=1", "init_noise"), ("unique_features=4", "init_noise")]
  for (label, _), points in series.items():
    assert [e for e, _ in points] == list(EPS)  # eps = 0 is the same k's arms without noise
    for _, arms in points:
      assert sorted(a["config"]["seed"] for a in arms) == list(SEEDS)
      assert {f"unique_features={a['config']['model']['unique_features']}" for a in arms} == {label}


def test_toy_cells_put_each_control_beside_its_k(toy_sweep):
  done = [a for a in report.load(str(toy_sweep)) if a["summary"]]
  ks, columns, cells = report.toy_cells(done)
  assert ks == list(KS) and columns == [*EPS, "width k"]
  for k in KS:
    assert {(a["config"]["model"]["width"], a["config"]["model"]["unique_features"]) for a in cells[k, "width k"]} \
        == {(k, 0)}
    assert len(cells[k, 1e-3]) == len(SEEDS)


def test_report_table_has_train_loss_and_dead_units_and_every_registered_figure(toy_sweep, monkeypatch):
  drawn = []
  extra = report.Figure("extra.png", "An added figure", lambda sweep, path: drawn.append((len(sweep.done), path)))
  monkeypatch.setattr(report, "FIGURES", report.FIGURES + (extra,))
  text = open(report.write(str(toy_sweep))).read()
  row = next(line for line in text.splitlines() if line.startswith("| eps0.001-k4 |"))
  assert "| 1.5000 ± 0.7071 |" in row  # train loss: the last logged window of seeds 0 and 1 (1.0 and 2.0)
  assert "| 4, 5 |" in row  # dead units per seed
  assert drawn == [(len(SEEDS) * len(KS) * (len(EPS) + 1), str(toy_sweep / "extra.png"))]
  assert "## An added figure" in text and "(extra.png)" in text
  for file in ("accuracy.png", "symmetry_over_time.png", "vs_eps.png", "toy_grid.png", "toy_over_time.png"):
    assert (toy_sweep / file).stat().st_size > 1000, file
  assert not (toy_sweep / "leakynet_grid.png").exists()  # its `applies` says no
