"""Exact temporal-localization metrics in pure numpy (no server, no pandas).

Detection (ActivityNet, Caba Heilbron et al. 2015; its `eval_detection.py`
semantics, re-implemented here):

* tIoU of two intervals [s, e] in seconds: |intersection| / |union|, on the
  continuous line (no "+1" frame convention).
* Per class and per tIoU threshold, predictions are ranked by score,
  descending (ties keep their input order: a stable sort). Walking down the
  ranking, a prediction is a true positive when its video holds a ground truth
  of its class, not yet matched at this threshold, with tIoU >= threshold; it
  takes the one with the highest tIoU among those (ties: the first listed),
  which is then locked for this threshold. Anything else is a false positive,
  so a duplicate of a true positive is a false positive. Predictions on videos
  with no ground truth of the class are false positives.
* AP: VOC all-point interpolated AP (the "precision envelope"): precision made
  monotone from the right, integrated over recall = TP / #ground truths.
* mAP at a threshold: mean AP over the classes that have ground truth (as
  ActivityNet's class index comes from the ground truth); a class with no
  prediction has AP 0; predictions of other labels are ignored. The average
  mAP is the mean over thresholds: THUMOS 0.3:0.1:0.7, ActivityNet
  0.5:0.05:0.95.
* THUMOS14 `Ambiguous` intervals (the official `TH14evalDet.m`: "overlapping
  detections will be removed from the FP list"): at each threshold, a
  prediction left unmatched whose interval intersects an ambiguous interval of
  its video (positive overlap length) is dropped from the ranking, neither TP
  nor FP. Matching itself follows ActivityNet (above); THUMOS's own matching
  and non-interpolated AP are not reproduced.

Proposals (ActivityNet `eval_proposal.py` semantics): a ground truth is
recalled at threshold t by the top-N proposals of its video when any of them
has tIoU >= t (no one-to-one matching). AR@AN averages the recall over
tIoU 0.5:0.05:0.95; N per video follows ActivityNet's proportional rule
(`average_recall_vs_avg_nr_proposals`: each video keeps the same share of its
own list), which is exactly "the top AN proposals of each video" when every
video has `max_proposals` proposals, as ActivityNet submissions do (100 per
video); `recall_at_threshold` is the plain per-video top-N recall. Only the
videos with ground truth take part (ActivityNet also counts other videos'
proposals in the share, which only changes results for files holding videos
outside the evaluated subset). The AUC
is the trapezoid area under AR against AN (AN up to `max_proposals`, 100 as
ActivityNet) divided by the largest AN. Proposal counts are floor(x + 1e-9)
rather than ActivityNet's float truncation (which turns 100 * 0.29 into 28).

Predictions are ActivityNet result JSON: {"version": ..., "results": {video:
[{"label", "score", "segment": [s, e]}]}, "external_data": {}}.
"""
from __future__ import annotations

import json
from typing import Mapping, Sequence

import numpy as np

from vidjax.errors import VidjaxError

THUMOS_THRESHOLDS = tuple(np.round(np.arange(0.3, 0.71, 0.1), 2).tolist())
ACTIVITYNET_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2).tolist())
PROPOSAL_THRESHOLDS = ACTIVITYNET_THRESHOLDS


def tiou(segment, segments) -> np.ndarray:
  """tIoU of one [s, e] against each row of segments [N, 2] -> [N]."""
  seg = np.asarray(segment, np.float64)
  segs = np.asarray(segments, np.float64).reshape(-1, 2)
  inter = np.clip(np.minimum(seg[1], segs[:, 1]) -
                  np.maximum(seg[0], segs[:, 0]), 0.0, None)
  union = (seg[1] - seg[0]) + (segs[:, 1] - segs[:, 0]) - inter
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def tiou_matrix(a, b) -> np.ndarray:
  """tIoU of every row of a [N, 2] with every row of b [M, 2] -> [N, M]."""
  a = np.asarray(a, np.float64).reshape(-1, 2)
  return np.stack([tiou(s, b) for s in a]) if len(a) else np.zeros(
      (0, len(np.asarray(b).reshape(-1, 2))))


def interpolated_ap(precision, recall) -> float:
  """VOC all-point interpolated AP of a ranked list's precision/recall."""
  mprec = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
  mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
  mprec = np.maximum.accumulate(mprec[::-1])[::-1]  # envelope from the right
  step = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
  return float(np.sum((mrec[step] - mrec[step - 1]) * mprec[step]))


def _as_segments(rows) -> np.ndarray:
  return np.asarray([r["segment"] for r in rows], np.float64).reshape(-1, 2)


def match_class(gt: Mapping[str, np.ndarray], preds: Sequence, thresholds,
                ambiguous: Mapping[str, np.ndarray] | None = None):
  """ActivityNet matching of one class's predictions.

  Args:
    gt: {video: [G, 2] ground-truth intervals of this class}.
    preds: [(video, start, end, score)] of this class, any order.
    thresholds: tIoU thresholds [T].
    ambiguous: {video: [A, 2]} THUMOS ambiguous intervals, or None.

  Returns:
    (tp, fp) bool [T, P] in score order (stable, descending); a prediction
    dropped for an ambiguous overlap is neither.
  """
  thresholds = np.asarray(thresholds, np.float64)
  scores = np.asarray([p[3] for p in preds], np.float64)
  order = np.argsort(-scores, kind="stable")
  n_t, n_p = len(thresholds), len(preds)
  tp = np.zeros((n_t, n_p), bool)
  fp = np.zeros((n_t, n_p), bool)
  locked = {v: np.zeros((n_t, len(g)), bool) for v, g in gt.items()}
  for rank, i in enumerate(order):
    video, start, end, _ = preds[i]
    segs = gt.get(video)
    ious = tiou((start, end), segs) if segs is not None and len(segs) else None
    for t, thr in enumerate(thresholds):
      if ious is not None:
        free = (ious >= thr) & ~locked[video][t]
        if free.any():
          j = int(np.argmax(np.where(free, ious, -1.0)))
          locked[video][t, j] = True
          tp[t, rank] = True
          continue
      fp[t, rank] = True
    if ambiguous is not None and len(ambiguous.get(video, ())):
      amb = np.asarray(ambiguous[video], np.float64).reshape(-1, 2)
      overlap = (np.minimum(end, amb[:, 1]) - np.maximum(start, amb[:, 0])) > 0
      if overlap.any():
        fp[:, rank] = False
  return tp, fp


def class_ap(gt, preds, thresholds, ambiguous=None) -> np.ndarray:
  """AP [T] of one class (see `match_class` for the arguments)."""
  npos = sum(len(g) for g in gt.values())
  if npos == 0:
    raise ValueError("class_ap needs at least one ground truth")
  tp, fp = match_class(gt, preds, thresholds, ambiguous)
  out = np.zeros(len(tp))
  for t in range(len(tp)):
    keep = tp[t] | fp[t]
    tp_c = np.cumsum(tp[t][keep])
    fp_c = np.cumsum(fp[t][keep])
    if len(tp_c):
      out[t] = interpolated_ap(tp_c / np.maximum(tp_c + fp_c, 1), tp_c / npos)
  return out


def _ground_truth_by_class(ground_truth):
  by_class = {}
  for video, rows in ground_truth.items():
    for r in rows:
      by_class.setdefault(r["label"], {}).setdefault(video, []).append(
          r["segment"])
  return {c: {v: np.asarray(s, np.float64).reshape(-1, 2)
              for v, s in vids.items()} for c, vids in by_class.items()}


def detection_map(ground_truth: Mapping, predictions: Mapping,
                  thresholds=ACTIVITYNET_THRESHOLDS, ambiguous=None,
                  class_names: Sequence[str] | None = None) -> dict:
  """mAP at each tIoU threshold and averaged.

  Args:
    ground_truth: {video: [{"segment": [s, e], "label": name}]} (the videos
      evaluated; `annotations.ground_truth` gives it for a subset).
    predictions: {video: [{"segment": [s, e], "label": name, "score": x}]}.
    thresholds: tIoU thresholds.
    ambiguous: {video: [[s, e], ...]} THUMOS ambiguous intervals, or None.
    class_names: the classes to average over (default: those with ground
      truth, sorted); a listed class with no ground truth is an error.

  Returns:
    {"thresholds": [T], "map": [T], "average_map": float,
     "ap": {class: [T]}, "num_ground_truth": int, "num_predictions": int}.
  """
  gt_by_class = _ground_truth_by_class(ground_truth)
  names = sorted(gt_by_class) if class_names is None else list(class_names)
  missing = [c for c in names if c not in gt_by_class]
  if missing:
    raise VidjaxError(f"class(es) {missing[:5]} have no ground truth in the "
                      "evaluated videos: AP is undefined")
  preds_by_class = {c: [] for c in names}
  n_pred = 0
  for video, rows in predictions.items():
    for r in rows:
      if r["label"] in preds_by_class:
        s, e = r["segment"]
        preds_by_class[r["label"]].append((video, float(s), float(e),
                                           float(r["score"])))
        n_pred += 1
  amb = None if ambiguous is None else {
      v: np.asarray(a, np.float64).reshape(-1, 2) for v, a in ambiguous.items()}
  ap = {c: class_ap(gt_by_class[c], preds_by_class[c], thresholds, amb)
        for c in names}
  per_t = np.mean(np.stack([ap[c] for c in names]), 0) if names else \
      np.zeros(len(thresholds))
  return {"thresholds": [float(t) for t in thresholds],
          "map": [float(m) for m in per_t],
          "average_map": float(np.mean(per_t)),
          "ap": {c: [float(x) for x in ap[c]] for c in names},
          "num_ground_truth": sum(len(r) for r in ground_truth.values()),
          "num_predictions": n_pred}


def chance_map(ground_truth: Mapping, predictions: Mapping,
               thresholds=ACTIVITYNET_THRESHOLDS, draws: int = 20,
               seed: int = 0, ambiguous=None, mode: str = "instances") -> dict:
  """The chance level of these detections: their average mAP when the class
  labels carry no information, over `draws` seeded Monte-Carlo draws.

  A permutation test: the ground truth's class labels are shuffled among its
  instances (every interval, and the class counts, kept) and the detections
  are scored, untouched, against them. If the detections' classes are
  independent of the true classes given the segments (a detector with no
  class information), their mAP has exactly this distribution; a detector
  that learnt the classes sits above it, one that learnt a wrong mapping can
  sit below it. Redrawing the detections' own labels instead breaks what the
  per-class soft-NMS leaves (one top segment per class and action: measured
  on issue #20's permuted-labels control, 0.115 against its 0.174).

  The level depends on the detections, not only on K: a detector that
  reports each found action once, under one class, has a chance level near
  1/K^2; one that reports it under every class (as a detector whose class
  scores carry no information does) near the class's share of the ground
  truth, 1/K, plus what VOC interpolation adds to a random ranking -- much
  more when a class has few ground truths (the expected non-interpolated AP
  of a random ranking of n positives among N items is
  (n-1)/(N-1) + H_N (N-n) / (N(N-1)); tests/test_localization_chance.py).

  mode "classes" is the other null: the class NAMES permuted (a random
  bijection of the label set applied to every ground truth), the level of a
  detector that sorts the actions consistently but under arbitrary names
  (a perfect one scores (fixed points of the bijection) / K, 1/K on average);
  a detector trained on shuffled labels learns the finite sample's
  accidental label-motion association, and sits between the two levels.

  Returns {"mean", "std", "min", "max", "draws": [average mAP per draw]}.
  """
  if mode not in ("instances", "classes"):
    raise VidjaxError(f"chance_map: mode={mode!r}: instances or classes")
  rows = [(v, i) for v, rs in ground_truth.items() for i in range(len(rs))]
  labels = np.asarray([ground_truth[v][i]["label"] for v, i in rows], object)
  names = sorted(set(labels))
  rng = np.random.default_rng(seed)
  got = []
  for _ in range(int(draws)):
    shuffled = {v: [dict(r) for r in rs] for v, rs in ground_truth.items()}
    if mode == "classes":
      rename = dict(zip(names, rng.permutation(names)))
      new = [rename[c] for c in labels]
    else:
      new = labels[rng.permutation(len(labels))]
    for (v, i), label in zip(rows, new):
      shuffled[v][i]["label"] = label
    got.append(detection_map(shuffled, predictions, thresholds,
                             ambiguous)["average_map"])
  got = np.asarray(got if got else [0.0], np.float64)
  return {"mean": float(got.mean()), "std": float(got.std()),
          "min": float(got.min()), "max": float(got.max()),
          "draws": got.tolist() if draws else []}


def recall_at_proposals(ground_truth: Mapping, proposals: Mapping,
                        max_proposals: int = 100,
                        thresholds=PROPOSAL_THRESHOLDS, num_points: int = 100):
  """ActivityNet's recall vs. average number of proposals per video.

  Args:
    ground_truth: {video: [{"segment": [s, e], ...}]}; its videos are the ones
      evaluated (labels are ignored: proposals are class-agnostic).
    proposals: {video: [{"segment": [s, e], "score": x}]}.
    max_proposals: the largest AN (ActivityNet: 100).
    thresholds: tIoU thresholds of the average.
    num_points: AN samples, at max_proposals * k / num_points,
      k = 1..num_points.

  Returns:
    (recall [T, num_points], average_recall [num_points], an [num_points]).
  """
  videos = [v for v in ground_truth if len(ground_truth[v])]
  if not videos:
    raise VidjaxError("recall needs at least one ground-truth segment")
  sorted_props = {}
  for v in videos:
    rows = proposals.get(v, [])
    order = np.argsort(-np.asarray([r["score"] for r in rows], np.float64),
                       kind="stable")
    sorted_props[v] = _as_segments([rows[i] for i in order])
  total = sum(len(p) for p in sorted_props.values())
  ratio = max_proposals * len(videos) / total if total else 0.0
  ious, used = [], 0
  for v in videos:
    n = min(int(np.floor(len(sorted_props[v]) * ratio + 1e-9)),
            len(sorted_props[v]))
    used += n
    ious.append(tiou_matrix(_as_segments(ground_truth[v]),
                            sorted_props[v][:n]))
  frac = np.arange(1, num_points + 1) / num_points
  scale = max_proposals * len(videos) / used if used else 0.0
  positives = sum(m.shape[0] for m in ious)
  recall = np.zeros((len(thresholds), num_points))
  for ti, thr in enumerate(thresholds):
    for m in ious:
      if not m.shape[1]:
        continue
      hit = m >= thr
      # cumulative "any proposal so far hits this gt", per proposal count
      first = np.where(hit.any(1), hit.argmax(1), m.shape[1])
      counts = np.minimum(np.floor(m.shape[1] * frac * scale + 1e-9).astype(
          int), m.shape[1])
      recall[ti] += (first[None, :] < counts[:, None]).sum(1)
    recall[ti] /= positives
  an = frac * max_proposals  # ActivityNet: pcn * used / #videos
  return recall, recall.mean(0), an


def proposal_metrics(ground_truth, proposals, max_proposals: int = 100,
                     thresholds=PROPOSAL_THRESHOLDS,
                     at=(1, 5, 10, 50, 100)) -> dict:
  """{"ar@N": AR at AN=N for N in `at`, "auc": area / max AN, "an": [...],
  "ar": [...]} (AN on the 1..max_proposals grid)."""
  _, ar, an = recall_at_proposals(ground_truth, proposals, max_proposals,
                                  thresholds, num_points=max_proposals)
  out = {"an": an.tolist(), "ar": ar.tolist()}
  for n in at:
    if 1 <= n <= max_proposals:
      out[f"ar@{n}"] = float(ar[n - 1])
  out["auc"] = float(np.trapezoid(ar, an) / an[-1]) if an[-1] > 0 else 0.0
  return out


def recall_at_threshold(ground_truth, proposals, num: int,
                        threshold: float) -> float:
  """Share of ground truths hit (tIoU >= threshold) by one of the top-`num`
  proposals of their video (the simple per-video AR@N at one threshold)."""
  hit = total = 0
  for v, rows in ground_truth.items():
    props = proposals.get(v, [])
    order = np.argsort(-np.asarray([p["score"] for p in props], np.float64),
                       kind="stable")[:num]
    m = tiou_matrix(_as_segments(rows), _as_segments([props[i] for i in order]))
    total += m.shape[0]
    hit += int((m >= threshold).any(1).sum()) if m.shape[1] else 0
  return hit / total if total else 0.0


def write_predictions(path: str, results: Mapping, version: str = "VERSION 1.3",
                      external_data: Mapping | None = None) -> None:
  """Writes ActivityNet result JSON ({"version", "results",
  "external_data"})."""
  clean = {v: [{"label": r["label"], "score": float(r["score"]),
                "segment": [float(r["segment"][0]), float(r["segment"][1])]}
               for r in rows] for v, rows in results.items()}
  with open(path, "w") as f:
    json.dump({"version": version, "results": clean,
               "external_data": dict(external_data or {})}, f)


def read_predictions(path: str) -> dict:
  """{video: [{"label", "score", "segment"}]} of an ActivityNet result JSON."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise VidjaxError(f"{path}: not a readable prediction JSON ({e})") from None
  if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
    raise VidjaxError(f"{path}: expected ActivityNet result JSON with a "
                      "'results' object ({video: [{label, score, segment}]})")
  out = {}
  for video, rows in data["results"].items():
    for n, r in enumerate(rows):
      if not {"label", "score", "segment"} <= set(r) or len(r["segment"]) != 2:
        raise VidjaxError(f"{path}: results[{video!r}][{n}] needs label, "
                          "score and a 2-element segment")
    out[video] = [{"label": r["label"], "score": float(r["score"]),
                   "segment": [float(r["segment"][0]), float(r["segment"][1])]}
                  for r in rows]
  return out
