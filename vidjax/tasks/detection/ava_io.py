"""AVA file formats for evaluation, row by row (Gu et al., CVPR 2018; the
formats of https://research.google.com/ava/download.html and of ActivityNet's
`Evaluation/get_ava_performance.py`).

* Box CSV, no header, one row per (person, action): `video_id, timestamp,
  x1, y1, x2, y2, action_id, person_id` (ground truth) or `..., action_id,
  score` (detections / results); boxes normalised to [0, 1] with the origin
  top-left; timestamps are whole seconds (v2.x keyframes: 902..1798), read
  as int ("0902" and "902" are the same keyframe, as the official
  `"%s,%04d" % (video_id, int(timestamp))` key); video ids are strings.
  A row with only `video_id, timestamp` lists a keyframe with no box (the
  AVA v3-era convention the current ActivityNet evaluator reads).
* Label map pbtxt (`label { name: "..." label_id: N label_type: ... }`, v2.2;
  `item { name: "..." id: N }`, v2.1): its ids are the evaluated classes.
* Excluded-timestamps CSV: `video_id, timestamp` rows.

`read_csv` keeps the file order of the rows: the official evaluator's
per-keyframe top-k and its tie order depend on it. The label map and the
excluded timestamps are read by `vidjax.data.ava_public` (the data pipeline's
reader, re-exported here: one parser per format).
"""
from __future__ import annotations

import csv
import os
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from vidjax.data.ava_public import read_excluded as _read_excluded
from vidjax.data.ava_public import read_label_map, write_label_map
from vidjax.errors import VidjaxError

__all__ = ["AvaRow", "read_csv", "write_csv", "read_label_map",
           "write_label_map", "read_excluded", "write_excluded",
           "detections_to_rows"]


class AvaRow(NamedTuple):
  """One CSV row. `box` (x1, y1, x2, y2) and `action` are None for a
  keyframe-only row; `extra` is the 8th column (person id or score), None
  when the row has 7 columns."""
  video_id: str
  timestamp: int
  box: tuple | None = None
  action: int | None = None
  extra: float | None = None


def _timestamp(text: str, where: str) -> int:
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not value.is_integer():
    raise VidjaxError(f"{where}: timestamp {text!r} is not a whole second "
                      "(AVA keyframes are integer seconds)")
  return int(value)


def read_csv(path: str) -> list:
  """[AvaRow] of an AVA box CSV (GT, detections or results), file order."""
  if not os.path.isfile(path):
    raise VidjaxError(f"{path}: no such AVA box CSV")
  rows = []
  with open(path, newline="") as f:
    for n, row in enumerate(csv.reader(f), 1):
      if not row or not "".join(row).strip():
        continue
      where = f"{path}:{n}"
      if len(row) not in (2, 7, 8):
        raise VidjaxError(
            f"{where}: expected 2, 7 or 8 columns (video_id, timestamp[, x1, "
            f"y1, x2, y2, action_id[, person_id|score]]), got {len(row)}")
      ts = _timestamp(row[1], where)
      if len(row) == 2:
        rows.append(AvaRow(row[0], ts))
        continue
      try:
        box = tuple(float(v) for v in row[2:6])
        action = int(row[6]) if row[6].strip() else -1
        extra = float(row[7]) if len(row) == 8 and row[7].strip() else None
      except ValueError:
        raise VidjaxError(f"{where}: not an AVA box row: {row}") from None
      rows.append(AvaRow(row[0], ts, box, action, extra))
  return rows


def _num(v) -> str:
  """Shortest exact text of a float (scores keep their ranking)."""
  return repr(float(v))


def write_csv(path: str, rows: Iterable, scores: bool = True) -> int:
  """Writes AvaRow-like rows (video_id, timestamp, box, action, extra):
  8 columns, the last a score (float) when `scores`, else an integer person
  id; a row without a box is written as `video_id, timestamp`. Timestamps
  as 4 digits, like the official files. Returns the number of rows."""
  n = 0
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    for r in rows:
      r = AvaRow(*r)
      head = [r.video_id, f"{int(r.timestamp):04d}"]
      if r.box is None:
        w.writerow(head)
      else:
        extra = 1.0 if r.extra is None else r.extra
        w.writerow(head + [_num(v) for v in r.box] + [
            int(r.action), _num(extra) if scores else int(extra)])
      n += 1
  return n


def read_excluded(path: str | None) -> set:
  """{(video_id, timestamp)} of an excluded-timestamps CSV (None: empty)."""
  if not path:
    return set()
  if not os.path.isfile(path):
    raise VidjaxError(f"{path}: no such excluded-timestamps CSV")
  return _read_excluded(path)


def write_excluded(path: str, keys: Iterable) -> None:
  """(video_id, timestamp) pairs as an excluded-timestamps CSV."""
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    for v, t in keys:
      w.writerow([v, f"{int(t):04d}"])


def detections_to_rows(video_id: str, timestamp: int, boxes, scores,
                       class_ids: Sequence[int], mask=None) -> list:
  """A keyframe's model output as result rows: boxes [n, 4] (x1, y1, x2, y2
  normalised), per-class scores [n, K] over `class_ids` (sigmoid
  probabilities), optional valid mask [n]; one row per (box, class)."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  if not len(boxes):  # a keyframe without boxes: no rows
    return []
  scores = np.asarray(scores, np.float64).reshape(len(boxes), -1)
  if scores.shape[1] != len(class_ids):
    raise VidjaxError(f"detections_to_rows: {scores.shape[1]} score columns "
                      f"for {len(class_ids)} class ids")
  keep = np.ones(len(boxes), bool) if mask is None else np.asarray(mask, bool)
  return [AvaRow(str(video_id), int(timestamp), tuple(boxes[i].tolist()),
                 int(c), float(scores[i, k]))
          for i in np.nonzero(keep)[0] for k, c in enumerate(class_ids)]
