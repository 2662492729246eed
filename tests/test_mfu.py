"""tools.benchmark's FLOPs and MFU: the model's own multiply-add count, the
same per clip on 1 and on 8 forced devices and with scanned layers, and the
MFU formula with a given device peak (issue #16: XLA's `cost_analysis()` is
per device and counts a scanned layer once, so it cannot be used)."""
import pytest

from configs import vivit_factorized
from test_tools import vivit_fe_macs
from tools import benchmark

PEAK = 2e12  # FLOP/s per device, given (XLA:CPU has no known peak)
# One xdist worker runs this module: its module fixture runs once (pytest.ini).
# fast_compile: three 2-step benchmarks cost their compiles; the FLOPs are
# the model's own count and the MFU is computed from the measured step.
pytestmark = [pytest.mark.xdist_group("mfu"), pytest.mark.fast_compile]


def _run(num_devices, scan=False):
  config = vivit_factorized.get_config()
  config.batch_size = 8
  config.num_devices = num_devices
  config.model.scan_layers = scan
  config.device_peak_flops = PEAK
  return benchmark.benchmark(config, num_steps=2, warmup=0)


@pytest.fixture(scope="module")
def runs():
  return {"one": _run(1), "eight": _run(8), "scanned": _run(8, scan=True)}


def test_flops_per_clip_are_the_models_on_any_device_count(runs):
  # The default ViViT-FE: 8x32x32 clips, 2x8x8 tubelets, width 64, MLP 256,
  # 2 spatial + 2 temporal layers, 8 classes; x 2 FLOPs x 3 (fwd + bwd).
  by_hand = 6 * vivit_fe_macs(8, 32, (2, 8, 8), 64, 256, 2, 2, 8) / 1e9
  for row in runs.values():
    assert row["gflops_per_clip"] == pytest.approx(by_hand, rel=1e-3)
  assert runs["one"]["device_count"] == 1
  assert runs["eight"]["device_count"] == runs["scanned"]["device_count"] == 8
  # What XLA's per-device count would have said instead.
  one, eight = (runs[k]["xla_gflops_per_device"] for k in ("one", "eight"))
  assert eight < one / 4  # the program of one device: ~1/8 of the batch
  assert runs["scanned"]["xla_gflops_per_device"] < eight * 0.8  # body once


def test_mfu_formula_with_a_given_peak(runs):
  for row in runs.values():
    n = row["device_count"]
    seconds = row["median_step_ms"] / 1e3
    expected = row["gflops_per_clip"] * 1e9 * row["batch_size"] / seconds / (
        n * PEAK)
    assert row["peak_flops_per_device"] == PEAK
    assert row["mfu"] == pytest.approx(expected, rel=2e-3)
    assert row["tflops_per_sec"] == pytest.approx(
        row["gflops_per_clip"] * row["batch_size"] / seconds / 1e3, rel=2e-3)
