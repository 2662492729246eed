"""tools/benchmark_peer: vidjax vs PyTorch eager on one VideoMAE train step.

Tiny sizes and one timed step: the report's fields exist and are positive,
both sides build the same model (equal parameter counts), and the vidjax
FLOPs come from the whole unrolled train step (at least forward + backward,
3x the forward's matmul FLOPs). No timing is judged.
"""
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tools import benchmark_peer  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

TINY = dict(hidden=32, layers=2, heads=2, frames=4, crop=32, patch=8,
            batch=2, classes=8, steps=1, warmup=1, matmul_size=128)


def test_tiny_run_reports_positive_fields():
  report = json.loads(json.dumps(benchmark_peer.run(**TINY)))
  for key in ("vidjax_ms", "torch_ms", "ratio", "vidjax_gflops_per_s",
              "xla_matmul_gflops_per_s", "fraction_of_xla_matmul",
              "torch_matmul_gflops_per_s", "vidjax_gflop_per_step"):
    assert isinstance(report[key], float) and report[key] > 0, key
  assert report["ratio"] == pytest.approx(
      report["torch_ms"] / report["vidjax_ms"], rel=1e-3)
  assert report["vidjax_params"] == report["torch_params"] > 0
  assert set(report["versions"]) >= {"jax", "flax", "torch", "transformers"}

  # Forward matmuls of the tiny model (multiply-adds, per clip): the XLA
  # count of the whole step must hold forward + backward (>= 3x, 2 FLOPs each).
  from vidjax import costs
  from vidjax.registry import build_model
  model = build_model(dict(name="videomae", patch_size=(2, 8, 8),
                           hidden_size=32, num_layers=2, num_heads=2,
                           mlp_dim=128), 8)
  forward_flops = 2 * costs.kernel_gmacs(model, (4, 32, 32, 3)) * 2  # batch 2
  assert report["vidjax_gflop_per_step"] >= 3 * forward_flops * 0.95


def test_gpu_request_without_gpu_is_one_line_error():
  import torch
  if torch.cuda.is_available():
    pytest.skip("a GPU is present")
  with pytest.raises(VidjaxError, match="--device=gpu"):
    benchmark_peer.run(**dict(TINY, device="gpu"))
