"""The audio_visual task through the shared loop (issue #22 part D,
vidjax/tasks/audio_visual/task.py): `configs/mbt.py:tiny` on a tiny
`synthetic_av` build and 8 forced CPU devices, stopped at step 2 and
resumed to step 4; the final metrics.json and predictions read back; sync
pairs balanced at test time; config errors before anything is built."""
import json
import os

import jax
import numpy as np
import pytest

from configs import ast as ast_config, mbt
from vidjax import train
from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.audio_visual import data as data_lib, task as av_task


def tiny(data_dir: str, arg: str = "tiny"):
  config = mbt.get_config(arg)
  config.dataset.data_dir = data_dir
  if arg != "tiny":
    config.dataset.train_examples, config.dataset.test_examples = 64, 32
  return config


@pytest.mark.fast_compile  # 4 steps of a tiny MBT, compiled twice: 51 -> 35 CPU-s
def test_stop_then_resume_on_8_devices_writes_the_final_metrics(tmp_path):
  config = tiny(str(tmp_path / "tfds"))
  work = str(tmp_path / "run")
  assert jax.device_count() == 8
  assert train.train_and_evaluate(config, work, stop_after_steps=2) == {}
  final = train.train_and_evaluate(config, work)
  rows = [json.loads(line) for line in open(os.path.join(work,
                                                         "metrics.jsonl"))]
  assert sorted(r["step"] for r in rows if "train/loss" in r) == [2, 4]
  assert [r["step"] for r in rows if "eval/top1" in r] == [2, 4]
  out = os.path.join(work, "eval", "test_step4")
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  preds = [json.loads(line) for line in open(os.path.join(out,
                                                          "predictions.jsonl"))]
  assert len(preds) == metrics["eval/num_examples"] == 32
  top1 = np.mean([np.argmax(p["probabilities"]) == p["label"] for p in preds])
  assert metrics["eval/top1"] == pytest.approx(top1) == pytest.approx(
      final["eval/top1"])
  assert 0.0 <= metrics["eval/top1_zero_bottlenecks"] <= 1.0
  # the front end the model was trained with is recorded with the run
  assert metrics["audio_frontend"] == dict(config.audio_frontend)
  saved = json.load(open(os.path.join(work, "config.json")))
  assert saved["audio_frontend"]["n_mels"] == 64
  assert sorted({p["label"] for p in preds}) == [0, 1]   # which: left/right


def test_sync_pairs_are_balanced_and_shifted(tmp_path):
  config = tiny(str(tmp_path / "tfds"), "sync")
  assert av_task.class_names(config) == ["shifted", "aligned"]
  data = av_task.load(config)
  task = base.get_task(config)
  train_loader, eval_loader, _ = task.loaders(config, None, data, 0, 1)
  labels, pairs = [], []
  for b in eval_loader.iterate():
    labels.append(b["label"][b["valid"]])
    pairs.append(b["audio"][b["valid"]])
  labels, pairs = np.concatenate(labels), np.concatenate(pairs)
  # every test clip once aligned, once shifted by >= 0.25 s
  assert len(labels) == 64 and labels.tolist() == [1, 0] * 32
  n = pairs.shape[1]
  for aligned, shifted in zip(pairs[0::2], pairs[1::2]):
    corr = np.fft.irfft(np.fft.rfft(shifted) * np.conj(np.fft.rfft(aligned)),
                        n)
    s = int(np.argmax(corr))  # the circular shift, found from the audio
    assert min(s, n - s) >= 0.25 * 16000
    np.testing.assert_allclose(np.roll(aligned, s), shifted, atol=1e-6)
  batch = train_loader.batch(3)
  assert set(batch) == set(data_lib.TRAIN_KEYS)
  np.testing.assert_array_equal(batch["audio"],
                                train_loader.batch(3)["audio"])
  assert 0 < batch["label"].sum() < len(batch["label"])


@pytest.mark.parametrize("key,value,expected", [
    ("model.fusion", "mid", "config.model.fusion='mid'"),
    ("objective", "match", "config.objective='match'"),
    ("dataset.sync", True, "config.dataset.sync=True"),
    ("audio_frontend.n_mels", 0, "config.audio_frontend.n_mels"),
    ("audio_normalization", (0.0, 0.0), "config.audio_normalization"),
    ("model.audio_patch_size", (400, 16), "config.model.audio_patch_size"),
    ("batch_size", 12, "config.batch_size=12 is not divisible"),
])
def test_config_errors_before_any_build(key, value, expected, tmp_path,
                                        monkeypatch):
  config = tiny(str(tmp_path / "tfds"))
  node = config
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value

  def tripwire(*a, **k):
    raise AssertionError("built or compiled before the config error")
  monkeypatch.setattr(av_task, "load", tripwire)
  monkeypatch.setattr(train, "compile_steps", tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)
  assert not os.path.exists(tmp_path / "tfds")


def test_ast_config_builds_for_its_log_mel():
  config = ast_config.get_config()
  model, shape = av_task.configured_model(config)
  assert shape == (201, 64) and config.objective == "voice"
  assert av_task.class_names(config) == ["red", "green", "blue", "yellow"]
