"""Detector outputs -> scored segments in seconds (numpy, on the host).

ActionFormer's inference (Zhang et al. 2022, Sec. 3.3, "Inference"): every
point t of level l (stride s) with class probability sigmoid(logit) above a
threshold proposes the segment [t - s l_t, t + s r_t] (step coordinates) for
that class; the `pre_nms_topk` best are kept, converted to seconds with the
video's `FeatureTiming` (timing.py: step i's centre is centre_time(i)),
clipped to the video, and each class's set goes through Gaussian soft-NMS
(Bodla et al. 2017, "Soft-NMS", Eq. 3: after picking the best box M, every
other box's score is multiplied by exp(-IoU(M, b)^2 / sigma)); the best
`max_segments` of the video are returned.
"""
from __future__ import annotations

import numpy as np

from vidjax.tasks.localization.timing import FeatureTiming


def segment_iou(seg: np.ndarray, others: np.ndarray) -> np.ndarray:
  """tIoU of one [2] segment with [N, 2] segments."""
  inter = np.maximum(0.0, np.minimum(seg[1], others[:, 1])
                     - np.maximum(seg[0], others[:, 0]))
  union = (seg[1] - seg[0]) + (others[:, 1] - others[:, 0]) - inter
  return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def soft_nms(segments, scores, sigma: float = 0.5, min_score: float = 1e-3,
             max_keep: int = 0, method: str = "gaussian"):
  """Soft-NMS of one class's [N, 2] segments: (segments, scores) in pick
  order, scores decayed. method "gaussian" (exp(-iou^2 / sigma)) or "hard"
  (drop iou > sigma, classic NMS with threshold sigma)."""
  segs = np.asarray(segments, np.float64).reshape(-1, 2).copy()
  sc = np.asarray(scores, np.float64).reshape(-1).copy()
  keep_s, keep_c = [], []
  while len(sc) and (not max_keep or len(keep_c) < max_keep):
    i = int(np.argmax(sc))
    if sc[i] < min_score:
      break
    best, best_score = segs[i], sc[i]
    keep_s.append(best)
    keep_c.append(best_score)
    segs, sc = np.delete(segs, i, 0), np.delete(sc, i)
    iou = segment_iou(best, segs)
    if method == "gaussian":
      sc = sc * np.exp(-np.square(iou) / sigma)
    else:
      sc = np.where(iou > sigma, 0.0, sc)
    alive = sc >= min_score
    segs, sc = segs[alive], sc[alive]
  return (np.asarray(keep_s, np.float64).reshape(-1, 2),
          np.asarray(keep_c, np.float64))


def decode_video(cls_logits, offsets, point_mask, geometry: dict,
                 timing: FeatureTiming, duration: float,
                 score_threshold: float = 1e-3, pre_nms_topk: int = 2000,
                 sigma: float = 0.5, max_segments: int = 200,
                 min_length: float = 0.0) -> list:
  """[(start s, end s, class id, score)] of one video, best first.

  cls_logits [P, K], offsets [P, 2] (level-stride units), point_mask [P];
  geometry: targets.points(...) (position, stride)."""
  logits = np.asarray(cls_logits, np.float64)
  probs = 1.0 / (1.0 + np.exp(-logits))
  probs = probs * np.asarray(point_mask, bool)[:, None]
  flat = probs.reshape(-1)
  idx = np.flatnonzero(flat > score_threshold)
  if len(idx) > pre_nms_topk:
    idx = idx[np.argsort(-flat[idx], kind="stable")[:pre_nms_topk]]
  k = probs.shape[1]
  point, cls = idx // k, idx % k
  pos = np.asarray(geometry["position"], np.float64)[point]
  stride = np.asarray(geometry["stride"], np.float64)[point]
  off = np.asarray(offsets, np.float64)[point]
  steps = np.stack([pos - off[:, 0] * stride, pos + off[:, 1] * stride], 1)
  secs = np.clip(timing.seconds_at(steps), 0.0, float(duration))
  ok = (secs[:, 1] - secs[:, 0]) > min_length
  secs, cls, score = secs[ok], cls[ok], flat[idx][ok]
  out = []
  for c in np.unique(cls):
    sel = cls == c
    segs, sc = soft_nms(secs[sel], score[sel], sigma, score_threshold,
                        max_segments)
    out += [(float(s), float(e), int(c), float(x)) for (s, e), x in
            zip(segs, sc)]
  out.sort(key=lambda r: -r[3])
  return out[:max_segments]


def batch_timings(batch: dict) -> list:
  """The FeatureTiming of each row of a `data.pad_batch` batch."""
  return [FeatureTiming(float(f), int(round(float(s))), int(round(float(t))),
                        int(round(float(o))))
          for f, s, t, o in zip(batch["fps"], batch["span"], batch["stride"],
                                batch["offset"])]


def predictions(outputs: dict, batch: dict, video_ids, class_names,
                geometry: dict, **decode_kw) -> dict:
  """{video_id: [{"segment": [s, e], "label", "score"}]} (evaluate.py's
  format) of a batch's detector outputs (numpy; rows past len(video_ids),
  e.g. padding of the last batch, are skipped)."""
  out = {}
  for i, (vid, timing) in enumerate(zip(video_ids, batch_timings(batch))):
    rows = decode_video(outputs["cls_logits"][i], outputs["offsets"][i],
                        outputs["point_mask"][i], geometry, timing,
                        float(batch["duration"][i]), **decode_kw)
    out[vid] = [{"segment": [s, e], "label": class_names[c], "score": x}
                for s, e, c, x in rows]
  return out
