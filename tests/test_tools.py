"""tools/model_table and tools/benchmark: their JSON and the numbers in it."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tool(*args):
  proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout.strip().splitlines()[-1]


def vivit_fe_macs(frames, size, patch, dim, mlp, spatial, temporal, classes):
  """Multiply-adds of ViViT model 2 counted by hand (matmuls only)."""
  pt, ph, pw = patch
  steps, tokens = frames // pt, (size // ph) * (size // pw)

  def layer(n):  # q, k, v, out projections + QK^T + AV + MLP
    return 4 * n * dim * dim + 2 * n * n * dim + 2 * n * dim * mlp

  embed = steps * tokens * pt * ph * pw * 3 * dim
  return (embed + steps * spatial * layer(tokens + 1)
          + temporal * layer(steps + 1) + dim * classes)


@pytest.fixture(scope="module")
def table():
  return {r["config"]: r for r in json.loads(run_tool(
      "tools.model_table", "--format=json", "--only=vivit_factorized"))}


def test_model_table_k400_matches_the_paper(table):
  row = table["vivit_factorized:k400"]
  assert row["model"] == "vivit_factorized"
  assert row["input_shape"] == [32, 224, 224, 3]
  assert row["params"] == pytest.approx(115.1e6, rel=0.01)   # ViViT Tab. 2
  assert row["gflops"] == pytest.approx(284.4, rel=0.05)     # ViViT Tab. 2
  # No padded convolutions: XLA's count agrees with the full count (within
  # the bfloat16 paper config's dtype converts, which XLA counts: 1.1%).
  assert row["xla_gflops"] == pytest.approx(row["gflops"], rel=0.02)


def test_model_table_small_config_counts_by_hand(table):
  row = table["vivit_factorized"]
  assert row["input_shape"] == [8, 32, 32, 3]
  macs = vivit_fe_macs(8, 32, (2, 8, 8), 64, 256, 2, 2, 8)
  # XLA also counts softmax, norms and GELU: a few percent over the matmuls.
  assert macs / 1e9 <= row["gflops"] <= 1.1 * macs / 1e9


def test_benchmark_prints_one_json_line_with_consistent_figures():
  out = json.loads(run_tool(
      "tools.benchmark", "--config=configs/vivit_factorized.py", "--steps=3",
      "--warmup=1", "--config.batch_size=8", "--config.num_devices=1"))
  for key in ("config", "device_kind", "device_count", "batch_size",
              "clips_per_sec", "median_step_ms", "compile_seconds",
              "gflops_per_clip", "mfu", "peak_memory_bytes"):
    assert key in out
  assert out["batch_size"] == 8 and out["device_count"] == 1
  assert out["clips_per_sec"] == pytest.approx(
      8 / (out["median_step_ms"] / 1e3), rel=1e-3)
  # A train step is about 3x the forward pass (forward + 2x backward).
  forward = 2 * vivit_fe_macs(8, 32, (2, 8, 8), 64, 256, 2, 2, 8) / 1e9
  assert 2.5 * forward <= out["gflops_per_clip"] <= 4.5 * forward
  assert out["mfu"] is None  # no known peak for a CPU


def test_kernel_gmacs_counts_a_scanned_encoder_like_the_unrolled_one():
  from vidjax import costs
  from vidjax.registry import build_model
  base = dict(name="vivit_spatiotemporal", patch_size=(2, 8, 8),
              hidden_size=32, num_heads=2, mlp_dim=64, num_layers=3)
  shape = (4, 16, 16, 3)
  unrolled = costs.kernel_gmacs(build_model(base, 5), shape)
  scanned = costs.kernel_gmacs(build_model(dict(base, scan_layers=True), 5),
                               shape)
  assert unrolled > 0 and abs(scanned - unrolled) <= 1e-9 * unrolled


def test_published_figures_name_real_configs_and_match_within_tolerance():
  """Every published row names a config variant that exists; the params of
  the ones counted exactly in the papers are within 1.5% of vidjax's."""
  from tools import model_table
  papers = model_table.published()
  names = {name: config for name, config in model_table.config_rows()}
  assert len(papers) >= 18 and set(papers) <= set(names)
  for name in ("timesformer:k400", "vivit_factorized:k400", "tsm:k400",
               "slowfast:8x8"):
    r = model_table.with_paper(model_table.row(name, names[name], False),
                               papers[name])
    assert abs(r["params_rel_diff"]) < 0.015, (name, r["params_rel_diff"])
    assert papers[name]["paper"] and papers[name]["where"]
