"""tools.memory_table on one small case: its figures agree with each other
(fsdp vs replicated state bytes, batch scaling, accumulation), and the cache
answers without compiling (issue #16)."""
import json

import jax
import numpy as np
import pytest

from configs import vivit_factorized
from tools import memory_table
from vidjax import steps

DEVICES = 8
# One xdist worker runs this module: its module fixture runs once (pytest.ini).
# fast_compile: the four measured steps cost their compiles (41 -> 27
# CPU-s); every asserted relation between the sizes holds at level 0 too.
pytestmark = [pytest.mark.xdist_group("memory_table"),
              pytest.mark.fast_compile]


def _config(batch=16, accum=1, mode="replicate"):
  config = vivit_factorized.get_config()
  config.batch_size = batch
  config.grad_accum_steps = accum
  config.sharding = mode
  config.fsdp_min_size_mb = 0.0
  return config


@pytest.fixture(scope="module")
def rows():
  assert len(jax.devices()) == DEVICES
  cases = {"b16": _config(16), "b32": _config(32),
           "b32_accum2": _config(32, 2), "b16_fsdp": _config(16, mode="fsdp")}
  return {k: memory_table.measure(k, c, DEVICES) for k, c in cases.items()}


def test_state_bytes_replicated_vs_fsdp(rows):
  rep, fsdp = rows["b16"], rows["b16_fsdp"]
  # Replicated: every device holds all the parameters (float32).
  model_params = rep["params_bytes"]
  assert model_params % 4 == 0 and model_params > 0
  assert rep["params_bytes"] == rows["b32"]["params_bytes"]
  # fsdp shards each leaf that splits over 8: between 1/8 and all of it.
  assert model_params / DEVICES <= fsdp["params_bytes"] < model_params / 2
  assert fsdp["opt_state_bytes"] < rep["opt_state_bytes"] / 2
  # The compiled step's arguments are the state and the batch, per device.
  clip = int(np.prod(steps.input_shape(_config())))
  video_per_device = 16 * clip // DEVICES
  for r in (rep, fsdp):
    state = r["params_bytes"] + r["opt_state_bytes"]
    assert state + video_per_device <= r["argument_bytes"] <= (
        state + video_per_device + 4096)
  assert fsdp["total_bytes"] < rep["total_bytes"]


def test_batch_scaling_and_accumulation(rows):
  b16, b32, acc = rows["b16"], rows["b32"], rows["b32_accum2"]
  assert (b16["clips_per_device_step"], b32["clips_per_device_step"],
          acc["clips_per_device_step"]) == (2, 4, 2)
  clip = int(np.prod(steps.input_shape(_config())))
  # Twice the batch: the arguments grow by 16 clips (uint8) and their int32
  # labels, over 8 devices ...
  assert b32["argument_bytes"] - b16["argument_bytes"] == (
      16 * (clip + 4) // DEVICES)
  # ... and the activations kept for the backward pass grow.
  assert b32["temp_bytes"] > 1.5 * b16["temp_bytes"] - 2 * b16["params_bytes"]
  # Accumulating 2 micro-batches of 2 needs far less than one batch of 4.
  assert acc["temp_bytes"] < b32["temp_bytes"]
  for r in rows.values():
    assert r["total_bytes"] == (r["argument_bytes"] + r["output_bytes"] -
                                r["alias_bytes"] + r["temp_bytes"] +
                                r["code_bytes"])
    assert r["alias_bytes"] >= r["params_bytes"]  # the donated state
    for target, limit in memory_table.TARGETS.items():
      assert r[f"fits_{target}"] == (r["total_bytes"] <= limit)


def test_cache_and_markdown(rows, tmp_path, monkeypatch):
  cache = tmp_path / "cache.json"
  config = _config(16)
  first = memory_table.run([("small", config)], DEVICES, str(cache))
  assert first[0]["total_bytes"] == rows["b16"]["total_bytes"]
  monkeypatch.setattr(memory_table, "measure", lambda *a: 1 / 0)
  again = memory_table.run([("small", config)], DEVICES, str(cache))
  assert again == first
  assert len(json.loads(cache.read_text())) == 1
  table = memory_table.markdown(first).splitlines()
  assert len(table) == 3 and "| `small` | 16 | 2 | float32 |" in table[2]
  assert all(table[2].endswith(s) for s in ("yes |",))
