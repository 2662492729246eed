"""The audio_visual task on the user's AudioSet / VGGSound builds (issue #22,
vidjax/tasks/audio_visual/task.py `load`, data.py `select` / `fit_video`):
configs/mbt.py:audioset / :vggsound with a tiny MBT on the tiny trees of
PyAV-muxed clips of tests/test_audioset_builders.py, through
`train.train_and_evaluate` on 8 forced CPU devices. AudioSet: multi-hot
targets, eval/map equal to scikit-learn's macro average precision over the
classes with a positive (and eval/mauc to its ROC AUC) of the written
predictions; the missing and the corrupt clip named in the printed report,
not fatal. VGGSound: int labels, top-1. Config errors name the key before
anything is listed or built."""
import json
import os

import jax
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from configs import mbt
from vidjax import train
from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.audio_visual import data as data_lib, task as av_task
from tests.test_audioset_builders import audioset_tree, mux  # noqa: F401

# Three more test segments cut from one untrimmed video (white frame and
# click at 2.0 s of the file: at 1.5 s and 1.0 s of the first two windows).
MORE_EVAL = ('evalsource0, 0.500, 10.500, "/m/05zppz"\n'
             'evalsource0, 1.000, 11.000, "/t/dd00088,/m/09x0r"\n')


def tiny(tree, name: str = "audioset"):
  """configs/mbt.py:<name> at test size: one fused layer of width 32 (2
  bottlenecks); the build stores 2.5 s (10 frames at 4 fps, 40^2), the
  model takes the centred 8 frames' centre 32^2 crop and the 2.5 s of
  16 kHz audio."""
  config = mbt.get_config(name)
  d = config.dataset
  d.manual_dir, d.data_dir = str(tree / "clips"), str(tree / "tfds")
  d.untrimmed = True
  d.clip_seconds, d.fps, d.resize_short = 2.5, 4.0, 40
  d.audio_samples = 40000
  d.num_frames, d.frame_stride, d.crop_size = 8, 1, 32
  m = config.model
  m.hidden_size, m.num_heads, m.mlp_dim, m.num_layers = 32, 2, 64, 1
  m.fusion_layer, m.num_bottlenecks, m.stochastic_depth = 0, 2, 0.0
  m.dtype = "float32"
  config.batch_size = config.eval_batch_size = 8
  config.num_train_epochs, config.num_train_steps = 0.0, 2
  config.optimizer.warmup_epochs, config.optimizer.warmup_steps = 0.0, 1
  config.log_every_steps = config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  return config


def final_files(work: str, step: int = 2):
  out = os.path.join(work, "eval", f"test_step{step}")
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  preds = [json.loads(line) for line in open(os.path.join(
      out, "predictions.jsonl"))]
  return metrics, preds


@pytest.mark.fast_compile
def test_audioset_run_scores_map_of_its_predictions(audioset_tree, capsys):
  clips = audioset_tree / "clips"
  with open(clips / "eval_segments.csv", "a") as f:
    f.write(MORE_EVAL)
  mux(clips / "eval" / "evalsource0.mp4")
  config = tiny(audioset_tree)
  assert jax.device_count() == 8
  # the loaders' batches: multi-hot float targets, the model's clip shape
  data = av_task.load(config)
  printed = capsys.readouterr().out
  assert "missingclip_0" in printed and "corruptfile_0.mp4" in printed
  assert data.class_names == ["Speech", "Male speech, man speaking", "Gush"]
  train_loader, eval_loader, _ = base.get_task(config).loaders(
      config, None, data, 0, 1)
  b = train_loader.batch(0)
  assert b["video"].shape == (8, 8, 32, 32, 3) and b["audio"].shape == (
      8, 40000)
  assert b["label"].dtype == np.float32 and b["label"].shape == (8, 3)
  rows = data.train.take(train_loader.inner.indices(0))
  np.testing.assert_array_equal(b["label"], rows["labels"])
  np.testing.assert_array_equal(b["video"], rows["video"][:, 1:9, 4:36,
                                                          4:36])
  ev = eval_loader.batch(0)
  assert set(ev) == set(data_lib.EVAL_KEYS)

  work = str(audioset_tree / "run")
  final = train.train_and_evaluate(config, work)
  metrics, preds = final_files(work)
  y = np.array([p["label"] for p in preds])
  p = np.array([p["probabilities"] for p in preds])
  # the found test segments, in the CSV's order (the missing one reported)
  np.testing.assert_array_equal(y, [[1, 1, 1], [0, 0, 1], [0, 1, 0],
                                    [1, 0, 1]])
  assert metrics["eval/num_examples"] == 4
  assert all(len(np.unique(p[:, k])) == 4 for k in range(3))  # no ties
  ap = [average_precision_score(y[:, k], p[:, k]) for k in range(3)
        if y[:, k].any()]
  assert metrics["eval/map"] == pytest.approx(np.mean(ap), abs=1e-9)
  assert final["eval/map"] == pytest.approx(metrics["eval/map"])
  auc = [roc_auc_score(y[:, k], p[:, k]) for k in range(3)
         if 0 < y[:, k].sum() < len(y)]
  assert metrics["eval/mauc"] == pytest.approx(np.mean(auc), abs=1e-9)
  assert "eval/top1" not in metrics
  rows = [json.loads(line) for line in open(os.path.join(work,
                                                         "metrics.jsonl"))]
  train_rows = [r for r in rows if "train/loss" in r]
  assert [r["step"] for r in train_rows] == [2]
  assert np.isfinite(train_rows[0]["train/loss"])
  # the counted report beside the build: the missing and the corrupt clip
  text = open(data.report.where).read()
  assert "1 listed videos missing" in text and "corruptfile_0.mp4" in text
  assert "1 videos with no usable audio" in text


def vggsound_tree(root):
  clips = root / "clips"
  clips.mkdir()
  (clips / "vggsound.csv").write_text(
      '---g-f_I2yQ,1,people marching,test\n'
      '--0PQM4-hqg,30,waterfall burbling,train\n'
      'abcdefghijk,0,"male speech, man speaking",train\n'
      'testclip002,0,waterfall burbling,test\n'
      'missingclip,0,people marching,train\n')
  for name in ("---g-f_I2yQ_000001.mp4", "--0PQM4-hqg_000030.mp4",
               "Yabcdefghijk.mp4", "testclip002_0.mp4"):
    mux(clips / name, with_audio=name != "testclip002_0.mp4")
  return root


@pytest.mark.fast_compile
def test_vggsound_run_scores_top1_of_int_labels(tmp_path):
  config = tiny(vggsound_tree(tmp_path), "vggsound")
  config.dataset.untrimmed = False
  config.model.fusion = "audio_only"  # the cheapest compile
  assert av_task.class_names(config) == [
      "male speech, man speaking", "people marching", "waterfall burbling"]
  work = str(tmp_path / "run")
  final = train.train_and_evaluate(config, work)
  metrics, preds = final_files(work)
  assert [p["label"] for p in preds] == [1, 2]     # ints, the CSV's order
  top1 = np.mean([np.argmax(p["probabilities"]) == p["label"]
                  for p in preds])
  assert metrics["eval/top1"] == pytest.approx(top1) == pytest.approx(
      final["eval/top1"])
  assert "eval/map" not in metrics
  assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in preds)


@pytest.mark.parametrize("key,value,expected", [
    ("dataset.csv", "absent.csv", "config.dataset.csv=absent.csv"),
    ("dataset.manual_dir", "", "config.dataset.manual_dir is empty"),
    ("dataset.multilabel", False, "config.dataset.multilabel=False"),
    ("dataset.clip_seconds", 2.0, "config.dataset.clip_seconds=2 "),
    ("dataset.num_frames", 16, "config.dataset.num_frames=16"),
    ("dataset.audio.sample_rate", 8000, "config.dataset.audio.sample_rate"),
    ("objective", "voice", "config.objective='voice' needs synthetic_av"),
])
def test_config_errors_before_any_listing(key, value, expected,
                                          audioset_tree, monkeypatch):
  config = tiny(audioset_tree)
  node = config
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value

  def tripwire(*a, **k):
    raise AssertionError("listed, built or compiled before the config error")
  from vidjax.data import audioset  # noqa: PLC0415
  monkeypatch.setattr(audioset, "list_segments", tripwire)
  monkeypatch.setattr(train, "compile_steps", tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(audioset_tree / "run"))
  assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)
  assert not os.path.exists(audioset_tree / "tfds")


def test_fit_video_centred_frames_centre_crop_or_resize():
  t = np.arange(10, dtype=np.uint8)[None, :, None, None, None]
  video = np.broadcast_to(t * 20, (2, 10, 40, 40, 3)).copy()
  video[:, :, 4:36, 4:36] += 1          # the centre 32^2
  got = data_lib.fit_video(video, 4, 2, 32)  # span 7 of 10: frames 1..7
  assert got.shape == (2, 4, 32, 32, 3)
  np.testing.assert_array_equal(got[0, :, 0, 0, 0], [21, 61, 101, 141])
  assert (got == got[:, :, :1, :1]).all()    # only the centre, whole
  assert data_lib.fit_video(video, 10, 1, 40) is video
  small = np.full((1, 4, 24, 24, 3), 77, np.uint8)  # stored side < crop
  np.testing.assert_array_equal(data_lib.fit_video(small, 4, 1, 32),
                                np.full((1, 4, 32, 32, 3), 77, np.uint8))
