"""Clip samplers, strategy accounting and the cheap sampler's inputs of the
long_video task (vidjax/tasks/long_video/, issue #23 item 4) on hand-made
scores and clips."""
import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.tasks.long_video import evaluate as ev
from vidjax.tasks.long_video import saliency, samplers


def test_uniform_spacing():
  assert samplers.uniform(24, 2).tolist() == [6, 18]
  assert samplers.uniform(24, 4).tolist() == [3, 9, 15, 21]
  assert samplers.uniform(24, 1).tolist() == [12]
  assert samplers.uniform(5, 5).tolist() == [0, 1, 2, 3, 4]
  assert samplers.uniform(10, 3).tolist() == [1, 5, 8]


def test_top_k_with_ties():
  scores = [0.1, 0.9, 0.5, 0.9, 0.5, 0.2]
  assert samplers.top_k(scores, 1).tolist() == [1]       # tie: earlier clip
  assert samplers.top_k(scores, 2).tolist() == [1, 3]
  assert samplers.top_k(scores, 3).tolist() == [1, 2, 3]  # 0.5 tie: index 2
  assert samplers.top_k(np.zeros(6), 2).tolist() == [0, 1]
  assert samplers.top_k(scores, 6).tolist() == list(range(6))


def test_random_k_deterministic_in_seed_and_video():
  a = samplers.random_k(24, 2, seed=0, video=3)
  assert a.tolist() == samplers.random_k(24, 2, seed=0, video=3).tolist()
  assert len(set(a.tolist())) == 2 and all(0 <= i < 24 for i in a)
  draws = {tuple(samplers.random_k(24, 2, seed=s, video=v))
           for s in range(3) for v in range(10)}
  assert len(draws) > 20  # seed and video change the draw
  counts = np.bincount(np.concatenate([samplers.random_k(24, 4, 1, v)
                                       for v in range(600)]), minlength=24)
  assert counts.sum() == 2400 and counts.min() > 60 and counts.max() < 140


@pytest.mark.parametrize("fn", [lambda k: samplers.uniform(24, k),
                                lambda k: samplers.random_k(24, k, 0),
                                lambda k: samplers.top_k(np.zeros(24), k)])
def test_k_above_the_clips_is_an_error(fn):
  for bad in (25, 0, -1):
    with pytest.raises(VidjaxError, match="config.long_video.ks: k="):
      fn(bad)


def test_candidates_and_overlap():
  starts = samplers.candidate_starts(400, 15, 24)
  assert starts[0] == 0 and starts[-1] == 385 and len(starts) == 24
  assert np.all(np.diff(starts) >= 16)  # no overlap at 400 frames
  ov = samplers.action_overlap([0, 10, 20, 40], 10, [[15, 30]])
  np.testing.assert_allclose(ov, [0.0, 0.5, 1.0, 0.0])
  with pytest.raises(VidjaxError, match="shorter than one clip"):
    samplers.candidate_starts(10, 15, 4)
  assert samplers.oracle([False, True, True]).tolist() == [1, 2]
  assert samplers.oracle([False] * 3, [0.1, 0.4, 0.4]).tolist() == [1]


def _hand_case():
  """3 videos x 4 clips, 2 classes. Video v's useful clips say class y_v
  with 0.9; the others say the other class with 0.8 (diluting)."""
  labels = np.array([0, 1, 0])
  useful = np.array([[0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]], bool)
  probs = np.empty((3, 4, 2))
  for v in range(3):
    y = labels[v]
    for c in range(4):
      p = 0.9 if useful[v, c] else 0.2
      probs[v, c, y], probs[v, c, 1 - y] = p, 1 - p
  overlap = useful.astype(float)
  scores = overlap + np.array([0.0, 0.1, 0.2, 0.3])  # sampler ranks right
  return probs, labels, scores, overlap


def test_strategies_accuracy_counts_and_macs():
  probs, labels, scores, overlap = _hand_case()
  rows = {r["strategy"]: r for r in ev.strategies(
      probs, labels, scores, overlap, ks=(1, 2), seed=0,
      classifier_gmacs=2.0, sampler_gmacs=0.25)}
  assert list(rows)[0] == "dense" and list(rows)[-1] == "oracle"
  d = rows["dense"]
  # dense = the mean over all clips: video 0: (0.9 + 3 x 0.2) / 4 < 0.5
  np.testing.assert_allclose(probs[0].mean(0), [0.375, 0.625])
  assert d["accuracy"] == pytest.approx(1 / 3)  # only video 2 (2 of 4 useful)
  assert d["classifier_clips"] == 12 and d["clip_fraction"] == 1.0
  assert d["gmacs"] == pytest.approx(12 * 2.0)
  s1, s2 = rows["scsampler1"], rows["scsampler2"]
  assert s1["accuracy"] == 1.0 and s1["classifier_clips"] == 3
  # classifier on 3 clips + sampler on all 12 clips
  assert s1["gmacs"] == pytest.approx(3 * 2.0 + 12 * 0.25)
  assert s2["classifier_clips"] == 6 and s2["clip_fraction"] == 0.5
  assert s2["gmacs_per_video"] == pytest.approx((6 * 2.0 + 12 * 0.25) / 3)
  # top-2 of video 0 = clips 1 (useful) and 3: (0.9 + 0.2) / 2 > 0.5
  assert s2["accuracy"] == 1.0
  u1 = rows["uniform1"]  # clip 2 of every video: never useful
  assert u1["accuracy"] == 0.0 and u1["gmacs"] == pytest.approx(3 * 2.0)
  o = rows["oracle"]
  assert o["accuracy"] == 1.0 and o["classifier_clips"] == 4
  assert o["gmacs"] == pytest.approx(4 * 2.0)  # no sampler cost
  assert rows["random2"]["classifier_clips"] == 6
  m = ev.metrics(list(rows.values()), 0.75, 3, 4)
  assert m["eval/scsampler2/clip_fraction"] == 0.5
  assert m["eval/dense/accuracy"] == pytest.approx(1 / 3)
  assert m["eval/sampler_auc"] == 0.75
  table = ev.format_table(list(rows.values()), 0.75, 2.0, 0.25, 3, 4)
  assert "scsampler2" in table and "ROC-AUC 0.750" in table


def test_sampler_auc():
  overlap = np.array([[0.0, 0.6, 1.0, 0.4]])
  assert ev.sampler_auc([[0.1, 0.8, 0.9, 0.2]], overlap) == 1.0
  assert ev.sampler_auc([[0.9, 0.1, 0.2, 0.8]], overlap) == 0.0
  assert ev.sampler_auc([[0.5, 0.5, 0.5, 0.5]], overlap) == 0.5


def test_saliency_features_see_motion():
  """A square moving 1 px / frame scores above a still one on every
  displacement feature; the counts follow the docstring's formula."""
  f, res = 8, 32
  clips = np.zeros((2, f, res, res, 3), np.uint8)
  for t in range(f):
    clips[0, t, 8:16, 8 + t:16 + t] = 200   # moving
    clips[1, t, 8:16, 8:16] = 200           # still
  x = saliency.video_features(clips, 8)
  assert x.shape == (2, saliency.num_features(f)) == (2, 28)
  move = x[:, 0:14:2]  # the pooled-difference features, lags 1..7
  assert np.all(move[0] > move[1] + 3)
  np.testing.assert_allclose(x[:, 14:], x[:, :14] - np.median(x[:, :14], 0))
  assert saliency.feature_macs(8, 32, 32, 3, 8) == 8 * 32 * 32 * 3 + 28 * 65
  with pytest.raises(VidjaxError, match="sampler_res=5"):
    saliency.video_features(clips, 5)
