"""tools.export_model: the reloaded StableHLO / SavedModel export gives the JAX
model's logits within 1e-5, at batch sizes the export never saw (its batch
dimension is symbolic)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from test_extract_features import make_run

# One xdist worker runs this module: its module fixture is built once. A
# tiny run and its exported model: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 31 -> 26 CPU-s), same tolerances.
pytestmark = [pytest.mark.xdist_group("export_model"),
              pytest.mark.fast_compile]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def vivit_run(tmp_path_factory):
  return make_run(tmp_path_factory.mktemp("export_run"),
                  model="vivit_factorized")


@pytest.fixture(scope="module")
def reference(vivit_run):
  """The JAX model's logits of uint8 clips (jitted once per batch size)."""
  import jax
  from tools import export_model
  from vidjax.viz.run import load_run
  run = load_run(vivit_run, flag="--run")
  fn = jax.jit(export_model.forward(run))
  return lambda clips: np.asarray(fn(run.variables, clips))


@pytest.mark.parametrize("fmt", ["stablehlo", "savedmodel"])
def test_export_round_trip(vivit_run, reference, tmp_path, fmt):
  from tools import export_model
  out = str(tmp_path / fmt)
  meta = export_model.export_run(vivit_run, fmt, out, log=lambda *a: None)
  assert meta["input"]["shape"] == ["b", 4, 16, 16, 3]
  assert meta["output"]["shape"] == ["b", 8]
  assert meta["class_names"] == [f"class{i}" for i in range(8)]
  assert meta["platforms"] == ["cpu", "cuda", "tpu"]
  assert meta["roundtrip_batch"] == 3 and meta["roundtrip_max_abs_err"] < 1e-5
  assert json.load(open(os.path.join(out, "export.json"))) == meta
  served = export_model.load(out)
  rng = np.random.default_rng(1)
  # Batch sizes the export never saw (the check above used 3).
  for batch in (1, 5) if fmt == "stablehlo" else (5,):
    clips = rng.integers(0, 256, (batch, 4, 16, 16, 3), dtype=np.uint8)
    want = reference(clips)
    got = served(clips)
    assert got.shape == (batch, 8) and np.std(want) > 1e-3
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  if fmt == "savedmodel":
    # TF Serving's view: `serving_default`, uint8 [None, ...] in, `logits`.
    import tensorflow as tf
    sig = tf.saved_model.load(out).signatures["serving_default"]
    spec = sig.structured_input_signature[1]["clips"]
    assert spec.dtype == tf.uint8
    assert spec.shape.as_list() == [None, 4, 16, 16, 3]
    got = sig(clips=tf.constant(clips))["logits"].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bad_arguments_are_one_line_errors(vivit_run, tmp_path):
  from tools import export_model
  from vidjax.errors import VidjaxError
  with pytest.raises(VidjaxError, match="--platforms=cpu,gpu: each must be"):
    export_model.export_run(vivit_run, "stablehlo", platforms=["cpu", "gpu"])
  with pytest.raises(VidjaxError, match=f"--out={vivit_run} exists and is "
                     "not empty"):
    export_model.export_run(vivit_run, "stablehlo", vivit_run)
  # The command line: one line on stderr, exit status 1.
  proc = subprocess.run(
      [sys.executable, "-m", "tools.export_model", f"--run={vivit_run}",
       "--format=onnx"], cwd=ROOT, capture_output=True, text=True,
      timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "error: --format=onnx: must be one of stablehlo, savedmodel"]
