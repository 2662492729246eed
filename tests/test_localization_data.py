"""Localization data: the seconds <-> feature-index timing, ActivityNet and
THUMOS14 annotation trees, padded batches and crops, and the readers of
features and videos over tiny trees in the official layouts."""
import json

import av
import numpy as np
import pytest
from ml_collections import ConfigDict

from vidjax.data import untrimmed_public as up
from vidjax.errors import VidjaxError
from vidjax.tasks.localization import annotations as ann
from vidjax.tasks.localization import data
from vidjax.tasks.localization.timing import FeatureTiming


def test_timing_half_window_offset():
  t = FeatureTiming(fps=30.0, span=16, stride=4)
  # feature i covers frames [4i, 4i + 16): centre frame 4i + 8, time /30
  assert t.start_frame(2) == 8
  assert t.centre_frame(0) == 8.0 and t.centre_time(0) == pytest.approx(8 / 30)
  assert t.centre_time(10) == pytest.approx(48 / 30)
  assert t.index_at(48 / 30) == pytest.approx(10.0)
  assert t.index_at(0.0) == pytest.approx(-2.0)     # the half window: -W/2S
  x = np.array([0.0, 0.5, 3.25, 17.0])
  np.testing.assert_allclose(t.centre_time(t.index_at(x)), x)
  assert t.num_features(100) == 22 and t.num_features(5) == 1
  off = FeatureTiming(fps=10.0, span=4, stride=2, offset=3)
  assert off.centre_time(1) == pytest.approx((3 + 2 + 2) / 10)
  w = FeatureTiming.windows(8.0, frames=8, frame_stride=2, stride=4)
  assert (w.span, w.stride) == (15, 4)
  assert w.window_frames([0, 2], 8, 20).tolist() == [
      [0, 2, 4, 6, 8, 10, 12, 14], [8, 10, 12, 14, 16, 18, 19, 19]]
  assert FeatureTiming.windows(8.0, 16).stride == 8
  f = FeatureTiming.frames(8.0)
  assert f.centre_time(0) == 1 / 16 and f.index_at(1.0) == 7.5
  with pytest.raises(VidjaxError, match="fps > 0"):
    FeatureTiming(fps=0.0)


def _meta(starts, fps=25.0, span=31, stride=15):
  return {"fps": fps, "span": span, "stride": stride,
          "features": [{"index": j, "start_frame": s} for j, s in
                       enumerate(starts)]}


def test_timing_from_extract_features_json():
  t = FeatureTiming.from_feature_meta(_meta([0, 15, 30]))
  assert (t.fps, t.span, t.stride, t.offset) == (25.0, 31, 15, 0)
  # the interval centre: (s + W / 2) / fps, as extract_features writes it
  assert t.centre_time(1) == pytest.approx((15 + 15.5) / 25)
  with pytest.raises(VidjaxError, match="not a regular window grid"):
    FeatureTiming.from_feature_meta(_meta([0, 15, 31]), "x.json")
  with pytest.raises(VidjaxError, match="needs fps, span and stride"):
    FeatureTiming.from_feature_meta({"fps": 25}, "x.json")


def _anet_json(path):
  db = {"a1": {"duration": 20.0, "subset": "training", "url": "u",
               "annotations": [{"segment": [1.0, 4.5], "label": "Run"},
                               {"segment": [10.0, 12.0], "label": "Jump"}]},
        "a2": {"duration": 9.0, "subset": "validation",
               "annotations": [{"segment": [2.0, 3.0], "label": "Jump"}]},
        "a3": {"duration": 30.0, "subset": "testing", "annotations": []}}
  with open(path, "w") as f:
    json.dump({"version": "VERSION 1.3", "taxonomy": [], "database": db}, f)


def test_activitynet_read_write_round_trip(tmp_path):
  _anet_json(tmp_path / "activity_net.v1-3.min.json")
  db = ann.read_activitynet(str(tmp_path / "activity_net.v1-3.min.json"))
  assert db["a1"].segments == ((1.0, 4.5, "Run"), (10.0, 12.0, "Jump"))
  assert db["a2"].subset == "validation" and db["a3"].segments == ()
  assert ann.class_names(db) == ["Jump", "Run"]
  assert ann.ground_truth(db, "validation") == {
      "a2": [{"segment": [2.0, 3.0], "label": "Jump"}]}
  ann.write_activitynet(str(tmp_path / "out.json"), db)
  assert ann.read_activitynet(str(tmp_path / "out.json")) == db
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"database": {"v": {"subset": "training",
      "annotations": [{"segment": [5, 1], "label": "x"}]}}}))
  with pytest.raises(VidjaxError, match="ends before it starts"):
    ann.read_activitynet(str(bad))
  bad.write_text("[]")
  with pytest.raises(VidjaxError, match="'database'"):
    ann.read_activitynet(str(bad))


def _thumos_tree(root):
  val = root / "TH14_Temporal_annotations_validation" / "annotation"
  test = root / "TH14_Temporal_Annotations_Test" / "annotations" / "annotation"
  val.mkdir(parents=True)
  test.mkdir(parents=True)
  (val / "BaseballPitch_val.txt").write_text(
      "video_validation_0000001  1.0  2.5\nvideo_validation_0000002 0.5 1.5\n")
  (val / "HighJump_val.txt").write_text("video_validation_0000001 3.0 4.0\n")
  (val / "Ambiguous_val.txt").write_text("video_validation_0000002 2.0 3.0\n")
  (test / "BaseballPitch_test.txt").write_text(
      "video_test_0000001 0.2 1.2\n\n")
  (test / "HighJump_test.txt").write_text("video_test_0000001 2.0 3.6\n")
  (test / "Ambiguous_test.txt").write_text("video_test_0000001 3.8 4.0\n")
  return root


def test_thumos14_lists(tmp_path):
  db = ann.read_thumos14(str(_thumos_tree(tmp_path)))
  assert sorted(db) == ["video_test_0000001", "video_validation_0000001",
                        "video_validation_0000002"]
  v1 = db["video_validation_0000001"]
  assert v1.subset == "validation" and v1.duration is None
  assert v1.segments == ((1.0, 2.5, "BaseballPitch"), (3.0, 4.0, "HighJump"))
  assert db["video_validation_0000002"].ambiguous == ((2.0, 3.0),)
  assert db["video_test_0000001"].subset == "test"
  assert ann.thumos14_class_names(str(tmp_path)) == ["BaseballPitch",
                                                     "HighJump"]
  assert ann.ambiguous(db, "test") == {"video_test_0000001": [[3.8, 4.0]]}
  (tmp_path / "TH14_Temporal_annotations_validation" / "annotation" /
   "Diving_val.txt").write_text("video_validation_0000003 1.0\n")
  with pytest.raises(VidjaxError, match="expected 'video_name start end'"):
    ann.read_thumos14(str(tmp_path))
  with pytest.raises(VidjaxError, match="no <Class>_val.txt"):
    ann.read_thumos14(str(tmp_path / "no_such_dir"))


def _seq(n, segs, labels, timing=None, dim=3):
  x = np.arange(n * dim, dtype=np.float32).reshape(n, dim)
  return data.Sequence("v", x, timing or FeatureTiming(10.0, 4, 2),
                       n * 0.2, np.asarray(segs, float), np.asarray(labels))


def test_pad_batch_values_and_limits():
  t = FeatureTiming(10.0, 4, 2)  # centre of step i: (2i + 2) / 10 s
  s1 = _seq(5, [[0.2, 0.6]], [1], t)
  s2 = _seq(3, [], [], t)
  b = data.pad_batch([s1, s2], max_len=8, max_segments=2)
  assert b["inputs"].shape == (2, 8, 3) and b["inputs"].dtype == np.float32
  assert b["mask"].tolist() == [[True] * 5 + [False] * 3,
                                [True] * 3 + [False] * 5]
  np.testing.assert_array_equal(b["inputs"][0, :5], s1.inputs)
  np.testing.assert_allclose(b["segments"][0, 0], [0.0, 2.0])  # index units
  np.testing.assert_allclose(b["segment_seconds"][0, 0], [0.2, 0.6])
  assert b["labels"].tolist() == [[1, -1], [-1, -1]]
  assert b["segment_mask"].tolist() == [[True, False], [False, False]]
  assert b["num_steps"].tolist() == [5, 3] and b["span"].tolist() == [4, 4]
  with pytest.raises(VidjaxError, match="6 steps > max_len=5"):
    data.pad_batch([_seq(6, [], [])], max_len=5, max_segments=1)
  with pytest.raises(VidjaxError, match="max_segments=1"):
    data.pad_batch([_seq(6, [[0, 1], [2, 3]], [0, 0])], 8, 1)
  assert data.bucket_length(33, 32) == 64 and data.bucket_length(64) == 64


def test_crop_shifts_timing_and_clips_segments():
  t = FeatureTiming(10.0, 4, 2)  # step i covers [0.2 i, 0.2 i + 0.4) s
  s = _seq(20, [[0.0, 1.0], [1.6, 2.0], [3.0, 3.5]], [0, 1, 2], t)
  c = data.crop(s, 5, 6)           # steps 5..10: seconds [1.0, 2.4)
  assert len(c) == 6 and c.timing.offset == 10
  np.testing.assert_array_equal(c.inputs, s.inputs[5:11])
  assert c.timing.centre_time(0) == pytest.approx(s.timing.centre_time(5))
  assert c.labels.tolist() == [1] and c.segments.tolist() == [[1.6, 2.0]]
  c = data.crop(s, 4, 3, min_overlap=0.5)  # [0.8, 1.6): keeps 20% of seg 0
  assert c.labels.tolist() == []
  c = data.crop(s, 4, 3, min_overlap=0.1)
  assert c.segments.tolist() == [[0.8, 1.0]]
  rng = np.random.default_rng(0)
  for _ in range(5):
    assert len(data.random_crop(s, 6, rng).labels) >= 1
  assert data.random_crop(s, 50, rng) is s


def _features_tree(root, db_ids):
  root.mkdir()
  for k, vid in enumerate(db_ids):
    np.save(root / f"v_{vid}.npy", np.full((7, 4), k, np.float32))
  with open(root / f"v_{db_ids[0]}.json", "w") as f:
    json.dump(_meta([0, 8, 16, 24, 32, 40, 48], fps=24.0, span=16,
                    stride=8), f)


def test_activitynet_features(tmp_path):
  _anet_json(tmp_path / "activity_net.v1-3.min.json")
  _features_tree(tmp_path / "feats", ["a1", "a2"])
  cfg = ConfigDict({"name": "activitynet", "manual_dir": str(tmp_path),
                    "features_dir": str(tmp_path / "feats"),
                    "feature_fps": 30.0, "feature_span": 16,
                    "feature_stride": 4, "feature_offset": 0})
  out = up.load(cfg)
  assert out["class_names"] == ["Jump", "Run"]
  train, test = out["train"], out["test"]
  assert train.video_ids == ["a1"] and test.video_ids == ["a2"]
  s = train[0]
  assert s.inputs.shape == (7, 4) and s.timing == FeatureTiming(24.0, 16, 8)
  assert s.labels.tolist() == [1, 0] and s.duration == 20.0
  # a2 has no sidecar JSON: the config's timing
  assert test[0].timing == FeatureTiming(30.0, 16, 4)
  assert out["missing"] == []
  cfg.feature_fps = 0.0
  with pytest.raises(VidjaxError, match="timing is unknown"):
    up.load(cfg)["test"][0]
  cfg.features_dir = str(tmp_path / "nothing")
  with pytest.raises(VidjaxError, match="features_dir"):
    up.load(cfg)


def _write_video(path, n, rate=10, size=(24, 32)):
  rng = np.random.default_rng(n)
  with av.open(str(path), "w") as c:
    s = c.add_stream("mpeg4", rate=rate)
    s.height, s.width = size
    s.pix_fmt = "yuv420p"
    for _ in range(n):
      frame = rng.integers(0, 255, size + (3,), np.uint8)
      c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    c.mux(s.encode())


def test_thumos14_videos_build_once(tmp_path):
  root = _thumos_tree(tmp_path / "thumos")
  (root / "validation").mkdir()
  (root / "TH14_test_set_mp4").mkdir()
  _write_video(root / "validation" / "video_validation_0000001.mp4", 45)
  _write_video(root / "TH14_test_set_mp4" / "video_test_0000001.mp4", 40)
  cfg = ConfigDict({"name": "thumos14", "manual_dir": str(root),
                    "data_dir": str(tmp_path / "tfds"), "resize_short": 16,
                    "fps": 0.0, "build_workers": 1})
  out = up.load(cfg)
  assert out["class_names"] == ["BaseballPitch", "HighJump"]
  assert out["missing"] == ["video_validation_0000002"]
  assert out["ambiguous"] == {"video_test_0000001": [[3.8, 4.0]]}
  train, test = out["train"], out["test"]
  assert train.video_ids == ["video_validation_0000001"]
  s = train[0]
  assert len(s) == 45 and s.timing == FeatureTiming.frames(10.0)
  frames = np.asarray(s.inputs)
  assert frames.shape == (45, 16, 21, 3)
  assert s.segments.tolist() == [[1.0, 2.5], [3.0, 4.0]]
  assert s.labels.tolist() == [0, 1]
  win = data.to_windows(s, frames=4, frame_stride=1, stride=2)  # LazyVideo
  assert len(win) == 21 and win.inputs.shape == (21, 4, 16, 21, 3)
  np.testing.assert_array_equal(win.inputs[20], frames[40:44])
  b = data.pad_batch([test[0]], max_len=48, max_segments=2)
  assert b["mask"][0].sum() == 40
  np.testing.assert_allclose(b["segments"][0], [[1.5, 11.5], [19.5, 35.5]])
  with pytest.raises(VidjaxError, match="manual_dir"):
    up.load(ConfigDict({"name": "thumos14", "manual_dir": str(tmp_path / "x")}))


def test_registry_names_localization_datasets():
  from vidjax.data import datasets
  for name in datasets.LOCALIZATION_DATASETS:
    with pytest.raises(VidjaxError, match="temporal localization dataset"):
      datasets.class_names(ConfigDict({"name": name}))


def test_activitynet_videos_v_prefix(tmp_path):
  _anet_json(tmp_path / "activity_net.v1-3.min.json")
  (tmp_path / "videos" / "train").mkdir(parents=True)
  (tmp_path / "videos" / "val").mkdir()
  _write_video(tmp_path / "videos" / "train" / "v_a1.mp4", 30, rate=5)
  _write_video(tmp_path / "videos" / "val" / "v_a2.mp4", 20, rate=5)
  cfg = ConfigDict({"name": "activitynet", "manual_dir": str(tmp_path),
                    "data_dir": str(tmp_path / "tfds"), "resize_short": 12,
                    "build_workers": 1})
  out = up.load(cfg)
  assert out["train"].video_ids == ["a1"] and out["test"].video_ids == ["a2"]
  s = out["train"][0]
  assert len(s) == 30 and s.timing.fps == 5.0 and s.duration == 20.0
  assert s.labels.tolist() == [1, 0]  # Run, Jump in class order Jump, Run
  np.testing.assert_allclose(s.timing.index_at(s.segments),
                             [[4.5, 22.0], [49.5, 59.5]])
