"""zerodiverse.bench: the analytic FLOP count, and a --small run of a JAX and a torch mode end to end."""

import argparse
import json

import jax
import jax.numpy as jnp

from zerodiverse import bench
from zerodiverse.models.constnet import ConstNet


def test_flop_count_by_hand_and_against_xla():
  # WRN-7-1 on 8x8x3: stem 3->16 at 8x8; 16->16 at 8x8; 16->32 at 4x4 (+1x1); 32->64 at 2x2 (+1x1); head.
  by_hand = (2 * 9 * 3 * 16 * 64 + 2 * 9 * 16 * 16 * 64 + 2 * 9 * 16 * 32 * 16 + 2 * 16 * 32 * 16
             + 2 * 9 * 32 * 64 * 4 + 2 * 32 * 64 * 4 + 2 * 64 * 10)
  assert bench.constnet_flops(7, 1, image_size=8) == by_hand
  assert bench.train_flops(7, 1, image_size=8) == 3 * by_hand
  # XLA's own count of the forward is a little lower (it skips the padding taps of the 3x3 convs and adds
  # BN/ReLU): the analytic count must be within that margin, not off by a factor.
  model = ConstNet(num_classes=10, depth=7, width=2, scheme="he")
  x = jnp.zeros((1, 16, 16, 3))
  variables = model.init(jax.random.key(0), x)
  cost = jax.jit(model.apply).lower(variables, x).compile().cost_analysis()
  xla = (cost[0] if isinstance(cost, list) else cost)["flops"]
  assert 0.8 < xla / bench.constnet_flops(7, 2, image_size=16) < 1.0


def test_peak_table():
  assert bench.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert bench.peak_flops("NVIDIA H100 PCIe", "float32") == 51e12
  assert bench.peak_flops("cpu", "float32") is None


def test_small_run_writes_json_for_jax_and_torch(tmp_path, monkeypatch):
  monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the torch worker: no spinning threads on shared cores
  out = tmp_path / "bench.json"
  assert bench.main(["--small", "--modes", "jax_deterministic,torch_nondeterministic_allowed", "--out", str(out)]) == 0
  report = json.loads(out.read_text())
  results = {r["mode"]: r for r in report["results"]}
  assert set(results) == {"jax_deterministic", "torch_nondeterministic_allowed"}
  for r in results.values():
    assert r["images_per_second"] > 0 and len(r["window_seconds"]) == 2
    assert r["peak_memory_bytes"] is None and r["mfu"] is None  # CPU: no device memory stats, no peak FLOP/s
    assert r["train_flops_per_image"] == bench.train_flops(7, 1, image_size=8)
  assert results["jax_deterministic"]["compile_seconds"] > 0
  assert "--xla_gpu_deterministic_ops=true" in results["jax_deterministic"]["flags"]["xla_flags"]
  assert results["torch_nondeterministic_allowed"]["flags"]["cudnn_benchmark"] is True
  assert "jax" in report["versions"] and "torch" in report["versions"]


def test_breaker_settings_expand_the_jax_modes_and_bad_ones_are_refused(capsys):
  assert bench.breaker_settings("none") == {}
  assert bench.breaker_settings("reorder:partials=8,data_grad=1") == {
      "rounding_noise": True, "rounding_noise_mode": "reorder", "rounding_noise_partials": 8,
      "rounding_noise_data_grad": 1}
  assert bench.breaker_settings("ulp:scale=0.5")["rounding_noise_scale"] == 0.5
  grid = bench.cases(argparse.Namespace(small=False, models="10-1", batches="16", dtypes="float32", steps=1,
                                        windows=1, warmup=0, modes="jax_deterministic,torch_nondeterministic_allowed",
                                        breakers="none;ulp:scale=1"))
  assert [(c["mode"], c["breaker"]) for c in grid] == [
      ("jax_deterministic", "none"), ("jax_deterministic", "ulp:scale=1"), ("torch_nondeterministic_allowed", "none")]
  assert bench.main(["--models", "10-1", "--modes", "jax_deterministic", "--breakers", "ulp:scale=0.01"]) == 2

  assert "rounding_noise_scale=0.01" in capsys.readouterr().err
