"""synthetic_untrimmed: instance plans, exact boundaries, class semantics,
determinism, and the tiny TFDS build read through the ActivityNet JSON."""
import numpy as np
import pytest

from vidjax.data import synthetic_render as sr
from vidjax.data import untrimmed_render as ur
from vidjax.tasks.localization import annotations, data
from vidjax.tasks.localization.timing import FeatureTiming

TINY = dict(train_videos=3, test_videos=2, min_frames=64, max_frames=96,
            max_duration=24)


def test_plans_hold_1_to_4_separate_instances_at_several_scales():
  durations, labels, counts = [], [], set()
  for i in range(300):
    p = ur.plan(0, "train", i)
    t, segs = p["num_frames"], p["segments"]
    assert 256 <= t <= 512 and 1 <= len(segs) <= 4
    counts.add(len(segs))
    assert segs[0, 0] >= 4 and segs[-1, 1] <= t - 4
    assert (segs[1:, 0] - segs[:-1, 1] >= 4).all()      # gaps >= min_gap
    d = segs[:, 1] - segs[:, 0]
    assert ((d >= 8) & (d <= 96)).all()
    durations += d.tolist()
    labels += p["labels"].tolist()
  assert counts == {1, 2, 3, 4}
  d = np.array(durations)
  # log-uniform: every octave 8-16, 16-32, 32-64, 64-96 well populated
  for lo, hi in ((8, 16), (16, 32), (32, 64), (64, 97)):
    assert ((d >= lo) & (d < hi)).mean() > 0.15
  assert np.bincount(labels, minlength=8).min() > 40


def test_render_is_deterministic():
  a = ur.render(3, "train", 5, min_frames=64, max_frames=80, max_duration=20)
  b = ur.render(3, "train", 5, min_frames=64, max_frames=80, max_duration=20)
  c = ur.render(3, "train", 6, min_frames=64, max_frames=80, max_duration=20)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert a[0].shape[1:] == (32, 32, 3) and a[0].dtype == np.uint8
  assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def _pose_steps(index, monkeypatch, **kw):
  """Per-frame pose changes with the idle jitter switched off."""
  monkeypatch.setattr(ur, "JITTER_STD", (0.0, 0.0, 0.0))
  p = ur.plan(0, "train", index, **kw)
  cx, cy, ang, size = ur.trajectory(p, 32)
  d = lambda x, period=None: (np.diff(x) if period is None else
                              (np.diff(x) + period / 2) % period - period / 2)
  return p, np.stack([d(cx, 32), d(cy, 32), d(ang, 2 * np.pi),
                      np.diff(np.log(size))])


def test_boundaries_are_exact_and_motion_matches_the_class(monkeypatch):
  seen = set()
  for i in range(40):
    p, steps = _pose_steps(i, monkeypatch)
    moving = np.abs(steps).max(0) > 1e-9           # change frame j -> j + 1
    want = np.zeros(p["num_frames"] - 1, bool)
    for (a, b), c in zip(p["segments"], p["labels"]):
      want[a:b - 1] = True                          # frames a .. b-1 move
      dx, dy, da, ds = steps[:, a:b - 1].mean(1)
      expect = {0: dx > 0.49, 1: dx < -0.49, 2: dy < -0.49, 3: dy > 0.49,
                4: da > np.deg2rad(4.9), 5: da < -np.deg2rad(4.9),
                6: ds > 0.005, 7: ds < -0.005}[int(c)]
      assert expect, (i, c, dx, dy, da, ds)
      seen.add(int(c))
    np.testing.assert_array_equal(moving, want)
  assert seen == set(range(8))


def test_size_stays_in_range_and_grow_shrink_swap(monkeypatch):
  lo, hi = ur.LOG_SIZE_RANGE
  for i in range(200):
    p = ur.plan(0, "test", i)
    _, _, _, size = ur.trajectory(p, 32)
    assert np.log(size).min() > lo - 0.1 and np.log(size).max() < hi + 0.1


def test_idle_jitter_has_no_direction():
  # drift over a long idle stretch is small against an action's displacement
  p = ur.plan(0, "train", 0)
  p["segments"], p["labels"], p["speeds"] = (np.zeros((0, 2), int),
                                             np.zeros(0, int), np.zeros(0))
  cx, cy, ang, size = ur.trajectory(p, 32)
  assert np.abs(np.diff(cx)).mean() < 0.5 and np.ptp(np.log(size)) < 0.15
  step = (np.diff(cx) + 16) % 32 - 16
  assert abs(step.mean()) < 0.05


@pytest.fixture(scope="module")
def tiny_builder(tmp_path_factory):
  from vidjax.data import synthetic_untrimmed as su
  return su.load_builder(str(tmp_path_factory.mktemp("tfds")), **TINY)


def test_build_records_and_activitynet_json_agree(tiny_builder):
  from vidjax.data import synthetic_untrimmed as su
  cfg = tiny_builder.builder_config
  db = annotations.read_activitynet(su.annotations_path(tiny_builder))
  assert len(db) == 5
  assert sorted(annotations.subset(db, "training")) == [
      "train_000000", "train_000001", "train_000002"]
  for split in ("train", "test"):
    src = tiny_builder.as_data_source(split)
    for i in range(len(src)):
      ex = src[i]
      want = su.render_example(cfg, split, i)
      np.testing.assert_array_equal(ex["video"], want["video"])
      vid = su.video_id(split, i)
      segs = np.asarray(ex["segments"])
      assert ex["num_frames"] == len(ex["video"])
      a = db[vid]
      assert a.duration == len(ex["video"]) / 8.0
      assert a.subset == su.SUBSETS[split]
      assert [list(s[:2]) for s in a.segments] == (segs / 8.0).tolist()
      assert [s[2] for s in a.segments] == [
          sr.MOTION_NAMES[c] for c in np.asarray(ex["labels"])]


def test_sequences_pad_to_one_shape(tiny_builder):
  seqs = data.SyntheticSequences(tiny_builder, "train")
  assert len(seqs) == 3 and seqs.class_names == list(sr.MOTION_NAMES)
  items = [seqs[i] for i in range(3)]
  batch = data.pad_batch(items, max_len=96, max_segments=4)
  assert batch["inputs"].shape == (3, 96, 32, 32, 3)
  assert batch["inputs"].dtype == np.uint8
  for i, s in enumerate(items):
    n = len(s)
    assert batch["mask"][i].sum() == n and batch["num_steps"][i] == n
    assert not batch["inputs"][i, n:].any()
    m = len(s.labels)
    assert batch["segment_mask"][i].sum() == m
    assert (batch["labels"][i, m:] == -1).all()
    # one step per frame: frame a starts at a/fps, whose step coordinate is
    # a - 0.5 (step i's centre is frame i's middle)
    frames = np.asarray(tiny_builder.as_data_source("train")[i]["segments"])
    np.testing.assert_allclose(batch["segments"][i, :m], frames - 0.5)
    np.testing.assert_allclose(batch["segment_seconds"][i, :m], frames / 8.0)
    assert s.timing == FeatureTiming.frames(8.0)


def test_config_load_and_clip_windows(tiny_builder):
  from ml_collections import ConfigDict
  data_dir = str(tiny_builder.data_dir).split("/synthetic_untrimmed/")[0]
  out = data.load(ConfigDict(dict(name="synthetic_untrimmed",
                                  data_dir=data_dir, **TINY)))
  assert len(out["train"]) == 3 and len(out["test"]) == 2
  assert out["class_names"] == list(sr.MOTION_NAMES)
  seq = out["test"][1]
  video = np.asarray(tiny_builder.as_data_source("test")[1]["video"])
  np.testing.assert_array_equal(seq.inputs, video)
  win = data.to_windows(seq, frames=8, frame_stride=2, stride=4)
  t = win.timing
  assert (t.span, t.stride) == (15, 4)
  assert len(win) == (len(video) - 15) // 4 + 1
  np.testing.assert_array_equal(win.inputs[3], video[12:27:2])
  # the window centre: frames [12, 27) -> (12 + 7.5) / 8 s
  assert t.centre_time(3) == (12 + 7.5) / 8
  b = data.pad_batch([win], max_len=32, max_segments=4)
  assert b["inputs"].shape == (1, 32, 8, 32, 32, 3)
  np.testing.assert_allclose(b["segments"][0, :len(seq.labels)],
                             (seq.segments * 8 - 7.5) / 4, rtol=1e-6)


@pytest.mark.parametrize("overrides,key", [
    (dict(min_frames=600), "min_frames"),
    (dict(max_instances=4, min_duration=40, min_frames=150, max_frames=200),
     "min_frames"),
    (dict(min_duration=1), "min_duration"),
    (dict(train_videos=0), "train_videos"),
    (dict(fps=0.0), "fps"),
])
def test_bad_settings_are_one_line_errors(overrides, key):
  from vidjax.data import synthetic_untrimmed as su
  from vidjax.errors import VidjaxError
  with pytest.raises(VidjaxError, match=f"config.dataset.{key}="):
    su.make_config(**overrides)
