"""tools.predict, tools.evaluate and the run's record (issue #18 part B).

One tiny early-fusion model is trained once for the module until it has
memorised its 16 training videos (2 per synthetic_motion class); those
videos, rendered again and written to mp4, must come back with their
classes through `tools.predict`. `tools.evaluate` must reproduce the
training's own final evaluation files, and the run's TensorBoard events and
config.json must hold what they claim. A converted Hugging Face VideoMAE
classifier must predict what transformers computes on the same views.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_config
from test_video_folder import write_video
from vidjax import evaluate
from vidjax.data import synthetic_render
from vidjax.errors import VidjaxError

# One xdist worker runs this module: its module fixture is built once. A
# 150-step tiny run and single evaluations: compile-bound, so XLA
# optimisation level 0 (conftest.fast_compile: 47 -> 38 CPU-s).
pytestmark = [pytest.mark.xdist_group("predict"), pytest.mark.fast_compile]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 150


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
  """(workdir, config): early fusion trained on 2 videos per class."""
  from vidjax import train
  data_dir = str(tmp_path_factory.mktemp("tfds_memorised"))
  config = tiny_config(
      data_dir, model="early_fusion", num_train_steps=STEPS,
      eval_every_steps=100, checkpoint_every_steps=STEPS, log_every_steps=50,
      num_test_clips=2, num_devices=1, batch_size=16, eval_batch_size=16)
  config.dataset.update(dict(train_per_class=2, test_per_class=1,
                             crop_size=32))
  config.model.widths = (8, 16)
  config.optimizer.learning_rate = 3e-3
  workdir = str(tmp_path_factory.mktemp("memorised_run"))
  train.train_and_evaluate(config, workdir)
  return workdir, config


def _render_train_videos(folder, count=16):
  """The first `count` training videos of synthetic_motion/motion as mp4;
  returns {file name: label}."""
  labels = {}
  for i in range(count):
    video, label = synthetic_render.render(0, "train", i, label_kind="motion")
    name = f"{synthetic_render.MOTION_NAMES[label]}_{i:02d}.mp4"
    write_video(os.path.join(folder, name), video, rate=25)
    labels[name] = label
  return labels


def test_predict_names_the_classes_of_memorised_videos_from_mp4(memorised,
                                                                tmp_path):
  from tools import predict
  workdir, _ = memorised
  folder = tmp_path / "videos"
  labels = _render_train_videos(str(folder))
  (folder / "broken.mp4").write_bytes(b"not a video at all")
  (folder / "notes.txt").write_text("not a video file: ignored")
  printed = []
  result = predict.predict(workdir, str(folder), top_k=3,
                           out=str(tmp_path / "preds.jsonl"),
                           write=printed.append)
  assert (result["predicted"], result["skipped"]) == (16, 1)
  with open(tmp_path / "preds.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert rows == result["rows"] and printed == []  # --out: JSON to the file
  assert [r["video"] for r in rows] == sorted(list(labels) + ["broken.mp4"])
  bad = [r for r in rows if "skipped" in r]
  assert bad[0]["video"] == "broken.mp4" and "cannot be opened" in bad[0][
      "skipped"]
  good = [r for r in rows if "top_k" in r]
  names = list(synthetic_render.MOTION_NAMES)
  for row in good:
    top = row["top_k"]
    assert len(top) == 3 and row["views"] == 2 and row["frames"] == 32
    assert [t["class"] for t in top] == [names[t["index"]] for t in top]
    probs = [t["probability"] for t in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-5
  correct = sum(r["top_k"][0]["index"] == labels[r["video"]] for r in good)
  assert correct == 16, [(r["video"], r["top_k"][0]) for r in good]


def test_predict_one_file_prints_and_annotates(memorised, tmp_path):
  from PIL import Image
  import av
  from tools import predict
  workdir, _ = memorised
  labels = _render_train_videos(str(tmp_path), count=1)
  path = str(tmp_path / next(iter(labels)))
  printed = []
  result = predict.predict(workdir, path, top_k=2, annotate=str(
      tmp_path / "a.gif"), write=printed.append)
  top = result["rows"][0]["top_k"]
  assert printed == [f"{path} (2 views of 32 frames):",
                     f"  1. {top[0]['class']} {top[0]['probability']:.4f}",
                     f"  2. {top[1]['class']} {top[1]['probability']:.4f}"]
  gif = Image.open(tmp_path / "a.gif")
  assert gif.n_frames == 32 and gif.size == (192, 192)  # 32 px x 6
  band = np.asarray(gif.convert("RGB"))[:12]
  assert band.max() > 200 and band.mean() < 90  # white text on a dark band
  predict.predict(workdir, path, annotate=str(tmp_path / "a.mp4"),
                  write=lambda line: None)
  with av.open(str(tmp_path / "a.mp4")) as container:
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
  assert len(frames) == 32 and frames[0].shape == (192, 192, 3)
  with pytest.raises(VidjaxError, match="write a .gif or .mp4"):
    predict.predict(workdir, path, annotate=str(tmp_path / "a.avi"))
  (tmp_path / "bad.mp4").write_bytes(b"")
  with pytest.raises(VidjaxError, match="no video could be decoded"):
    predict.predict(workdir, str(tmp_path / "bad.mp4"))
  with pytest.raises(VidjaxError, match="--step=7: .* steps \\[150\\]"):
    predict.predict(workdir, path, step=7)


def test_evaluate_tool_reproduces_the_final_evaluation(memorised, tmp_path):
  """The training's final evaluation files and tools.evaluate's agree; the
  metrics are consistent with each other; the train split is memorised."""
  from tools import evaluate as tool
  workdir, _ = memorised
  final = os.path.join(workdir, "eval", f"test_step{STEPS}")
  with open(os.path.join(final, "metrics.json")) as f:
    want = json.load(f)
  got = tool.evaluate_checkpoint(workdir, out=str(tmp_path / "ev"),
                                 log=lambda line: None)
  for key in ("top1", "top5", "clip_top1", "mean_class_accuracy",
              "num_videos", "views_per_video", "per_class", "step"):
    assert got[key] == want[key], key

  def rows(folder):
    with open(os.path.join(folder, "predictions.jsonl")) as f:
      return [json.loads(line) for line in f]
  a, b = rows(final), rows(str(tmp_path / "ev"))
  assert [r["video"] for r in a] == list(range(8))
  assert [r["label"] for r in a] == list(range(8))  # one video per class
  np.testing.assert_allclose([r["probabilities"] for r in a],
                             [r["probabilities"] for r in b], atol=2e-6)
  with open(os.path.join(final, "confusion.json")) as f:
    confusion = np.array(json.load(f)["rows_true_columns_predicted"])
  assert confusion.sum() == 8
  assert np.trace(confusion) / 8 == want["top1"]
  predicted = [int(np.argmax(r["probabilities"])) for r in a]
  assert predicted == [int(np.argmax(row)) for row in confusion]
  assert os.path.getsize(os.path.join(final, "confusion.png")) > 1000
  # The train split: memorised (one clip per video from the override).
  train = tool.evaluate_checkpoint(
      workdir, split="train", overrides={"num_test_clips": "1"},
      log=lambda line: None)
  assert train["out"].endswith(f"train_step{STEPS}_num_test_clips=1")
  assert (train["top1"], train["mean_class_accuracy"]) == (1.0, 1.0)
  assert train["num_videos"] == 16 and train["views_per_video"] == 1
  with pytest.raises(VidjaxError, match="--config.model.widths: only"):
    tool.evaluate_checkpoint(workdir, overrides={"model.widths": "(4,)"})


def test_evaluate_cli_overrides_and_tensorboard(memorised, tmp_path):
  workdir, _ = memorised
  out = tmp_path / "cli"
  proc = subprocess.run(
      [sys.executable, "-m", "tools.evaluate", f"--run={workdir}",
       f"--out={out}", "--config.num_test_crops=3",
       "--config.dataset.num_workers=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "test split, 8 videos x 6 views" in proc.stdout
  with open(out / "metrics.json") as f:
    metrics = json.load(f)
  assert metrics["views_per_video"] == 6 and metrics["overrides"] == {
      "num_test_crops": "3", "dataset.num_workers": "1"}
  tags = _tb_tags(str(out / "tb"))
  assert {"eval/confusion_matrix", "eval/mean_class_accuracy"} <= tags
  from tools import evaluate as tool
  with pytest.raises(VidjaxError, match="^config.dataset.crop_size=64 is "):
    tool.evaluate_checkpoint(workdir, overrides={"dataset.crop_size": "64"})


def _tb_events(tb_dir):
  """{tag: [(step, tensor proto)]} from the event files."""
  import tensorflow as tf
  out = {}
  for name in sorted(os.listdir(tb_dir)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(tb_dir,
                                                                  name)):
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value))
  return out


def _tb_tags(tb_dir):
  return set(_tb_events(tb_dir))


def test_run_record_config_and_tensorboard(memorised):
  import tensorflow as tf
  workdir, config = memorised
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["model"]["name"] == "early_fusion"
  assert saved["num_train_steps"] == STEPS and saved["model"]["widths"] == [
      8, 16]
  with open(os.path.join(workdir, "class_names.json")) as f:
    assert json.load(f) == list(synthetic_render.MOTION_NAMES)
  events = _tb_events(os.path.join(workdir, "tb"))
  # Sample clips once, at step 0: 8 clips x 4 frames of 32 px, enlarged 2x.
  (step, clips), = events["train/sample_clips"]
  width, height = (int(x) for x in tf.make_ndarray(clips.tensor)[:2])
  assert step == 0 and (height, width) == (8 * (12 + 64), 4 * (64 + 2))
  (_, text), = events["config/fields"]
  table = tf.make_ndarray(text.tensor).item().decode()
  assert "| model.name | early_fusion |" in table
  assert f"| num_train_steps | {STEPS} |" in table
  assert "_hparams_/session_start_info" in events
  assert [s for s, _ in events["eval/confusion_matrix"]] == [100, STEPS]
  assert [s for s, _ in events["eval/mean_class_accuracy"]] == [100, STEPS]


def test_class_report_by_hand():
  # 3 classes; class 2 has no video: the mean is over classes 0 and 1.
  confusion = evaluate.confusion_matrix(np.array([0, 1, 1, 1, 0]),
                                        np.array([0, 0, 0, 1, 1]), 3)
  np.testing.assert_array_equal(confusion, [[1, 2, 0], [1, 1, 0], [0, 0, 0]])
  report = evaluate.class_report(confusion)
  assert report["per_class_top1"] == [1 / 3, 0.5, None]
  assert report["videos_per_class"] == [3, 2, 0]
  assert report["mean_class_accuracy"] == pytest.approx((1 / 3 + 0.5) / 2)


def test_converted_videomae_predicts_transformers_probabilities(memorised,
                                                                tmp_path):
  """A tiny random VideoMAEForVideoClassification (the synthetic_motion class
  names in another order, its image processor saved beside it) ->
  tools.convert_checkpoint -> tools.predict --checkpoint: the probabilities
  are transformers' on the same views (the frames as vidjax decodes the
  file; the run's 4 clips of 4 frames at stride 2, the centre 32-px crop of
  the 32x38 stored frames), normalised by transformers' own processor.
  tools.evaluate on synthetic_motion scores the head's rows by name."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from test_convert_checkpoint import TINY, _randomize
  from tools import convert_checkpoint, predict
  from vidjax import inference
  order = [3, 0, 7, 1, 6, 2, 5, 4]  # head row i: motion class order[i]
  names = [synthetic_render.MOTION_NAMES[c] for c in order]
  cfg = transformers.VideoMAEConfig(**dict(
      TINY, patch_size=8, tubelet_size=2, id2label=dict(enumerate(names))))
  torch.manual_seed(0)
  hf = _randomize(transformers.VideoMAEForVideoClassification(cfg))
  hf.save_pretrained(tmp_path / "hf")
  processor = transformers.VideoMAEImageProcessor(
      size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
  processor.save_pretrained(tmp_path / "hf")
  out = str(tmp_path / "converted")
  convert_checkpoint.run(str(tmp_path / "hf"), "hf_videomae", out)
  rng = np.random.default_rng(0)
  frames = np.repeat(np.repeat(rng.integers(0, 256, (20, 10, 12, 3)), 4, 1),
                     4, 2).astype(np.uint8)  # 40x48, blocks survive h264
  path = write_video(str(tmp_path / "clip.mp4"), frames)
  result = predict.predict(out, path, top_k=8, flag="--checkpoint",
                           write=lambda line: None)
  row = result["rows"][0]
  assert row["views"] == 4 and row["frames"] == 20
  got = np.zeros(8)
  for t in row["top_k"]:
    got[t["index"]] = t["probability"]
  assert [t["class"] for t in row["top_k"]] == [names[t["index"]]
                                                for t in row["top_k"]]
  from vidjax.viz.run import load_run
  config = load_run(out, flag="--checkpoint").config
  video, _ = inference.decode_file(path, config.dataset)
  decoded = np.asarray(video)
  assert decoded.shape == (20, 32, 38, 3)  # short side 32 (stored)
  logits = []
  for start in (0, 4, 9, 13):  # linspace(0, 20 - 7, 4), rounded
    clip = decoded[start:start + 8:2, :, 3:35]  # centre crop
    pixels = processor(list(clip), do_resize=False, do_center_crop=False,
                       return_tensors="pt")["pixel_values"]
    with torch.no_grad():
      logits.append(hf(pixels).logits.numpy()[0])
  want = evaluate.softmax(np.mean(logits, 0).astype(np.float64))
  assert np.std(np.mean(logits, 0)) > 0.1  # far from uniform: a real check
  print(f"converted VideoMAE via tools.predict vs transformers: max |dp| = "
        f"{np.abs(got - want).max():.2e}")
  np.testing.assert_allclose(got, want, atol=2e-5)
  # tools.evaluate on synthetic_motion (the memorised run's tiny build): the
  # data's class c is head row order.index(c).
  from tools import evaluate as tool
  from vidjax.data import datasets
  config.dataset.update(dict(data_dir=memorised[1].dataset.data_dir,
                             train_per_class=2, test_per_class=1))
  summary = tool.evaluate_checkpoint(out, overrides={
      "dataset.data_dir": config.dataset.data_dir,
      "dataset.train_per_class": "2", "dataset.test_per_class": "1",
      "eval_max_videos": "2"}, out=str(tmp_path / "ev"),
      log=lambda line: None)
  assert summary["num_videos"] == 2 and summary["views_per_video"] == 4
  with open(tmp_path / "ev" / "predictions.jsonl") as f:
    row = json.loads(f.readline())
  video = np.asarray(datasets.load(config.dataset).test[0]["video"])
  logits = []
  for start in (0, 8, 17, 25):  # linspace(0, 32 - 7, 4), rounded
    pixels = processor(list(video[start:start + 8:2]), do_resize=False,
                       do_center_crop=False, return_tensors="pt")
    with torch.no_grad():
      logits.append(hf(pixels["pixel_values"]).logits.numpy()[0])
  mean = np.mean(logits, 0)[[order.index(c) for c in range(8)]]
  assert row["label"] == 0 and row["label_name"] == "translate_right"
  np.testing.assert_allclose(row["probabilities"], evaluate.softmax(
      mean.astype(np.float64)), atol=2e-5)


def test_evaluate_scores_the_data_classes_of_a_larger_head_by_name():
  from tools import evaluate as tool
  head = ["Abseiling", "air drumming", "archery", "applauding"]
  assert tool.class_columns(head, ["archery", "Air_Drumming"], 4) == [2, 1]
  assert tool.class_columns((), ["a", "b"], 2) == [0, 1]
  with pytest.raises(VidjaxError, match="1 of the 2 classes of ucf101 are "
                     "not among the checkpoint's 4: \\['juggling'\\]"):
    tool.class_columns(head, ["archery", "juggling"], 4, "ucf101")
  with pytest.raises(VidjaxError, match="has 3 classes, the checkpoint's head"):
    tool.class_columns((), ["a", "b", "c"], 2)
