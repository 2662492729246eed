"""Separation through the shared training loop (vidjax/tasks/separation/
task.py): `configs/sound_of_pixels.py:tiny` (separation_tones data) on 8
forced CPU devices, stopped at step 2 and resumed to step 4; the final
metrics.json and per-source rows read back (oracle ideal ratio mask >= 15
dB on the tones, improvements = score - mixture score); config errors before
anything is built."""
import json
import os

import jax
import numpy as np
import pytest

from configs import sound_of_pixels
from vidjax import train
from vidjax.errors import VidjaxError
from vidjax.tasks.separation import task as sep_task

# A 4-step tiny run: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 39 -> 30 CPU-s), same bars.
pytestmark = pytest.mark.fast_compile


def test_stop_resume_and_final_metrics_on_8_devices(tmp_path):
  assert jax.device_count() == 8
  config = sound_of_pixels.get_config("tiny")
  config.dataset.test_size = 4
  config.eval_every_steps = 4        # one evaluation, the final one
  work = str(tmp_path / "run")
  assert train.train_and_evaluate(config, work, stop_after_steps=2) == {}
  final = train.train_and_evaluate(config, work)
  rows = [json.loads(line) for line in open(os.path.join(work,
                                                         "metrics.jsonl"))]
  assert sorted(r["step"] for r in rows if "train/loss" in r) == [2, 4]
  assert all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)
  assert [r["step"] for r in rows if "eval/sdri" in r] == [4]
  assert final["eval/num_sources"] == 8 and final["eval/num_silent"] == 0
  assert final["eval/oracle_sdr"] >= 15.0
  out = os.path.join(work, "eval", "test_step4")
  saved = json.load(open(os.path.join(out, "metrics.json")))
  assert saved["step"] == 4
  for key in ("eval/sdri", "eval/si_sdri", "eval/swap_sdri",
              "eval/oracle_sdr"):
    assert saved[key] == pytest.approx(final[key])
  per = [json.loads(line) for line in open(os.path.join(out,
                                                        "per_source.jsonl"))]
  assert sorted((r["example"], r["source"]) for r in per) == [
      (i, k) for i in range(4) for k in range(2)]
  sdri = np.mean([r["sdr"] - r["mixture_sdr"] for r in per])
  assert final["eval/sdri"] == pytest.approx(sdri)
  # the other object's estimate is the swapped condition's
  by = {(r["example"], r["source"]): r for r in per}
  assert all(np.isfinite(by[(i, k)]["swap_sdr"]) for i, k in by)


@pytest.mark.parametrize("key,value,expected", [
    ("separation.loss", "mse", "config.separation.loss='mse'"),
    ("model.conditioning", "add", "config.model.conditioning='add'"),
    ("dataset.clip_samples", 0, "config.dataset.clip_samples=0"),
    ("batch_size", 12, "config.batch_size=12 is not divisible"),
])
def test_config_errors_before_any_build(key, value, expected, tmp_path,
                                        monkeypatch):
  config = sound_of_pixels.get_config("tiny")
  node = config
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value

  def tripwire(*a, **k):
    raise AssertionError("built or compiled before the config error")
  monkeypatch.setattr(sep_task.data_lib, "load", tripwire)
  monkeypatch.setattr(train, "compile_steps", tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)
