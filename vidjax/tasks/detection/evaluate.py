"""AVA frame-mAP, exact, pure numpy.

The metric of AVA (Gu et al., CVPR 2018) as ActivityNet's official
`Evaluation/get_ava_performance.py` computes it for the v2.1 / v2.2
challenges (the evaluator PySlowFast and mmaction2 vendor; its core is the
TF Object Detection API's `PascalDetectionEvaluator`). Re-implemented here
from its documented behaviour; every rule below was read in that code:

* Image key = (video_id, int(timestamp)). Rows of classes outside the label
  map (the class whitelist: 60 of AVA's 80 actions) are dropped, for the GT
  and the detections alike.
* Top-k per keyframe: at most `top_k` = 50 detection rows per keyframe,
  over all classes, the highest scores, selected with a min-heap of (score,
  action, y1, x1, y2, x2) in file order (a row replaces the heap's minimum
  only if its score is strictly larger); the kept rows are then sorted by
  score, descending (Python's stable sort of the heap's array). The GT keeps
  all its rows, put through the same heap and sort (this only fixes which GT
  box wins an exact IoU tie).
* Excluded timestamps: GT and detections on those keyframes are ignored.
* Detections on a keyframe with no (whitelisted) GT row count as false
  positives (the v2.x evaluator: such a keyframe is an image with no
  objects); `unlisted="ignore"` drops them instead, as the current ActivityNet
  code does for keyframes absent from the GT file.
* Detection boxes with x1 >= x2 or y1 >= y2 are dropped (after top-k).
* Matching, per keyframe and class, in the sorted order (VOC rule): a
  detection's candidate is the GT box of highest IoU (first one on ties); it
  is a true positive if that IoU >= 0.5 and the box is not yet taken, else
  a false positive, even when another free GT box also has IoU >= 0.5.
  IoU on normalised coordinates: areas (x2 - x1)(y2 - y1), no "+1". AVA
  uses no "difficult" or group-of boxes.
* Per class: all its detections over the keyframes (keyframes in the order
  their first kept detection row appears in the file), ranked by
  `np.argsort(scores)[::-1]` as the official code (so ties between equal
  scores fall exactly as there); precision = TP / rank, recall = TP / #GT;
  AP = VOC all-point interpolated AP (precision envelope from the right,
  summed over recall changes: the PASCAL 2010+ definition, the same as
  `vidjax.tasks.localization.evaluate.interpolated_ap`).
* mAP = mean AP over the whitelisted classes that have GT (NaN for the
  others, which the official `np.nanmean` skips).
"""
from __future__ import annotations

import heapq
from typing import Iterable, Mapping, Sequence

import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks.detection import ava_io
from vidjax.tasks.localization.evaluate import interpolated_ap

TOP_K = 50          # get_ava_performance: read_csv(detections, ..., 50)
IOU_THRESHOLD = 0.5
UNLISTED = ("false_positive", "ignore")


def box_iou(a, b) -> np.ndarray:
  """IoU [N, M] of boxes a [N, 4] and b [M, 4], (x1, y1, x2, y2), no +1."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  w = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) -
                 np.maximum(a[:, None, 0], b[None, :, 0]), 0.0)
  h = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) -
                 np.maximum(a[:, None, 1], b[None, :, 1]), 0.0)
  inter = w * h
  area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
  area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  union = area_a[:, None] + area_b[None, :] - inter
  with np.errstate(invalid="ignore", divide="ignore"):
    return inter / union


def keyframe_lists(rows: Iterable, classes, capacity: int = 0) -> dict:
  """{(video_id, timestamp): (boxes [n, 4] x1y1x2y2, labels [n], scores
  [n])} of AvaRows: whitelisted rows only, at most `capacity` per keyframe
  (0: all), sorted by score as the official reader (module docstring).
  Keys in the order of their first kept row; a missing score reads 1.0."""
  heaps = {}
  for r in rows:
    if r.box is None or r.action not in classes:
      continue
    score = 1.0 if r.extra is None else float(r.extra)
    x1, y1, x2, y2 = r.box
    item = (score, r.action, y1, x1, y2, x2)
    heap = heaps.setdefault((r.video_id, r.timestamp), [])
    if capacity < 1 or len(heap) < capacity:
      heapq.heappush(heap, item)
    elif score > heap[0][0]:
      heapq.heapreplace(heap, item)
  out = {}
  for key, heap in heaps.items():
    items = sorted(heap, key=lambda t: -t[0])
    boxes = np.asarray([(t[3], t[2], t[5], t[4]) for t in items], np.float64)
    out[key] = (boxes.reshape(-1, 4), np.asarray([t[1] for t in items], int),
                np.asarray([t[0] for t in items], np.float64))
  return out


def match_voc(det_boxes, gt_boxes, threshold: float = IOU_THRESHOLD):
  """True-positive flags [n] of one keyframe's detections of one class, in
  their given (score-sorted) order, against its GT boxes (VOC rule)."""
  n = len(det_boxes)
  tp = np.zeros(n, bool)
  if n == 0 or len(gt_boxes) == 0:
    return tp
  iou = box_iou(det_boxes, gt_boxes)
  best = np.argmax(iou, 1)
  taken = np.zeros(len(gt_boxes), bool)
  for i in range(n):
    j = best[i]
    if iou[i, j] >= threshold and not taken[j]:
      tp[i] = taken[j] = True
  return tp


def average_precision(scores, tp, num_gt: int) -> float:
  """VOC AP of a class's detections (any order) with `num_gt` GT boxes."""
  if num_gt <= 0:
    return float("nan")
  scores = np.asarray(scores, np.float64)
  tp = np.asarray(tp, bool)
  if len(scores) == 0:
    return 0.0
  order = np.argsort(scores)[::-1]
  tp_c = np.cumsum(tp[order])
  fp_c = np.cumsum(~tp[order])
  return interpolated_ap(tp_c / (tp_c + fp_c), tp_c / num_gt)


def frame_map(gt_rows: Sequence, det_rows: Sequence, class_ids,
              excluded=(), top_k: int = TOP_K,
              iou_threshold: float = IOU_THRESHOLD,
              unlisted: str = "false_positive") -> dict:
  """Frame-mAP of AvaRows (module docstring).

  Args:
    gt_rows, det_rows: [AvaRow] (ava_io.read_csv), in file order.
    class_ids: the label map's ids (the whitelist).
    excluded: {(video_id, timestamp)} keyframes ignored.
    top_k: detection rows kept per keyframe (<= 0: all).
    iou_threshold: matching IoU.
    unlisted: "false_positive" | "ignore": detections on keyframes without
      whitelisted GT rows (and without any GT row, for "ignore").

  Returns:
    {"map": float, "ap": {class id: AP or nan}, "num_gt": {class id: int},
     "num_detections": int (kept), "num_keyframes": int (GT, evaluated)}.
  """
  if unlisted not in UNLISTED:
    raise VidjaxError(f"unlisted={unlisted!r}: expected one of {UNLISTED}")
  classes = sorted({int(c) for c in class_ids})
  if not classes:
    raise VidjaxError("frame_map: the label map lists no class")
  wanted = set(classes)
  excluded = set(excluded)
  gt = {k: v for k, v in keyframe_lists(gt_rows, wanted).items()
        if k not in excluded}
  listed = {(r.video_id, r.timestamp) for r in gt_rows}
  dets = keyframe_lists(det_rows, wanted, top_k)
  num_gt = {c: 0 for c in classes}
  for _, labels, _ in gt.values():
    for c in labels:
      num_gt[int(c)] += 1
  per_scores = {c: [] for c in classes}
  per_tp = {c: [] for c in classes}
  empty = (np.zeros((0, 4)), np.zeros(0, int), np.zeros(0))
  kept = 0
  for key, (boxes, labels, scores) in dets.items():
    if key in excluded or (unlisted == "ignore" and key not in listed):
      continue
    valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
    boxes, labels, scores = boxes[valid], labels[valid], scores[valid]
    g_boxes, g_labels, _ = gt.get(key, empty)
    kept += len(boxes)
    for c in np.unique(labels):
      sel = labels == c
      per_scores[int(c)].append(scores[sel])
      per_tp[int(c)].append(match_voc(boxes[sel], g_boxes[g_labels == c],
                                      iou_threshold))
  ap = {}
  for c in classes:
    s = np.concatenate(per_scores[c]) if per_scores[c] else np.zeros(0)
    t = np.concatenate(per_tp[c]) if per_tp[c] else np.zeros(0, bool)
    ap[c] = average_precision(s, t, num_gt[c])
  values = [v for v in ap.values() if not np.isnan(v)]
  return {"map": float(np.mean(values)) if values else float("nan"),
          "ap": ap, "num_gt": num_gt, "num_detections": kept,
          "num_keyframes": len(gt)}


def evaluate_files(gt_csv: str, pred_csv: str, label_map: str,
                   exclusions: str | None = None, **kwargs) -> dict:
  """`frame_map` of AVA files; adds "class_names" {id: name}."""
  names = ava_io.read_label_map(label_map)
  out = frame_map(ava_io.read_csv(gt_csv), ava_io.read_csv(pred_csv),
                  names, ava_io.read_excluded(exclusions), **kwargs)
  out["class_names"] = dict(names)
  return out


def per_class_table(result: Mapping) -> list:
  """[(class id, name, #GT, AP)] rows of an `evaluate_files` result."""
  names = result.get("class_names", {})
  return [(c, names.get(c, str(c)), result["num_gt"][c], ap)
          for c, ap in sorted(result["ap"].items())]
