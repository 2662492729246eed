"""Decoding and soft-NMS: known answers."""
import math

import numpy as np

from vidjax.tasks.localization import postprocess, targets
from vidjax.tasks.localization.timing import FeatureTiming


def test_soft_nms_identical_segments_decay_by_gaussian():
  segs, scores = postprocess.soft_nms([[1, 3], [1, 3]], [0.9, 0.8],
                                      sigma=0.5)
  np.testing.assert_allclose(scores, [0.9, 0.8 * math.exp(-1 / 0.5)])
  np.testing.assert_allclose(segs, [[1, 3], [1, 3]])


def test_soft_nms_partial_overlap_reorders_and_drops():
  # [0, 4] vs [2, 6]: tIoU 2/6; [10, 11] is disjoint (kept at 0.5)
  segs, scores = postprocess.soft_nms([[0, 4], [2, 6], [10, 11]],
                                      [0.9, 0.7, 0.5], sigma=0.5)
  decayed = 0.7 * math.exp(-(1 / 3) ** 2 / 0.5)
  assert decayed < 0.5 * 1.3 and decayed > 0.5
  np.testing.assert_allclose(scores, [0.9, decayed, 0.5])
  np.testing.assert_allclose(segs[1], [2, 6])
  # a decayed score under min_score is dropped; hard NMS drops by tIoU
  _, sc = postprocess.soft_nms([[1, 3], [1, 3]], [0.9, 0.1], sigma=0.5,
                               min_score=0.05)
  assert len(sc) == 1
  segs, sc = postprocess.soft_nms([[0, 4], [2, 6], [3, 7]], [0.9, 0.8, 0.7],
                                  sigma=0.3, method="hard")
  # [2, 6] has tIoU 1/3 > 0.3 with [0, 4]: gone; [3, 7] has 1/7: kept
  np.testing.assert_allclose(segs, [[0, 4], [3, 7]])
  np.testing.assert_allclose(sc, [0.9, 0.7])


def test_decode_video_point_to_seconds():
  length, levels, k = 16, 3, 2
  geo = targets.points(length, levels)
  p = len(geo["position"])
  logits = np.full((p, k), -10.0)
  offsets = np.zeros((p, 2))
  point = 16 + 3            # level 1, position 6, stride 2
  logits[point, 1] = 2.0
  offsets[point] = [1.5, 2.0]   # steps [6 - 3, 6 + 4] = [3, 10]
  timing = FeatureTiming.windows(8.0, 8, 2, 4)   # span 15, stride 4
  rows = postprocess.decode_video(logits, offsets, np.ones(p, bool), geo,
                                  timing, duration=100.0,
                                  score_threshold=0.01)
  assert len(rows) == 1
  s, e, c, score = rows[0]
  # step i's centre: (4 i + 15 / 2) / 8 s
  assert np.isclose(s, (4 * 3 + 7.5) / 8) and np.isclose(e, (4 * 10 + 7.5)
                                                          / 8)
  assert c == 1 and np.isclose(score, 1 / (1 + math.exp(-2.0)))
  # masked points give nothing; the video's end clips the segment
  assert postprocess.decode_video(logits, offsets, np.zeros(p, bool), geo,
                                  timing, 100.0, 0.01) == []
  clipped = postprocess.decode_video(logits, offsets, np.ones(p, bool), geo,
                                     timing, duration=5.0,
                                     score_threshold=0.01)
  assert np.isclose(clipped[0][1], 5.0)


def test_predictions_format_per_video():
  geo = targets.points(8, 2)
  p = len(geo["position"])
  logits = np.full((2, p, 2), -10.0)
  logits[0, 2, 0] = 3.0
  out = {"cls_logits": logits, "offsets": np.ones((2, p, 2)),
         "point_mask": np.ones((2, p), bool)}
  batch = {"fps": np.array([8.0, 8.0]), "span": np.array([1.0, 1.0]),
           "stride": np.array([1.0, 1.0]), "offset": np.zeros(2),
           "duration": np.array([1.0, 1.0])}
  got = postprocess.predictions(out, batch, ["a", "b"], ["run", "jump"], geo,
                                score_threshold=0.01)
  assert got["b"] == []
  (det,) = got["a"]
  assert det["label"] == "run"
  # step 2 +- 1 step -> steps [1, 3] -> seconds (i + 0.5) / 8
  np.testing.assert_allclose(det["segment"], [1.5 / 8, 3.5 / 8])


def _seq(vid, n, fps=8.0):
  from vidjax.tasks.localization import data
  return data.Sequence(vid, np.zeros((n, 3), np.float32),
                       FeatureTiming.frames(fps), n / fps,
                       np.array([[1.0 / fps, 3.0 / fps]]), np.array([1]))


def test_detect_one_and_two_stage_host_loop():
  from vidjax.tasks.localization import detect
  geo = targets.points(8, 2)
  p = len(geo["position"])

  def eval_step(state, batch):
    b = batch["inputs"].shape[0]
    logits = np.full((b, p, 1), -10.0)
    logits[:, 2, 0] = 3.0          # step 2 +- 1: steps [1, 3]
    return {"cls_logits": logits, "offsets": np.ones((b, p, 2)),
            "point_mask": batch["mask"][:, :1].repeat(p, 1)}

  seqs = [_seq("a", 8), _seq("b", 6), _seq("c", 8)]   # 2 batches of 2
  got = detect.detect(None, eval_step, seqs, ["action"], 8, 2, 2,
                      batch_size=2, score_threshold=0.01)
  assert sorted(got) == ["a", "b", "c"]
  np.testing.assert_allclose(got["b"][0]["segment"], [1.5 / 8, 3.5 / 8])
  props = detect.proposals(None, eval_step, seqs, 8, 2, 2, batch_size=2,
                           score_threshold=0.01)
  assert set(props["a"][0]) == {"segment", "score"}

  def roi_step(state, batch, rois):   # class 1 of 2 at 0.75, background .05
    np.testing.assert_allclose(rois[0, 0], [1.0, 3.0], atol=1e-6)
    probs = np.zeros(rois.shape[:2] + (3,))
    probs[..., :] = [0.2, 0.75, 0.05]
    return probs

  two = detect.detect(None, eval_step, seqs, ["x", "y"], 8, 2, 2,
                      batch_size=2, roi_step=roi_step, num_proposals=3,
                      score_threshold=0.01)
  score = 1 / (1 + math.exp(-3.0))
  assert [d["label"] for d in two["a"]] == ["y", "x"]
  np.testing.assert_allclose([d["score"] for d in two["a"]],
                             [score * 0.75, score * 0.2])
