"""Exact localization metrics (vidjax/tasks/localization/evaluate.py) on
hand-built cases with known answers, and AP against a brute-force reference."""
import json

import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.tasks.localization import evaluate as ev


def _gt(*rows):
  """rows: (video, start, end, label) -> ground-truth dict."""
  out = {}
  for v, s, e, c in rows:
    out.setdefault(v, []).append({"segment": [s, e], "label": c})
  return out


def _pred(*rows):
  """rows: (video, start, end, label, score) -> prediction dict."""
  out = {}
  for v, s, e, c, x in rows:
    out.setdefault(v, []).append({"segment": [s, e], "label": c, "score": x})
  return out


def test_tiou_values():
  np.testing.assert_allclose(
      ev.tiou([0, 10], [[0, 10], [5, 15], [10, 20], [2, 4], [-5, 0.0]]),
      [1.0, 5 / 15, 0.0, 0.2, 0.0])
  assert ev.tiou_matrix([[0, 10], [0, 5]], [[0, 5]]).tolist() == [[0.5], [1.0]]


def test_interpolated_ap_envelope():
  # precision 1, .5, 2/3 at recall .5, .5, 1: envelope 1 then 2/3
  assert ev.interpolated_ap([1, .5, 2 / 3], [.5, .5, 1]) == pytest.approx(5 / 6)
  assert ev.interpolated_ap([], []) == 0.0
  assert ev.interpolated_ap([0.5], [0.25]) == pytest.approx(0.125)


def test_perfect_predictions_give_one():
  rows = [("a", 0, 10, "x"), ("a", 20, 30, "y"), ("b", 5, 6, "x"),
          ("c", 1, 90, "z")]
  preds = _pred(*[(v, s, e, c, 1.0 - 0.1 * i)
                  for i, (v, s, e, c) in enumerate(rows)])
  out = ev.detection_map(_gt(*rows), preds, ev.ACTIVITYNET_THRESHOLDS)
  assert out["map"] == [1.0] * 10 and out["average_map"] == 1.0
  assert set(out["ap"]) == {"x", "y", "z"}


def test_tp_fp_tp_over_two_ground_truths():
  gt = _gt(("a", 0, 10, "x"), ("a", 20, 30, "x"))
  preds = _pred(("a", 0, 10, "x", .9), ("a", 50, 60, "x", .8),
                ("a", 20, 30, "x", .7))
  out = ev.detection_map(gt, preds, [0.5])
  assert out["map"][0] == pytest.approx(0.8333, abs=5e-5)
  assert out["map"][0] == pytest.approx(5 / 6)


def test_duplicate_of_a_true_positive_is_a_false_positive():
  gt = {"a": np.array([[0.0, 10.0], [20.0, 30.0]])}
  tp, fp = ev.match_class(gt, [("a", 0, 10, .9), ("a", 0, 10, .8),
                               ("a", 20, 30, .7)], [0.5])
  assert tp.tolist() == [[True, False, True]]
  assert fp.tolist() == [[False, True, False]]
  out = ev.detection_map(
      _gt(("a", 0, 10, "x"), ("a", 20, 30, "x")),
      _pred(("a", 0, 10, "x", .9), ("a", 0, 10, "x", .8),
            ("a", 20, 30, "x", .7)), [0.5])
  assert out["map"][0] == pytest.approx(5 / 6)


def test_tiou_069_counts_at_05_not_at_07():
  gt = _gt(("a", 0, 10, "x"))
  preds = _pred(("a", 0, 6.9, "x", 1.0))
  assert ev.tiou([0, 6.9], [[0, 10]])[0] == pytest.approx(0.69)
  out = ev.detection_map(gt, preds, [0.5, 0.6, 0.7])
  assert out["map"] == [1.0, 1.0, 0.0]
  thumos = ev.detection_map(gt, preds, ev.THUMOS_THRESHOLDS)
  assert thumos["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7]
  assert thumos["average_map"] == pytest.approx(0.8)


def test_matches_highest_tiou_unmatched_ground_truth():
  # pred 1 overlaps A (0.43) and B (0.82): it takes B, so pred 2 still has A
  gt = {"a": np.array([[0.0, 10.0], [5.0, 15.0]])}
  tp, _ = ev.match_class(gt, [("a", 4, 14, .9), ("a", 0, 10, .8)], [0.4])
  assert tp.tolist() == [[True, True]]
  # the best GT is locked: the next one with tIoU >= threshold is taken
  gt = {"a": np.array([[0.0, 10.0], [1.0, 11.0]])}
  tp, fp = ev.match_class(gt, [("a", 0, 10, .9), ("a", 0, 10, .8)],
                          [0.5, 0.8, 0.85])
  assert tp.tolist() == [[True, True], [True, True], [True, False]]
  assert fp[:, 1].tolist() == [False, False, True]


def test_ranking_is_by_score_not_input_order():
  gt = _gt(("a", 0, 10, "x"))
  preds = _pred(("a", 50, 60, "x", .2), ("a", 0, 10, "x", .9))
  assert ev.detection_map(gt, preds, [0.5])["map"][0] == 1.0
  preds = _pred(("a", 50, 60, "x", .95), ("a", 0, 10, "x", .9))
  assert ev.detection_map(gt, preds, [0.5])["map"][0] == pytest.approx(0.5)


def test_classes_videos_and_labels():
  gt = _gt(("a", 0, 10, "x"), ("b", 0, 10, "y"))
  # class y: no prediction -> AP 0; label "q" is not evaluated; the x
  # prediction on video b (no x ground truth there) is a false positive
  preds = _pred(("b", 0, 10, "x", .99), ("a", 0, 10, "x", .9),
                ("a", 0, 10, "q", 1.0))
  out = ev.detection_map(gt, preds, [0.5])
  assert out["ap"] == {"x": [0.5], "y": [0.0]}
  assert out["map"] == [0.25] and out["num_predictions"] == 2
  with pytest.raises(VidjaxError, match="no ground truth"):
    ev.detection_map(gt, preds, [0.5], class_names=["x", "z"])


def test_thumos_ambiguous_false_positives_are_dropped():
  gt = _gt(("a", 0, 10, "x"))
  preds = _pred(("a", 20, 25, "x", .95), ("a", 0, 10, "x", .9),
                ("a", 40, 45, "x", .5))
  assert ev.detection_map(gt, preds, [0.5])["map"][0] == pytest.approx(0.5)
  amb = {"a": [[22.0, 30.0]]}
  assert ev.detection_map(gt, preds, [0.5], ambiguous=amb)["map"][0] == 1.0
  # touching (zero-length overlap) is not overlapping
  assert ev.detection_map(gt, preds, [0.5], ambiguous={"a": [[25.0, 30.0]]}
                          )["map"][0] == pytest.approx(0.5)
  # a TP overlapping an ambiguous region stays a TP; at 0.9 it is unmatched
  # and overlaps, so it is dropped rather than counted as a FP
  tp, fp = ev.match_class({"a": np.array([[0.0, 10.0]])},
                          [("a", 0, 8, .9)], [0.5, 0.9],
                          ambiguous={"a": np.array([[7.0, 12.0]])})
  assert tp.tolist() == [[True], [False]] and fp.tolist() == [[False], [False]]


def _brute_ap(gt, preds, thr):
  """Independent reference: plain loops, AP = sum over TPs of the best
  precision at this or any later rank, / #GT."""
  npos = sum(len(g) for g in gt.values())
  ranked = sorted(preds, key=lambda p: -p[3])  # stable, like the evaluator
  used, flags = set(), []
  for v, s, e, _ in ranked:
    best, best_iou = None, -1.0
    for j, (gs, ge) in enumerate(gt.get(v, [])):
      inter = max(0.0, min(e, ge) - max(s, gs))
      iou = inter / ((e - s) + (ge - gs) - inter)
      if iou >= thr and (v, j) not in used and iou > best_iou:
        best, best_iou = j, iou
    if best is not None:
      used.add((v, best))
    flags.append(best is not None)
  prec, tps = [], 0
  for k, f in enumerate(flags):
    tps += f
    prec.append(tps / (k + 1))
  return sum(max(prec[k:]) for k, f in enumerate(flags) if f) / npos


def test_ap_matches_brute_force_on_random_cases():
  rng = np.random.default_rng(0)
  for case in range(60):
    gt, preds = {}, []
    for v in range(rng.integers(1, 4)):
      starts = rng.uniform(0, 80, rng.integers(0, 5))
      gt[f"v{v}"] = [(s, s + rng.uniform(1, 20)) for s in starts]
      for _ in range(rng.integers(0, 12)):
        if gt[f"v{v}"] and rng.uniform() < 0.6:  # near a ground truth
          gs, ge = gt[f"v{v}"][rng.integers(len(gt[f"v{v}"]))]
          s, e = gs + rng.normal(0, 2), ge + rng.normal(0, 2)
        else:
          s = rng.uniform(0, 90)
          e = s + rng.uniform(1, 20)
        preds.append((f"v{v}", float(s), float(max(e, s + 0.5)),
                      float(rng.uniform())))
    if not sum(len(g) for g in gt.values()):
      continue
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    got = ev.class_ap({v: np.asarray(g).reshape(-1, 2) for v, g in gt.items()},
                      preds, thresholds)
    want = [_brute_ap(gt, preds, t) for t in thresholds]
    np.testing.assert_allclose(got, want, atol=1e-12, err_msg=f"case {case}")


def _props(video_rows):
  """{video: [(start, end)]} in rank order -> proposals with falling scores."""
  return {v: [{"segment": list(s), "score": 1.0 - 0.001 * i}
              for i, s in enumerate(rows)] for v, rows in video_rows.items()}


def test_average_recall_and_auc():
  far = [(200.0 + i, 201.0 + i) for i in range(100)]
  a = far[:4] + [(0.0, 10.0)] + far[5:]           # exact hit at rank 5
  b = [(20.0, 27.0)] + far[1:]                     # tIoU 0.7 at rank 1
  gt = _gt(("a", 0, 10, "x"), ("b", 20, 30, "y"))
  out = ev.proposal_metrics(gt, _props({"a": a, "b": b}))
  assert out["an"][:3] == [1.0, 2.0, 3.0] and out["an"][-1] == 100.0
  # b's proposal counts at thresholds 0.5..0.7 (5 of 10): AR 0.25 until a's
  # hit enters at AN=5, then 0.75
  assert out["ar@1"] == pytest.approx(0.25)
  assert out["ar"][3] == pytest.approx(0.25)
  assert out["ar@5"] == pytest.approx(0.75)
  assert out["ar@100"] == pytest.approx(0.75)
  ar = np.array([0.25] * 4 + [0.75] * 96)
  auc = np.trapezoid(ar, np.arange(1, 101)) / 100
  assert out["auc"] == pytest.approx(auc)
  assert ev.recall_at_threshold(gt, _props({"a": a, "b": b}), 1, 0.5) == 0.5
  assert ev.recall_at_threshold(gt, _props({"a": a, "b": b}), 5, 0.5) == 1.0
  assert ev.recall_at_threshold(gt, _props({"a": a, "b": b}), 5, 0.75) == 0.5


def test_average_recall_is_top_n_recall_with_full_proposal_lists():
  # every video holds 100 proposals: AR@N is the recall of each video's
  # top N, averaged over tIoU 0.5:0.05:0.95 (checked by the simple routine)
  rng = np.random.default_rng(1)
  gt, props = {}, {}
  for v in range(6):
    starts = rng.uniform(0, 100, rng.integers(1, 5))
    gt[f"v{v}"] = [{"segment": [s, s + rng.uniform(2, 30)], "label": "x"}
                   for s in starts]
    rows = []
    for _ in range(100):
      g = gt[f"v{v}"][rng.integers(len(gt[f"v{v}"]))]["segment"]
      rows.append({"segment": [g[0] + rng.normal(0, 3),
                               g[1] + rng.normal(0, 3)],
                   "score": float(rng.uniform())})
    props[f"v{v}"] = rows
  out = ev.proposal_metrics(gt, props, at=(1, 3, 10, 100))
  for n in (1, 3, 10, 100):
    want = np.mean([ev.recall_at_threshold(gt, props, n, t)
                    for t in ev.PROPOSAL_THRESHOLDS])
    assert out[f"ar@{n}"] == pytest.approx(want), n


def test_proposals_one_to_many_and_missing_video():
  # several gts hit by one proposal all count (no one-to-one matching); a
  # video without proposals recalls nothing
  gt = _gt(("a", 0, 10, "x"), ("a", 0, 10.5, "x"), ("b", 0, 5, "x"))
  props = _props({"a": [(0.0, 10.0)] * 100})
  out = ev.proposal_metrics(gt, props)
  assert out["ar@100"] == pytest.approx(2 / 3)


def test_prediction_json_round_trip(tmp_path):
  results = _pred(("v1", 0.5, 2.25, "x", 0.9), ("v2", 1, 3, "y", 0.1))
  path = str(tmp_path / "p.json")
  ev.write_predictions(path, results)
  with open(path) as f:
    raw = json.load(f)
  assert set(raw) == {"version", "results", "external_data"}
  assert raw["results"]["v1"][0] == {"label": "x", "score": 0.9,
                                     "segment": [0.5, 2.25]}
  assert ev.read_predictions(path) == results
  with open(path, "w") as f:
    json.dump({"results": {"v": [{"label": "x", "segment": [0, 1]}]}}, f)
  with pytest.raises(VidjaxError, match="needs label, score"):
    ev.read_predictions(path)
  with pytest.raises(VidjaxError, match="not a readable"):
    ev.read_predictions(str(tmp_path / "none.json"))


def test_eval_cli_activitynet_json_and_thumos_lists(tmp_path, capsys):
  from vidjax.tasks.localization import annotations as ann
  from vidjax.tasks.localization import eval_cli
  db = {"a": ann.VideoAnnotation("a", 30.0, "validation",
                                 ((0.0, 10.0, "x"), (20.0, 30.0, "x"))),
        "b": ann.VideoAnnotation("b", 30.0, "training", ((0.0, 5.0, "y"),))}
  ann.write_activitynet(str(tmp_path / "gt.json"), db)
  ev.write_predictions(str(tmp_path / "p.json"), _pred(
      ("a", 0, 10, "x", .9), ("a", 50, 60, "x", .8), ("a", 20, 30, "x", .7)))
  assert eval_cli.main([f"--annotations={tmp_path / 'gt.json'}",
                        f"--predictions={tmp_path / 'p.json'}",
                        "--thresholds=0.5", f"--out={tmp_path / 'm.json'}"]
                       ) == 0
  assert "mAP@0.50: 83.33" in capsys.readouterr().out
  with open(tmp_path / "m.json") as f:
    assert json.load(f)["map"] == [pytest.approx(5 / 6)]
  # THUMOS lists: the ambiguous interval drops the false positive
  (tmp_path / "th").mkdir()
  (tmp_path / "th" / "X_test.txt").write_text("a 0 10\na 20 30\n")
  (tmp_path / "th" / "Ambiguous_test.txt").write_text("a 55 56\n")
  out = eval_cli.run(str(tmp_path / "th"), str(tmp_path / "p.json"))
  assert out["subset"] == "test" and out["thresholds"][0] == 0.3
  assert out["map"] == [0.0] * 5  # labels "x" vs class "X": no match
  ev.write_predictions(str(tmp_path / "q.json"), _pred(
      ("a", 0, 10, "X", .9), ("a", 50, 60, "X", .8), ("a", 20, 30, "X", .7)))
  assert eval_cli.run(str(tmp_path / "th"), str(tmp_path / "q.json")
                      )["average_map"] == 1.0
  assert eval_cli.main([f"--annotations={tmp_path / 'gt.json'}",
                        f"--predictions={tmp_path / 'p.json'}",
                        "--subset=testing"]) == 1
  assert "--subset=testing: no video" in capsys.readouterr().err
