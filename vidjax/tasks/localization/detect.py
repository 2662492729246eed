"""Host side of detection: padded test batches -> jitted step -> segments.

`detect(state, eval_step, sequences, ...)` pads whole test videos
(`data.pad_batch`, one compiled shape: `max_len`, a multiple of
2^(num_levels - 1)), runs the eval step, decodes with postprocess.py and
returns evaluate.py's prediction dict {video: [{"segment", "label",
"score"}]}. In two-stage mode (`roi_step` given) the class-agnostic proposals
of each video (soft-NMS, best `num_proposals`) are classified by the RoI
head: each proposal yields its `classes_per_proposal` best action classes
with score = proposal score x class probability (TAL-Net, Chao et al. 2018,
Sec. 3: a detection's score combines the two stages').
"""
from __future__ import annotations

import numpy as np

from vidjax.tasks.localization import data, postprocess, targets


def batches(sequences, batch_size: int, max_len: int, max_segments: int):
  """(pad_batch dict, video ids) of consecutive sequences; the last batch is
  padded with copies of its first row (ids shorter than the batch)."""
  n = len(sequences)
  for i in range(0, n, batch_size):
    items = [sequences[j] for j in range(i, min(i + batch_size, n))]
    ids = [s.video_id for s in items]
    items = items + [items[0]] * (batch_size - len(items))
    yield data.pad_batch(items, max_len, max_segments), ids


def _device_batch(batch):
  keys = ("inputs", "mask", "segments", "labels", "segment_mask",
          "num_steps")
  return {k: batch[k] for k in keys}


def detect(state, eval_step, sequences, class_names, max_len: int,
           max_segments: int, num_levels: int, batch_size: int = 8,
           roi_step=None, num_proposals: int = 100,
           classes_per_proposal: int = 2, put=None, **decode_kw) -> dict:
  """Predictions of every sequence (module docstring). `put` places a
  host batch on the devices (e.g. sharding.put_batch with a mesh)."""
  put = put or (lambda b: b)
  geo = targets.points(max_len, num_levels)
  out = {}
  for batch, ids in batches(sequences, batch_size, max_len, max_segments):
    dev = put(_device_batch(batch))
    res = {k: np.asarray(v) for k, v in eval_step(state, dev).items()}
    if roi_step is None:
      out.update(postprocess.predictions(res, batch, ids, class_names, geo,
                                         **decode_kw))
      continue
    kw = dict(decode_kw, max_segments=num_proposals)
    timings = postprocess.batch_timings(batch)
    props = [postprocess.decode_video(
        res["cls_logits"][i], res["offsets"][i], res["point_mask"][i], geo,
        timings[i], float(batch["duration"][i]), **kw)
        for i in range(len(ids))]
    rois = np.zeros((batch_size, num_proposals, 2), np.float32)
    for i, rows in enumerate(props):
      for r, (s, e, _, _) in enumerate(rows):
        rois[i, r] = timings[i].index_at(np.array([s, e]))
    probs = np.asarray(roi_step(state, dev, put({"rois": rois})["rois"]))
    for i, vid in enumerate(ids):
      dets = []
      for r, (s, e, _, score) in enumerate(props[i]):
        p = probs[i, r, :-1]
        for c in np.argsort(-p)[:classes_per_proposal]:
          dets.append({"segment": [s, e], "label": class_names[int(c)],
                       "score": float(score * p[c])})
      dets.sort(key=lambda d: -d["score"])
      out[vid] = dets
  return out


def proposals(state, eval_step, sequences, max_len: int, max_segments: int,
              num_levels: int, batch_size: int = 8, put=None,
              **decode_kw) -> dict:
  """Class-agnostic proposals {video: [{"segment", "score"}]}: every class's
  detections of a one-stage model merged (its class-agnostic heads in
  two-stage mode), for evaluate.proposal_metrics / recall_at_threshold."""
  preds = detect(state, eval_step, sequences, ["action"] * 10**4, max_len,
                 max_segments, num_levels, batch_size, put=put, **decode_kw)
  return {v: [{"segment": d["segment"], "score": d["score"]} for d in rows]
          for v, rows in preds.items()}
