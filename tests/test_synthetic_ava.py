"""synthetic_ava: determinism, boxes hold the rendered actors, labels match
the rendered motion (pixels), detector-box statistics as documented, and the
tiny TFDS build's AVA-format CSVs / pbtxt read back."""
import numpy as np
import pytest

from vidjax.data import ava_public as ap
from vidjax.data import ava_render as ar
from vidjax.errors import VidjaxError

KF = ar.keyframes(64, 8)


def _cover(actors, t, res=64):
  m = np.zeros((res, res), bool)
  for a in actors:
    m[a["y0"][t]:a["y0"][t] + a["side"], a["x0"][t]:a["x0"][t] + a["side"]] = 1
  return m


def _patch(video, a, t):
  s = a["side"]
  return video[t, a["y0"][t]:a["y0"][t] + s,
               a["x0"][t]:a["x0"][t] + s].astype(np.float32)


def _raised(video, a):
  """[T, S, S] brightness of an actor's patch (in its own, drifting frame)
  above each pixel's minimum over the video: the object is brighter than its
  background in every channel, so this is ~0 off the object."""
  bright = np.stack([_patch(video, a, t).sum(-1) for t in range(len(video))])
  return bright - bright.min(0)


def test_render_is_deterministic_and_keyframes_on_whole_seconds():
  v1, a1 = ar.render(0, "train", 3)
  v2, a2 = ar.render(0, "train", 3)
  v3, _ = ar.render(0, "train", 4)
  np.testing.assert_array_equal(v1, v2)
  assert v1.shape == (64, 64, 64, 3) and v1.dtype == np.uint8
  assert not np.array_equal(v1, v3)
  for x, y in zip(a1, a2):
    np.testing.assert_array_equal(x["x0"], y["x0"])
  assert KF.tolist() == [8, 16, 24, 32, 40, 48, 56]   # seconds 1..7 at 8 fps


def test_actors_have_distinct_motions_separate_boxes_and_drift_slowly():
  counts, flash = [], []
  for i in range(200):
    actors = ar.plan(0, "train", i)
    counts.append(len(actors))
    motions = [a["motion"] for a in actors]
    assert len(set(motions)) == len(motions)
    for a in actors:
      assert a["labels"].sum() == 1 + a["flash"] and a["labels"][a["motion"]]
      assert 19 <= a["side"] <= 28
      assert np.abs(np.diff(a["x0"])).max() <= 1
      flash.append(a["flash"])
    boxes = ar.gt_boxes(actors, KF, 64)
    for k in range(len(actors)):     # pairwise disjoint at every keyframe
      for j in range(k):
        assert (ar.iou(boxes[:, k], boxes[:, j]) == 0).all()
    assert ((boxes >= 0) & (boxes <= 1)).all()
  assert set(counts) == {2, 3}
  assert 0.33 < np.mean(flash) < 0.47


def test_boxes_hold_every_rendered_actor_pixel():
  for i in range(4):
    video, actors = ar.render(0, "test", i)
    # a pixel outside every box in frames t and u shows the same background
    for t in range(0, 64, 7):
      out = ~_cover(actors, t) & ~_cover(actors, 0)
      np.testing.assert_array_equal(video[t][out], video[0][out])
    for a in actors:   # and every box holds a visible object at keyframes
      raised = _raised(video, a)
      assert all((raised[t] > 40).sum() >= 6 for t in KF)


def _shift(m0, m1, reach=6):
  """(dx, dy) circular shift best taking mask m0 onto m1."""
  best, arg = -1, (0, 0)
  for dy in range(-reach, reach + 1):
    for dx in range(-reach, reach + 1):
      score = (np.roll(m0, (dy, dx), (0, 1)) & m1).sum()
      if score > best:
        best, arg = score, (dx, dy)
  return arg


def test_labels_match_the_rendered_motion():
  expect = {0: (1, 0), 1: (-1, 0), 2: (0, -1), 3: (0, 1)}
  seen = set()
  for i in range(12):
    video, actors = ar.render(1, "train", i)
    for a in actors:
      m = a["motion"]
      raised = _raised(video, a)
      masks = raised > 40
      if m in expect:   # the object moves in the labelled direction
        votes = np.array([_shift(masks[t], masks[t + 4]) for t in KF[:-1]])
        ex, ey = expect[m]
        along = votes[:, 0] * ex + votes[:, 1] * ey
        assert (along > 0).mean() >= 0.8, (i, m, votes)
        seen.add(m)
      elif m >= 6:      # grow / shrink: the object's area follows
        area = masks.sum((1, 2))
        early, late = area[4:16].mean(), area[48:60].mean()
        assert (late > early) if m == 6 else (late < early), (i, m)
        seen.add(m)
      # flashing: contrast alternates with period 8 (4 full, 4 dim)
      energy = raised[16:48].mean((1, 2))
      jump = np.abs(np.diff(np.log(energy))).max()   # frame to frame
      assert (jump > np.log(1.4)) if a["flash"] else (jump < np.log(1.2)), (
          i, a, jump)
  assert {0, 1, 2, 3, 6, 7} <= seen


def test_detector_boxes_jitter_miss_and_false_positives_as_documented():
  ious, found, fps, fp_scores, scores = [], 0, 0, [], []
  n_gt, n_kf = 0, 0
  for i in range(300):
    gt = ar.gt_boxes(ar.plan(0, "test", i), KF, 64)
    det = ar.detections(0, "test", i, gt)
    assert len(det) == len(KF)
    for k, (b, s, match) in enumerate(det):
      real = match >= 0
      ious += ar.iou(b[real], gt[k][match[real]]).tolist()
      found += real.sum()
      n_gt += gt.shape[1]
      n_kf += 1
      fps += (~real).sum()
      fp_scores += s[~real].tolist()
      scores += s[real].tolist()
      assert ((b >= 0) & (b <= 1)).all()
  ious = np.array(ious)
  assert 0.83 < ious.mean() < 0.89 and (ious >= 0.5).all()
  assert 0.74 < np.percentile(ious, 5) < 0.8
  assert abs(1 - found / n_gt - ar.MISS_RATE) < 0.012
  assert abs(fps / n_kf - ar.FP_RATE) < 0.04
  assert min(scores) >= 0.8 and 0.05 <= min(fp_scores)
  assert 0.05 < np.mean(np.array(fp_scores) >= 0.8) < 0.2  # some pass 0.8
  np.testing.assert_array_equal(ar.detections(0, "test", 5, gt)[0][0],
                                ar.detections(0, "test", 5, gt)[0][0])


def test_tiny_build_csvs_and_label_map_read_back(tmp_path):
  from vidjax.data import synthetic_ava as sa
  b = sa.load_builder(str(tmp_path), train_videos=3, test_videos=2)
  src = b.as_data_source("train")
  assert len(src) == 3 and len(b.as_data_source("test")) == 2
  names = ap.read_label_map(sa.label_map_path(b))
  assert names == {i + 1: n for i, n in enumerate(ar.ACTION_NAMES)}
  groups = ap.group_keyframes(ap.read_boxes(sa.csv_path(b, "train")),
                              sorted(names))
  assert len(groups) == 3 * len(KF)
  for vid, ts, boxes, labels, scores in groups:
    ex = src[int(vid.split("_")[1])]
    k = int(np.flatnonzero(ex["keyframes"] == ts * 8)[0])
    np.testing.assert_array_equal(boxes, ex["boxes"][k])    # exact: k / 64
    np.testing.assert_array_equal(labels, ex["labels"])
    assert (scores == 1).all()
  video, _ = ar.render(0, "train", 1)
  np.testing.assert_array_equal(src[1]["video"], video)
  det = ap.read_boxes(sa.csv_path(b, "test", "detector"))
  gt = ar.gt_boxes(ar.plan(0, "test", 1), KF, 64)
  want = ar.detections(0, "test", 1, gt)[2]
  got = det[("test_000001", 3)]
  np.testing.assert_allclose([r[0] for r in got], want[0], atol=1e-6)
  np.testing.assert_allclose([r[2] for r in got], want[1], atol=1e-6)
  assert all(r[1] == -1 for r in got)
  assert ap.read_excluded(sa.csv_path(b, "test", "excluded")) == set()


def test_bad_settings_name_the_config_key():
  from vidjax.data import synthetic_ava as sa
  for kw, key in ((dict(max_actors=5), "min_actors"),
                  (dict(video_frames=8), "video_frames"),
                  (dict(resolution=16), "resolution"),
                  (dict(train_videos=0), "train_videos")):
    with pytest.raises(VidjaxError, match=f"config.dataset.{key}="):
      sa.make_config(**kw)
  with pytest.raises(VidjaxError, match="unknown synthetic_ava"):
    sa.make_config(videos=3)


def test_one_frame_does_not_tell_the_labels():
  # contrast: dim in half the frames whether the actor flashes or not
  rng = np.random.default_rng(0)
  for flash in (True, False):
    dim = np.mean([ar.contrast(rng, flash, 64)[KF] == ar.DIM
                   for _ in range(2000)])
    assert abs(dim - 0.5) < 0.03, (flash, dim)
  # box side and position within the cell: the same in every class
  side = {c: [] for c in range(ar.NUM_ACTIONS)}
  pos = {c: [] for c in range(ar.NUM_ACTIONS)}
  for i in range(600):
    for a in ar.plan(0, "train", i):
      for c in np.flatnonzero(a["labels"]):
        side[c].append(a["side"])
        pos[c].append(a["x0"][KF] % 32)
  means = [np.mean(side[c]) for c in side]
  assert max(means) - min(means) < 1.0
  spread = [np.mean(pos[c]) for c in pos]
  assert max(spread) - min(spread) < 1.0
