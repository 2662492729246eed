"""Detection data: boxes follow crops and flips (rendered markers), flips
swap direction labels (and the pixels agree), clip sampling, fixed-shape
batches, synthetic_ava loading with GT / detector boxes, and the `ava`
builder on a tiny tree in the PySlowFast layout."""
import os

import cv2
import numpy as np
import pytest
from ml_collections import ConfigDict

from vidjax.data import ava_public as ap
from vidjax.data import ava_render as ar
from vidjax.data import box_augment as ba
from vidjax.errors import VidjaxError
from vidjax.tasks.detection import data


def _marker_clip(boxes, size=64, t=2):
  frames = np.zeros((t, size, size, 3), np.uint8)
  for k, (x1, y1, x2, y2) in enumerate(boxes):
    frames[:, round(y1 * size):round(y2 * size),
           round(x1 * size):round(x2 * size), k] = 255
  return frames


def _extent(channel):
  ys, xs = np.nonzero(channel > 127)
  h, w = channel.shape
  return np.array([xs.min() / w, ys.min() / h, (xs.max() + 1) / w,
                   (ys.max() + 1) / h])


def test_boxes_follow_random_crops_and_flips_of_rendered_markers():
  boxes = np.array([[0.125, 0.25, 0.5, 0.75], [0.625, 0.0625, 0.9375, 0.4375]],
                   np.float32)
  clip = _marker_clip(boxes)
  labels = np.eye(2, dtype=np.uint8)
  rng = np.random.default_rng(0)
  checked = dropped = flips = 0
  for _ in range(60):
    out, b, lab, keep = ba.augment(clip, boxes, labels, rng, out_size=48,
                                   scale=(0.5, 1.0))
    assert keep.sum() == len(b)
    assert out.shape == (2, 48, 48, 3) and out.dtype == np.uint8
    if len(b) == 2:   # both kept: mirrored iff marker 1 is now left of 0
      flips += b[1, 0] < b[0, 0]
    dropped += 2 - len(b)
    for box, l in zip(b, lab):
      marker = out[0, :, :, int(l.argmax())]   # the box's own colour channel
      # the transformed box covers its marker's visible pixels, to a pixel
      np.testing.assert_allclose(box, _extent(marker), atol=1.5 / 48)
      checked += 1
  assert checked > 60 and dropped > 0 and flips > 5


def test_crop_drops_boxes_that_leave_the_window_and_clips_the_rest():
  boxes = np.array([[0.0, 0.0, 0.2, 0.2], [0.4, 0.4, 0.9, 0.9],
                    [0.45, 0.1, 0.6, 0.3]], np.float32)
  clipped, keep = ba.crop_boxes(boxes, (0.5, 0.5, 0.5, 0.5))
  assert keep.tolist() == [False, True, False]
  np.testing.assert_allclose(clipped[1], [0.0, 0.0, 0.8, 0.8], atol=1e-6)
  # a box mostly outside (10% visible) is dropped at min_visible=0.25
  _, keep = ba.crop_boxes(np.array([[0.0, 0.0, 0.55, 0.2]]), (0.5, 0, .5, 1))
  assert keep.tolist() == [False]


def test_letterbox_keeps_boxes_on_their_pixels():
  frames = np.zeros((1, 40, 80, 3), np.uint8)
  frames[0, 10:30, 20:60, 0] = 255
  out, b = ba.letterbox(frames, np.array([[0.25, 0.25, 0.75, 0.75]]), 64)
  assert out.shape == (1, 64, 64, 3)
  np.testing.assert_allclose(b[0], _extent(out[0, :, :, 0]), atol=1 / 64)


def test_flip_swaps_direction_labels_and_the_pixels_agree():
  perm = np.asarray(ar.FLIP_PERMUTATION)
  names = np.asarray(ar.ACTION_NAMES)
  assert names[perm].tolist()[:6] == [
      "translate_left", "translate_right", "translate_up", "translate_down",
      "rotate_anticlockwise", "rotate_clockwise"]
  assert (perm[perm] == np.arange(len(perm))).all()
  # a translate_right actor, mirrored, moves left on screen
  for i in range(30):
    video, actors = ar.render(2, "train", i)
    a = next((a for a in actors if a["motion"] == 0), None)
    if a is not None:
      break
  t0, t1 = 24, 32
  boxes = ar.gt_boxes([a], [t0, t1], 64)[:, 0]
  lab = a["labels"][None]
  flipped, fb, fl = ba.hflip(video[[t0, t1]], boxes, lab, perm)
  assert fl[0, 1] == 1 and fl[0, 0] == 0            # now translate_left

  def centroid_x(frame, box):
    x1, y1, x2, y2 = np.rint(box * 64).astype(int)
    patch = frame[y1:y2, x1:x2].astype(np.float32).sum(-1)
    w = patch - np.median(patch)
    w = np.where(w > 40, w, 0)
    ang = 2 * np.pi * (np.arange(x2 - x1) + 0.5) / (x2 - x1)   # torus mean
    return np.angle((w.sum(0) * np.exp(1j * ang)).sum()), x2 - x1
  (c0, s0), (c1, s1) = centroid_x(flipped[0], fb[0]), centroid_x(flipped[1],
                                                                fb[1])
  step = (np.angle(np.exp(1j * (c1 - c0))) * s0 / (2 * np.pi)
          - (fb[1, 0] - fb[0, 0]) * 64)
  assert step < -1.0                  # moved left within its (moving) box


def test_clip_indices_follow_pyslowfast_get_sequence():
  np.testing.assert_array_equal(data.clip_indices(60, 4, 2, 200),
                                [56, 58, 60, 62])
  np.testing.assert_array_equal(data.clip_indices(2, 4, 2, 200), [0, 0, 2, 4])
  np.testing.assert_array_equal(data.clip_indices(9, 4, 3, 12),
                                [3, 6, 9, 11])


class _Frames:
  def __init__(self, videos):
    self.videos = videos

  def num_frames(self, vid):
    return len(self.videos[vid])

  def frames(self, vid, idx):
    return self.videos[vid][idx]


def test_make_batch_pads_masks_and_keeps_the_best_scored_boxes():
  video = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones(
      (10, 32, 32, 3), np.uint8)
  kfs = [data.Keyframe("v", 1, 5, np.array([[0, 0, .5, .5], [.5, .5, 1, 1],
                                            [0, .5, .5, 1]], np.float32),
                       np.eye(3, dtype=np.uint8), np.array([.5, .9, .7],
                                                           np.float32)),
         data.Keyframe("v", 2, 8, np.zeros((0, 4), np.float32),
                       np.zeros((0, 3), np.uint8), np.zeros(0, np.float32))]
  kset = data.KeyframeSet(kfs, _Frames({"v": video}))
  spec = data.ClipSpec(num_frames=4, frame_stride=2, crop_size=16,
                       max_boxes=2)
  b = data.make_batch(kset, [0, 1], spec)
  assert b["video"].shape == (2, 4, 16, 16, 3)
  assert b["video"][0, :, 0, 0, 0].tolist() == [1, 3, 5, 7]
  assert b["video"][1, :, 0, 0, 0].tolist() == [4, 6, 8, 9]
  assert b["box_mask"].tolist() == [[True, True], [False, False]]
  np.testing.assert_allclose(b["scores"][0], [.9, .7])
  np.testing.assert_array_equal(b["labels"][0], [[0, 1, 0], [0, 0, 1]])
  np.testing.assert_array_equal(b["boxes"][0, 0], [.5, .5, 1, 1])
  b["valid"] = np.array([True, True])
  probs = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 12
  rows = data.prediction_rows(kset, b, probs, class_ids=[4, 7, 9])
  assert len(rows) == 2 * 3                    # 2 real boxes x 3 classes
  assert [r[3] for r in rows] == [4, 7, 9, 4, 7, 9]
  assert rows[4][:2] == ("v", 1) and rows[4][4] == pytest.approx(4 / 12)
  np.testing.assert_array_equal(rows[4][2], [0, .5, .5, 1])
  assert not any(r[0] == "v" and r[1] == 2 for r in rows)   # no boxes
  b["valid"][0] = False
  assert data.prediction_rows(kset, b, probs, [4, 7, 9]) == []
  trained = data.make_batch(kset, [0, 0], spec, np.random.default_rng(1))
  assert trained["video"].shape == (2, 4, 16, 16, 3)
  assert trained["labels"].shape == (2, 2, 3)


def test_synthetic_ava_loads_with_gt_or_detector_boxes(tmp_path):
  cfg = ConfigDict({"name": "synthetic_ava", "data_dir": str(tmp_path),
                    "train_videos": 3, "test_videos": 2, "eval_boxes": "gt",
                    "num_frames": 16, "frame_stride": 1, "crop_size": 64,
                    "max_boxes": 0, "flip": True})
  got = data.load(cfg)
  assert got["class_ids"] == list(range(1, 10)) and got["max_boxes"] == 3
  train, test = got["train"], got["test"]
  assert len(train) == 3 * 7 and len(test) == 2 * 7
  spec = data.ClipSpec.from_config(cfg, got["max_boxes"])
  b = data.make_batch(test, [0, 8], spec)
  video, actors = ar.render(0, "test", 0)
  np.testing.assert_array_equal(b["video"][0], video[0:16])   # around 8
  np.testing.assert_array_equal(
      b["boxes"][0, :len(actors)], ar.gt_boxes(actors, [8], 64)[0])
  np.testing.assert_array_equal(
      b["labels"][0, :len(actors)], np.stack([a["labels"] for a in actors]))
  cfg.eval_boxes = "detector"
  det = data.load(cfg)["test"]
  assert len(det) == len(test)
  kf = det.keyframes[0]
  want = ar.detections(0, "test", 0, ar.gt_boxes(actors, ar.keyframes(64, 8),
                                                  64))[0]
  keep = want[1] >= 0.8
  np.testing.assert_allclose(np.sort(kf.scores), np.sort(want[1][keep]),
                             atol=1e-6)
  assert not kf.labels.any()
  cfg.eval_boxes = "tracker"
  with pytest.raises(VidjaxError, match="config.dataset.eval_boxes"):
    data.load(cfg)


def test_registry_names_detection_datasets():
  from vidjax.data import datasets
  for name in datasets.DETECTION_DATASETS:
    with pytest.raises(VidjaxError, match="spatio-temporal detection"):
      datasets.class_names(ConfigDict({"name": name}))


# -------------------------------------------------- the ava builder, tiny tree
def _ava_tree(root, frames_per_video=100):
  ann = root / "annotations"
  ann.mkdir(parents=True)
  for vid in ("vidA", "-vidB"):
    folder = root / "frames" / vid
    folder.mkdir(parents=True)
    for i in range(frames_per_video):   # frame index i: grey level 2 * i
      img = np.full((8, 12, 3), 2 * i, np.uint8)
      cv2.imwrite(str(folder / f"{vid}_{i + 1:06d}.jpg"), img)
  (ann / ap.GT_FILES["train"]).write_text(
      "vidA,0902,0.1,0.2,0.5,0.9,12,0\n"
      "vidA,0902,0.1,0.2,0.5,0.9,80,0\n"     # same person, second action
      "vidA,0902,0.6,0.1,0.9,0.8,12,1\n"
      "vidA,0902,0.6,0.1,0.9,0.8,5,1\n"      # 5 not in the label map
      "vidA,0901,0.1,0.2,0.5,0.9,12,0\n"     # second 901: not a keyframe
      "-vidB,0903,0.2,0.2,0.4,0.4,80,0\n"
      "-vidB,0902,0.2,0.2,0.4,0.4,12,0\n")   # excluded below
  (ann / ap.GT_FILES["test"]).write_text("vidA,0903,0.1,0.1,0.3,0.3,80,3\n")
  (ann / ap.EXCLUDED_FILES["train"]).write_text("-vidB,0902\n")
  (ann / ap.EXCLUDED_FILES["test"]).write_text("")
  (ann / ap.DETECTOR_FILES["test"]).write_text(
      "vidA,0903,0.1,0.1,0.31,0.3,,0.95\nvidA,0903,0.5,0.5,0.7,0.7,,0.3\n")
  ap.write_label_map(str(ann / ap.LABEL_MAP), {12: "stand", 80: "watch"})


def test_ava_builder_on_a_tiny_tree(tmp_path):
  _ava_tree(tmp_path)
  assert ap.frame_index(902) == 60      # file vid_000061.jpg
  cfg = ConfigDict({"name": "ava", "manual_dir": str(tmp_path),
                    "eval_boxes": "gt"})
  got = data.load(cfg)
  assert got["class_ids"] == [12, 80] and got["class_names"] == ["stand",
                                                                  "watch"]
  train = got["train"]
  keys = [(k.video_id, k.timestamp) for k in train.keyframes]
  assert keys == [("-vidB", 903), ("vidA", 902)]
  a = train.keyframes[1]
  np.testing.assert_allclose(a.boxes, [[.1, .2, .5, .9], [.6, .1, .9, .8]])
  np.testing.assert_array_equal(a.labels, [[1, 1], [1, 0]])
  assert a.center == 60
  spec = data.ClipSpec(num_frames=4, frame_stride=2, crop_size=12,
                       max_boxes=2)
  b = data.make_batch(train, [1, 0], spec)
  levels = b["video"][:, :, 6, 6, 0].astype(int)   # centre of the picture
  np.testing.assert_allclose(levels[0], [112, 116, 120, 124], atol=3)
  np.testing.assert_allclose(levels[1], [172, 176, 180, 184], atol=3)
  # 8x12 frames are letterboxed to 12x12: y -> (8 y + 2) / 12; results go
  # back in the keyframe's own coordinates
  np.testing.assert_allclose(b["boxes"][0, 0], [.1, (1.6 + 2) / 12, .5,
                                                (7.2 + 2) / 12], atol=1e-6)
  rows = data.prediction_rows(train, b, np.full((2, 2, 2), .5), [12, 80])
  np.testing.assert_allclose(rows[0].box, [.1, .2, .5, .9], atol=1e-6)
  assert [(r.video_id, r.timestamp, r.action) for r in rows[:2]] == [
      ("vidA", 902, 12), ("vidA", 902, 80)]
  cfg.eval_boxes = "detector"
  det = data.load(cfg)["test"].keyframes
  assert len(det) == 1 and det[0].scores.tolist() == pytest.approx([0.95])


def test_ava_builder_bad_input_names_the_file(tmp_path):
  with pytest.raises(VidjaxError, match="config.dataset.manual_dir"):
    data.load(ConfigDict({"name": "ava", "manual_dir": str(tmp_path / "no")}))
  _ava_tree(tmp_path, frames_per_video=2)
  cfg = ConfigDict({"name": "ava", "manual_dir": str(tmp_path)})
  os.remove(tmp_path / "annotations" / ap.GT_FILES["test"])
  with pytest.raises(VidjaxError, match="ava_val_v2.2.csv"):
    data.load(cfg)
  (tmp_path / "annotations" / ap.GT_FILES["test"]).write_text(
      "vidC,0903,0.1,0.1,0.3,0.3,80,3\n")
  with pytest.raises(VidjaxError, match="frames/vidC"):
    data.load(cfg)
  (tmp_path / "annotations" / ap.GT_FILES["test"]).write_text("vidA,0903,x\n")
  with pytest.raises(VidjaxError, match="ava_val_v2.2.csv:1"):
    data.load(cfg)
