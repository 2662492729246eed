"""The chance level of a detection mAP (evaluate.chance_map), understood:
random rankings' AP in closed form and by brute force over every ranking,
and the chance level of perfect segments under random classes for many and
for few ground truths (issue #20's permuted-labels control reads against
it)."""
import itertools
import math

import numpy as np
import pytest

from vidjax.tasks.localization import evaluate as ev

K = 8


def expected_random_ap(n: int, total: int) -> float:
  """E[non-interpolated AP] of a uniformly random ranking of n positives among
  `total` items: (1/n) sum_k E[rel_k * P@k], with P(rel_k) = n/N and
  P(rel_j, rel_k) = n(n-1)/(N(N-1)), gives
  (n-1)/(N-1) + H_N (N-n) / (N(N-1))."""
  h = sum(1.0 / k for k in range(1, total + 1))
  if total == 1:
    return 1.0
  return (n - 1) / (total - 1) + h * (total - n) / (total * (total - 1))


def interpolated_ap_of_ranks(ranks) -> float:
  """VOC all-point AP when the positives (all of them retrievable) sit at
  1-based ranks r_1 < ... < r_n: (1/n) sum_i max_{j >= i} j / r_j."""
  prec = [j / r for j, r in enumerate(sorted(ranks), 1)]
  return float(np.mean([max(prec[i:]) for i in range(len(prec))]))


def _one_class(positions, total):
  """One video per item, the positives' GT at `positions` of the ranking
  (scores descending with the rank), segments exact."""
  gt = {f"v{i}": np.array([[0.0, 1.0]]) for i in positions}
  preds = [(f"v{i}", 0.0, 1.0, 1.0 - i / total) for i in range(total)]
  return gt, preds


@pytest.mark.parametrize("n,total", [(1, 5), (2, 6), (3, 7), (4, 8)])
def test_random_ranking_ap_brute_force(n, total):
  noninterp, interp = [], []
  for pos in itertools.combinations(range(total), n):
    gt, preds = _one_class(pos, total)
    tp, fp = ev.match_class(gt, preds, [0.5])
    assert tp[0].sum() == n and (tp[0] ^ fp[0]).all()
    hits = np.cumsum(tp[0])
    noninterp.append(np.sum(tp[0] * hits / np.arange(1, total + 1)) / n)
    interp.append(ev.class_ap(gt, preds, [0.5])[0])
    assert interp[-1] == pytest.approx(
        interpolated_ap_of_ranks([p + 1 for p in pos]), abs=1e-12)
  assert np.mean(noninterp) == pytest.approx(expected_random_ap(n, total),
                                             abs=1e-12)
  assert np.mean(interp) >= np.mean(noninterp)  # the envelope only adds


def test_closed_form_tends_to_the_share():
  assert expected_random_ap(1, 8) == pytest.approx(
      sum(1 / k for k in range(1, 9)) / 8)
  assert expected_random_ap(5, 5) == 1.0
  for n in (20, 200, 2000):
    assert 1 / K < expected_random_ap(n, n * K) < 1 / K + 0.3 / math.sqrt(n)
  assert expected_random_ap(2000, 2000 * K) == pytest.approx(1 / K, abs=3e-3)


def _perfect(per_class: int, every_class: bool, seed: int = 0):
  """Ground truth: per_class instances of each of K classes, one per video;
  predictions: exact segments, under every class with random scores
  (uninformative class scores), or once under the true class (a confident,
  correct detector)."""
  rng = np.random.default_rng(seed)
  names = [f"c{c}" for c in range(K)]
  gt, preds = {}, {}
  for c in range(K):
    for i in range(per_class):
      v = f"c{c}_{i}"
      gt[v] = [{"segment": [1.0, 3.0], "label": names[c]}]
      preds[v] = ([{"segment": [1.0, 3.0], "label": d,
                    "score": float(rng.random())} for d in names]
                  if every_class else
                  [{"segment": [1.0, 3.0], "label": names[c],
                    "score": float(0.5 + 0.5 * rng.random())}])
  return gt, preds


def test_chance_of_perfect_segments_under_every_class():
  # many ground truths per class: about the share 1/K, above the closed form
  # by the interpolation's envelope; few: much more
  levels, refs = {}, {}
  for n in (20, 2):
    gt, preds = _perfect(n, every_class=True)
    got = ev.chance_map(gt, preds, [0.5], draws=40, seed=1)
    assert len(got["draws"]) == 40 and got["min"] <= got["mean"] <= got["max"]
    # Monte Carlo of the same quantity, from closed forms (no evaluator)
    rng = np.random.default_rng(2)
    ref = np.mean([interpolated_ap_of_ranks(
        rng.choice(n * K, n, replace=False) + 1) for _ in range(4000)])
    assert ref > expected_random_ap(n, n * K)
    se = got["std"] / math.sqrt(40) + 0.01
    assert got["mean"] == pytest.approx(ref, abs=4 * se), (n, got, ref)
    levels[n], refs[n] = got["mean"], ref
  assert 1 / K < levels[20] < 0.22
  assert refs[2] > refs[20] + 0.1 and levels[2] > levels[20] + 0.05
  # the detections' own mAP is chance too (their class scores are random)
  gt, preds = _perfect(20, every_class=True, seed=3)
  own = ev.detection_map(gt, preds, [0.5])["average_map"]
  assert abs(own - levels[20]) < 0.06


def test_chance_of_a_confident_single_label_detector():
  gt, preds = _perfect(20, every_class=False)
  assert ev.detection_map(gt, preds, [0.5])["average_map"] == 1.0
  got = ev.chance_map(gt, preds, [0.5], draws=20, seed=0)
  # one label per segment, at random: recall and precision both ~1/K
  # (~1/K^2 times a small-sample random ranking's AP): far below 1/K
  assert got["mean"] < 0.5 / K and got["std"] > 0
  # seeded: the same draws again; keeps segments/scores (inputs untouched)
  assert ev.chance_map(gt, preds, [0.5], draws=20, seed=0) == got
  assert all(r[0]["label"] == v.split("_")[0] for v, r in preds.items())


def test_chance_keeps_the_detections_and_the_class_counts(monkeypatch):
  gt, preds = _perfect(3, every_class=False)
  seen = []
  orig = ev.detection_map

  def spy(gt_, p, *a, **k):
    seen.append(gt_)
    assert p is preds  # scored untouched
    return orig(gt_, p, *a, **k)
  monkeypatch.setattr(ev, "detection_map", spy)
  got = ev.chance_map(gt, preds, [0.5], draws=5, seed=3)
  assert len(seen) == 5 and len(got["draws"]) == 5
  labels = sorted(r[0]["label"] for r in gt.values())
  for shuffled in seen:
    assert sorted(r[0]["label"] for r in shuffled.values()) == labels
    assert all(shuffled[v][0]["segment"] == gt[v][0]["segment"] for v in gt)
  assert any(s[v][0]["label"] != gt[v][0]["label"] for s in seen for v in gt)
  assert all(r[0]["label"] == v.split("_")[0] for v, r in gt.items())


def test_class_name_null_of_a_perfect_detector_counts_fixed_points():
  # names permuted: a perfect detector's class c is right only where the
  # bijection fixes c, so each draw's mAP is (#fixed points) / K exactly
  gt, preds = _perfect(3, every_class=False)
  got = ev.chance_map(gt, preds, [0.5], draws=200, seed=0, mode="classes")
  fixed = np.asarray(got["draws"]) * K
  np.testing.assert_allclose(fixed, np.round(fixed), atol=1e-9)
  assert set(np.round(fixed).astype(int)) <= set(range(K + 1)) - {K - 1}
  assert got["mean"] == pytest.approx(1 / K, abs=0.03)  # E[#fixed] = 1
  with pytest.raises(ev.VidjaxError, match="mode='names'"):
    ev.chance_map(gt, preds, [0.5], mode="names")
