"""AVA frame-mAP (vidjax.tasks.detection.evaluate) on hand-built cases with
known answers, a brute-force comparison, and the AVA file formats."""
import json
import math

import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.tasks.detection import ava_io, eval_cli
from vidjax.tasks.detection import evaluate as ev

R = ava_io.AvaRow
A = (0.0, 0.0, 0.5, 1.0)           # x1, y1, x2, y2
B = (0.5, 0.0, 1.0, 1.0)
C = (0.0, 0.0, 1.0, 0.4)


def gt(*items, video="v", ts=902):
  return [R(video, ts, box, cls, 1.0) for box, cls in items]


def det(*items, video="v", ts=902):
  return [R(video, ts, box, cls, s) for box, cls, s in items]


def fmap(g, d, classes=(1, 2), **kw):
  return ev.frame_map(g, d, classes, **kw)


def test_perfect_detection_is_one():
  g = gt((A, 1), (B, 2), (C, 1)) + gt((B, 1), ts=903)
  d = det((A, 1, .9), (B, 2, .3), (C, 1, .8)) + det((B, 1, .1), ts=903)
  out = fmap(g, d)
  assert out["map"] == 1.0 and out["ap"] == {1: 1.0, 2: 1.0}
  assert out["num_gt"] == {1: 3, 2: 1} and out["num_keyframes"] == 2


def test_duplicate_is_false_positive_tp_fp_tp():
  # ranks: A (TP), duplicate of A (FP), B (TP) over 2 GT:
  # AP = 0.5 * 1 + 0.5 * 2/3 = 0.8333
  out = fmap(gt((A, 1), (B, 1)), det((A, 1, .9), (A, 1, .8), (B, 1, .7)),
             classes=(1,))
  assert math.isclose(out["map"], 0.5 + 0.5 * 2 / 3)
  # the duplicate ranked last costs nothing
  out = fmap(gt((A, 1), (B, 1)), det((A, 1, .9), (B, 1, .8), (A, 1, .7)),
             classes=(1,))
  assert out["map"] == 1.0


@pytest.mark.parametrize("x2,hit", [(0.49, False), (0.5, True),
                                    (0.51, True)])
def test_iou_threshold(x2, hit):
  # GT [0, 1] x [0, 1]; detection [0, x2] x [0, 1]: IoU = x2, normalised
  # coordinates with no "+1" in the widths
  out = fmap(gt(((0, 0, 1, 1), 1)), det(((0, 0, x2, 1), 1, .5)), (1,))
  assert out["map"] == (1.0 if hit else 0.0)
  np.testing.assert_allclose(ev.box_iou([(0, 0, x2, 1)], [(0, 0, 1, 1)]),
                             [[x2]])


def test_voc_rule_best_gt_taken_is_false_positive():
  # GT P = [0, .6], Q = [.3, .9] (x); a second detection D = [.1, .75] has
  # IoU .667 with P (taken by the first) and .5625 with Q: VOC counts it a
  # false positive (it does not fall back to Q) -> AP = 0.5
  p, q, d = (0, 0, .6, 1), (.3, 0, .9, 1), (.1, 0, .75, 1)
  iou = ev.box_iou([d], [p, q])[0]
  assert iou[0] > iou[1] >= 0.5
  out = fmap(gt((p, 1), (q, 1)), det((p, 1, .9), (d, 1, .8)), (1,))
  assert out["map"] == 0.5


def test_class_whitelist():
  g = gt((A, 1), (B, 3))
  d = det((A, 1, .5), (A, 3, .9), (B, 3, .2))
  out = fmap(g, d, classes=(1, 2))
  assert out["ap"][1] == 1.0 and 3 not in out["ap"]
  assert math.isnan(out["ap"][2])          # no GT: not in the mean
  assert out["map"] == 1.0 and out["num_detections"] == 1


def test_excluded_timestamps():
  g = gt((A, 1)) + gt((B, 1), ts=903)
  d = det((A, 1, .9)) + det((A, 1, .95), ts=903)     # 903: wrong box
  assert fmap(g, d, (1,))["map"] == 0.25     # FP, then TP: 1 of 2 GT at 1/2
  out = fmap(g, d, (1,), excluded={("v", 903)})
  assert out["map"] == 1.0 and out["num_gt"][1] == 1


def test_multi_label_person():
  # one person, two actions = two GT rows of different classes
  g = gt((A, 1), (A, 2))
  assert fmap(g, det((A, 1, .6), (A, 2, .4)))["map"] == 1.0
  out = fmap(g, det((A, 1, .6)))
  assert out["ap"] == {1: 1.0, 2: 0.0} and out["map"] == 0.5


def test_top_k_per_keyframe():
  g = gt((A, 1), (B, 1), (C, 1))
  d = det((A, 1, .9), (B, 1, .8), (C, 1, .7))
  assert fmap(g, d, (1,))["map"] == 1.0
  assert math.isclose(fmap(g, d, (1,), top_k=2)["map"], 2 / 3)
  # the budget is shared by all classes of the keyframe
  d2 = d + det((A, 2, .95), (B, 2, .85))
  out = fmap(g, d2, (1, 2), top_k=3)
  assert math.isclose(out["ap"][1], 1 / 3) and out["num_detections"] == 3
  # an equal score does not replace the heap's minimum (first come kept)
  kept = ev.keyframe_lists(det((A, 1, .5), (B, 1, .5)), {1}, capacity=1)
  np.testing.assert_array_equal(kept[("v", 902)][0], [A])
  # the official default keeps 50 per keyframe
  many = det(*[((0, 0, .5 + i / 1000, 1), 2, i / 100) for i in range(60)])
  assert fmap(g, d + many)["num_detections"] == 50


def test_unlisted_keyframes_and_invalid_boxes():
  g = gt((A, 1))
  d = det((A, 1, .5)) + det((A, 1, .9), ts=950)        # no GT at 950
  assert fmap(g, d, (1,))["map"] == 0.5                  # v2.x: an FP
  assert fmap(g, d, (1,), unlisted="ignore")["map"] == 1.0
  bad = det(((.5, 0, .5, 1), 1, .99), ((.2, .6, .3, .6), 1, .98))
  out = fmap(g, det((A, 1, .5)) + bad, (1,))
  assert out["map"] == 1.0 and out["num_detections"] == 1
  with pytest.raises(VidjaxError, match="unlisted"):
    fmap(g, d, (1,), unlisted="drop")


def _brute_map(g, d, classes, top_k):
  """Independent rendering: distinct scores, one global ranking per class,
  AP = sum over TPs of the best precision at or after them / #GT."""
  def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    i = w * h
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) *
                (b[3] - b[1]) - i)
  kept = []
  for key in {(r.video_id, r.timestamp) for r in d}:
    rows = [r for r in d if (r.video_id, r.timestamp) == key and
            r.action in classes]
    kept += [r for r in sorted(rows, key=lambda r: -r.extra)[:top_k]
             if r.box[0] < r.box[2] and r.box[1] < r.box[3]]
  aps = []
  for c in classes:
    gts = [r for r in g if r.action == c]
    if not gts:
      continue
    taken = set()
    flags = []
    for r in sorted([r for r in kept if r.action == c], key=lambda r: -r.extra):
      cands = [(iou(r.box, x.box), i) for i, x in enumerate(gts)
               if (x.video_id, x.timestamp) == (r.video_id, r.timestamp)]
      best = max(cands, key=lambda t: (t[0], -t[1])) if cands else (0, -1)
      ok = best[0] >= 0.5 and best[1] not in taken
      taken.add(best[1]) if ok else None
      flags.append(ok)
    prec = np.cumsum(flags) / np.arange(1, len(flags) + 1)
    aps.append(sum(prec[k:].max() for k in range(len(flags)) if flags[k]) /
               len(gts))
  return float(np.mean(aps))


def test_random_cases_match_brute_force():
  rng = np.random.default_rng(0)
  for case in range(20):
    g, d = [], []
    for ts in range(900, 900 + rng.integers(1, 5)):
      people = rng.uniform(0, 0.6, (rng.integers(1, 4), 2))
      for p in people:
        box = tuple(np.r_[p, p + rng.uniform(0.2, 0.4, 2)].tolist())
        for c in rng.choice([1, 2, 3], rng.integers(1, 3), replace=False):
          g.append(R("v%d" % (ts % 2), ts, box, int(c), 1.0))
        for _ in range(rng.integers(0, 4)):     # jittered copies, any class
          jit = np.asarray(box) + rng.normal(0, 0.05, 4)
          d.append(R("v%d" % (ts % 2), ts, tuple(jit.tolist()),
                     int(rng.integers(1, 5)), float(rng.uniform())))
    top_k = int(rng.integers(1, 6))
    want = _brute_map(g, d, (1, 2, 3), top_k)
    got = ev.frame_map(g, d, (1, 2, 3), top_k=top_k)["map"]
    assert math.isclose(got, want, abs_tol=1e-12), case


def test_files_round_trip_and_cli(tmp_path, capsys):
  rows = gt((A, 1), (B, 2)) + [R("vid_b", 1798)]
  rows += det(((0.123456789, 1 / 3, 0.7, 0.9), 1, 0.1 + 1e-12), ts=903)
  path = str(tmp_path / "rows.csv")
  assert ava_io.write_csv(path, rows) == len(rows)
  back = ava_io.read_csv(path)
  assert back == rows                       # exact: floats keep every digit
  assert open(path).read().splitlines()[2] == "vid_b,1798"
  names = {1: "bend/bow (at the waist)", 2: "crouch/kneel", 4: "dance"}
  ava_io.write_label_map(str(tmp_path / "map.pbtxt"), names)
  assert ava_io.read_label_map(str(tmp_path / "map.pbtxt")) == names
  ava_io.write_excluded(str(tmp_path / "ex.csv"), [("v", 903)])
  assert ava_io.read_excluded(str(tmp_path / "ex.csv")) == {("v", 903)}
  g, d = gt((A, 1), (B, 2), (C, 4)), det((A, 1, .9), (C, 4, .5), (A, 4, .7))
  ava_io.write_csv(str(tmp_path / "gt.csv"), g, scores=False)
  ava_io.write_csv(str(tmp_path / "pred.csv"), d)
  rc = eval_cli.main([f"--gt={tmp_path}/gt.csv", f"--pred={tmp_path}/pred.csv",
                      f"--labelmap={tmp_path}/map.pbtxt",
                      f"--exclusions={tmp_path}/ex.csv",
                      f"--out={tmp_path}/m.json"])
  text = capsys.readouterr().out
  assert rc == 0 and "frame-mAP@0.5: 50.00" in text     # (1 + 0 + 0.5) / 3
  assert "AP@0.5   4 dance: 50.00 (1 GT)" in text
  m = json.load(open(tmp_path / "m.json"))
  assert math.isclose(m["map"], 0.5) and m["ap"]["2"] == 0.0
  # bad input: one clear error line
  (tmp_path / "bad.csv").write_text("v,902,0,0,1\n")
  assert eval_cli.main([f"--gt={tmp_path}/bad.csv", f"--pred={path}",
                        f"--labelmap={tmp_path}/map.pbtxt"]) == 1
  assert "expected 2, 7 or 8 columns" in capsys.readouterr().err
  (tmp_path / "bad.csv").write_text("v,902.5,0,0,1,1,1,0\n")
  with pytest.raises(VidjaxError, match="whole second"):
    ava_io.read_csv(str(tmp_path / "bad.csv"))


def test_detections_to_rows():
  rows = ava_io.detections_to_rows("v", 902, [A, B], [[.1, .9], [.2, .3]],
                                   [1, 4], mask=[True, False])
  assert rows == [R("v", 902, A, 1, .1), R("v", 902, A, 4, .9)]
