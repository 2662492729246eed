"""Localization through the shared training loop (vidjax/tasks/, issue #20
part C): `configs/actionformer.py:tiny` from pixels (backbone trained into
WORKDIR/backbone, window features cached, detector) on the 8 forced CPU
devices, stopped and resumed (one run per session, tests/localization_runs.py);
the controls' config keys; config errors before anything is built."""
import json
import os

import jax
import numpy as np
import pytest

from configs import actionformer
from tests.localization_runs import tiny
from vidjax import preflight, sharding, train
from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.localization import task as loc_task


def test_stop_then_resume_on_8_devices(tiny_localization_run):
  run = tiny_localization_run
  work = run.work
  assert run.first == {}  # stopped at step 2 of 4
  assert run.stopped == {"2": True, "4": False}
  # the backbone was trained (and finished) by the same job, features cached
  assert "backbone: training" in run.first_out
  assert os.path.isdir(os.path.join(work, "backbone", "checkpoints", "2"))
  timing = json.load(open(os.path.join(work, "features", "timing.json")))
  assert (timing["span"], timing["stride"], timing["fps"]) == (15, 4, 8.0)
  out, final = run.resume_out, run.final
  assert "resumed from" in out and "at step 2" in out
  assert "backbone: training" not in out  # the finished backbone is reused
  assert "on 8 device(s)" in out and jax.device_count() == 8
  assert 0.0 <= final["eval/average_map"] <= 1.0
  assert set(final) >= {f"eval/map@{t}" for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
  np.testing.assert_allclose(
      final["eval/average_map"],
      np.mean([final[f"eval/map@{t}"] for t in (0.3, 0.4, 0.5, 0.6, 0.7)]),
      rtol=1e-6)
  # the final detections' chance level (evaluate.chance_map), in the summary
  assert 0.0 <= final["eval/chance_average_map"] <= 1.0
  assert final["eval/chance_average_map_std"] >= 0.0
  assert "chance level" in out
  # metrics.jsonl: train rows from both sessions, the final eval row
  rows = [json.loads(line) for line in open(os.path.join(work,
                                                         "metrics.jsonl"))]
  train_steps = sorted(r["step"] for r in rows if "train/loss" in r)
  assert train_steps == [2, 4]
  assert [r["step"] for r in rows if "eval/average_map" in r] == [4]
  out_dir = os.path.join(work, "eval", "test_step4")
  preds = json.load(open(os.path.join(out_dir, "predictions.json")))
  assert set(preds) == {"version", "results", "external_data"}
  assert sorted(preds["results"]) == ["test_000000", "test_000001"]
  for rows_ in preds["results"].values():
    for r in rows_:
      assert 0.0 <= r["segment"][0] <= r["segment"][1] and 0 < r["score"] <= 1
  metrics = json.load(open(os.path.join(out_dir, "metrics.json")))
  assert metrics["eval/average_map"] == pytest.approx(
      final["eval/average_map"]) and metrics["step"] == 4
  assert metrics["eval/chance_average_map"] == pytest.approx(
      final["eval/chance_average_map"])


@pytest.mark.parametrize("mode,shift", [("none", 0), ("derangement", 1)])
def test_label_permutation_control_reaches_the_training_labels(
    tiny_localization_run, tmp_path, mode, shift):
  # the run's backbone and cached features: nothing is trained or extracted
  run = tiny_localization_run
  config = tiny(run.data_dir, run.motion_dir)
  config.dataset.backbone_run = os.path.join(run.work, "backbone")
  config.dataset.label_permutation = mode
  lines = []
  data = loc_task.Localization().load_data(config, run.work, lines.append)
  assert not any(line.startswith("features:") for line in lines)  # cached
  raw = loc_task.Localization().load_data(
      dict_config(config, label_permutation="none"), run.work,
      lambda *a: None)
  for got, ref in zip(data.train, raw.train):
    np.testing.assert_array_equal(got.labels, (ref.labels + shift) % 8)
    np.testing.assert_array_equal(got.segments, ref.segments)
  for got, ref in zip(data.test, raw.test):  # the test labels are untouched
    np.testing.assert_array_equal(got.labels, ref.labels)
  assert any("control" in line for line in lines) == (mode != "none")


def dict_config(config, **dataset):
  out = config.copy_and_resolve_references()
  out.dataset.update(dataset)
  return out


def test_zero_regression_weight_disables_the_head(monkeypatch):
  import jax.numpy as jnp
  config = actionformer.get_config("tiny")
  monkeypatch.setattr(
      loc_task.train_step, "make_localization_eval_step", lambda c: (
          lambda state, batch: {"offsets": jnp.full((1, 4, 2), 3.5),
                                "cls_logits": jnp.zeros((1, 4, 8))}))
  task = loc_task.Localization()
  assert float(task.make_eval_step(config)(None, None)["offsets"][0, 0, 0]) \
      == 3.5
  config.loss.reg_weight = 0.0  # every point proposes [t - s, t + s]
  out = task.make_eval_step(config)(None, None)
  np.testing.assert_array_equal(out["offsets"], np.ones((1, 4, 2)))
  assert out["cls_logits"].shape == (1, 4, 8)


@pytest.mark.parametrize("key,value,expected", [
    ("dataset.max_len", 30, "config.dataset.max_len=30 must be a positive "
                             "multiple of 2^(num_levels-1) = 4"),
    ("dataset.name", "kinetics400", "config.dataset.name='kinetics400'"),
    ("model.window", 3, "config.model.window is not an option"),
    ("backbone.config", "nope", "config.backbone.config='nope'"),
    ("dataset.backbone_run", "/nonexistent", "config.dataset.backbone_run="),
    ("batch_size", 12, "batch_size"),
    ("task", "segmentation", "config.task='segmentation'"),
    ("dataset.label_permutation", "reverse",
     "config.dataset.label_permutation='reverse': one of none, shuffle, "
     "derangement"),
    ("loss.reg_weight", -1.0, "config.loss.reg_weight must be a number >= 0"),
    ("eval_chance_draws", -1, "config.eval_chance_draws must be >= 0"),
])
def test_config_errors_before_any_build(key, value, expected, tmp_path,
                                        monkeypatch):
  config = tiny(str(tmp_path / "tfds"), str(tmp_path / "motion"))
  node = config
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value

  def tripwire(*a, **k):
    raise AssertionError("built or compiled before the config error")
  monkeypatch.setattr(loc_task.data_lib, "load", tripwire)
  monkeypatch.setattr(loc_task, "backbone_run", tripwire)
  monkeypatch.setattr(train, "compile_steps", tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)
  assert not os.path.exists(tmp_path / "tfds")


def test_preflight_picks_the_task_and_builds_both_detectors(tmp_path):
  mesh = sharding.make_mesh(-1)
  for two, name in ((False, "ActionFormer"), (True, "TwoStage")):
    config = tiny(str(tmp_path), str(tmp_path), two)
    pre = preflight.check_run(config, mesh)
    assert type(pre.model).__name__ == name and len(pre.class_names) == 8
    assert pre.abstract_params is None  # the feature size comes from data
    assert isinstance(base.get_task(config), loc_task.Localization)
  full = actionformer.get_config()
  assert (full.dataset.max_len, full.model.num_levels, full.batch_size,
          full.num_train_steps, full.backbone.steps) == (128, 6, 16, 300, 600)


def test_classification_and_pretraining_keep_their_tasks():
  from configs import default
  assert type(base.get_task(default.get_config())) is base.Classification
  from configs import videomae_pretrain
  assert type(base.get_task(videomae_pretrain.get_config())) is \
      base.Pretraining


def test_train_loader_is_a_function_of_seed_and_step():
  from vidjax.tasks.localization import data
  from vidjax.tasks.localization.timing import FeatureTiming
  t = FeatureTiming.windows(8.0, 8, 2, 4)
  seqs = [data.Sequence(f"v{i}", np.full((20 + i, 3), i, np.float32), t,
                        12.0, np.array([[1.0, 2.0]]), np.array([i % 8]))
          for i in range(5)]
  a = loc_task.TrainLoader(seqs, 0, 8, 32, 4)
  b = loc_task.TrainLoader(seqs, 0, 8, 32, 4)
  np.testing.assert_array_equal(a.batch(3)["inputs"], b.batch(3)["inputs"])
  assert not np.array_equal(a.batch(3)["inputs"], a.batch(4)["inputs"])
  half = loc_task.TrainLoader(seqs, 0, 8, 32, 4, process_index=1,
                              process_count=2).batch(3)
  np.testing.assert_array_equal(half["inputs"], a.batch(3)["inputs"][4:])
  assert set(a.batch(0)) == set(loc_task.DEVICE_KEYS)
