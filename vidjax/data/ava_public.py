"""AVA v2.2 over the user's files (nothing downloaded), and the AVA file
formats shared with the embedded `synthetic_ava` build.

Layout (PySlowFast `slowfast/datasets/DATASET.md`, the one LFB and
mmaction2 use), under `config.dataset.manual_dir`:

  frames/<video_id>/<video_id>_000001.jpg ...   ffmpeg -ss 900 -t 901, -r 30
  annotations/ava_train_v2.2.csv, ava_val_v2.2.csv
  annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt
  annotations/ava_{train,val}_excluded_timestamps_v2.2.csv
  annotations/ava_val_predicted_boxes.csv       (only for eval_boxes="detector")

(the annotation files may also sit in manual_dir itself). Frames are cut from
15:00 and extracted at 30 fps, numbered from 1 (ffmpeg's %06d), so the frame
at second s is 0-based index (s - 900) * 30, i.e. file number
(s - 900) * 30 + 1 (PySlowFast `ava_helper.sec_to_frame`; its image list is
0-based). Keyframes are the seconds 902..1798 (AVA_VALID_FRAMES).

Formats (Gu et al., CVPR 2018; the ActivityNet evaluator):
* box CSV, no header: `video_id, timestamp, x1, y1, x2, y2, action_id,
  person_id` (GT), or `..., x2, y2, action_id or empty, score` (detections,
  predictions); boxes normalised to [0, 1], top-left origin; one row per
  (person, action).
* label map pbtxt: `label { name: "..." label_id: N label_type: ... }` (v2.2)
  or `item { name: "..." id: N }` (v2.1); its ids are the evaluated classes.
* excluded timestamps CSV: `video_id, timestamp`.
"""
from __future__ import annotations

import collections
import csv
import os
import re

import numpy as np

from vidjax.errors import VidjaxError

FPS = 30
START_SECOND = 900
VALID_SECONDS = range(902, 1799)
GT_FILES = {"train": "ava_train_v2.2.csv", "test": "ava_val_v2.2.csv"}
EXCLUDED_FILES = {"train": "ava_train_excluded_timestamps_v2.2.csv",
                  "test": "ava_val_excluded_timestamps_v2.2.csv"}
DETECTOR_FILES = {"train": "ava_train_predicted_boxes.csv",
                  "test": "ava_val_predicted_boxes.csv"}
LABEL_MAP = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"


def frame_index(second: int) -> int:
  """0-based index of the frame at `second` (file number: index + 1)."""
  return (int(second) - START_SECOND) * FPS


def frame_path(frames_dir: str, video_id: str, index: int) -> str:
  return os.path.join(frames_dir, video_id, f"{video_id}_{index + 1:06d}.jpg")


# ---------------------------------------------------------------- file formats
def read_boxes(path: str, min_score: float | None = None) -> dict:
  """{(video_id, timestamp): [(box (x1, y1, x2, y2), action_id or -1,
  person_id or score)]} of a box CSV (GT or detections, see the module
  docstring), read by vidjax.tasks.detection.ava_io.read_csv (one parser
  per format); detections below `min_score` are dropped (a missing 8th
  column counts as 1)."""
  from vidjax.tasks.detection import ava_io  # it imports this module
  out = collections.defaultdict(list)
  for r in ava_io.read_csv(path):
    if r.box is None:  # a keyframe listed without a box
      out.setdefault((r.video_id, r.timestamp), [])
      continue
    extra = 1.0 if r.extra is None else r.extra
    if min_score is not None and extra < min_score:
      continue
    out[(r.video_id, r.timestamp)].append((r.box, r.action, extra))
  return dict(out)


def write_boxes(path: str, rows, scores: bool = False) -> None:
  """Writes (video_id, timestamp, box, action_id or -1, person_id or score)
  rows in the box CSV format (ava_io.write_csv: the last column a score when
  `scores`, else an integer person id)."""
  from vidjax.tasks.detection import ava_io
  ava_io.write_csv(path, rows, scores=scores)


def read_label_map(path: str) -> dict:
  """{class id: name} of an AVA pbtxt (`label_id:` or `id:` entries)."""
  if not os.path.isfile(path):
    raise VidjaxError(f"{path}: no such label map (AVA action list pbtxt)")
  text = open(path).read()
  names = re.findall(r'name:\s*"([^"]*)"', text)
  ids = [int(v) for v in re.findall(r"\b(?:label_)?id:\s*(\d+)", text)]
  if not ids or len(ids) != len(names):
    raise VidjaxError(f"{path}: not an AVA label map ({len(names)} names, "
                      f"{len(ids)} ids)")
  return dict(zip(ids, names))


def write_label_map(path: str, names: dict) -> None:
  """{class id: name} in the v2.2 pbtxt format."""
  with open(path, "w") as f:
    for i, name in sorted(names.items()):
      f.write(f'label {{\n  name: "{name}"\n  label_id: {i}\n'
              '  label_type: PERSON_MOVEMENT\n}\n')


def read_excluded(path: str) -> set:
  """{(video_id, timestamp)} of an excluded-timestamps CSV."""
  with open(path, newline="") as f:
    return {(r[0], int(r[1])) for r in csv.reader(f) if r}


def group_keyframes(rows: dict, class_ids, excluded=(), gt: bool = True,
                    seconds=None) -> list:
  """Keyframes of a read_boxes dict, sorted by (video_id, timestamp): a list
  of (video_id, timestamp, boxes [n, 4] float32, labels [n, K] uint8 over
  `class_ids` (multi-hot; actions outside them are dropped), scores [n]).
  Rows of one box (same coordinates) are one person; GT scores are 1."""
  index = {c: k for k, c in enumerate(class_ids)}
  out = []
  for key in sorted(rows):
    if key in excluded or (seconds is not None and key[1] not in seconds):
      continue
    people = {}
    for box, action, extra in rows[key]:
      labels, score = people.setdefault(box, (np.zeros(len(index), np.uint8),
                                              [1.0 if gt else extra]))
      if action in index:
        labels[index[action]] = 1
    if gt:  # a GT box none of whose actions is evaluated is not a target
      people = {b: v for b, v in people.items() if v[0].any()}
      if not people:
        continue
    boxes = np.asarray(list(people), np.float32).reshape(-1, 4)
    labels = np.stack([v[0] for v in people.values()]) if people else \
        np.zeros((0, len(index)), np.uint8)
    scores = np.asarray([v[1][0] for v in people.values()], np.float32)
    out.append((key[0], key[1], boxes, labels, scores))
  return out


# ---------------------------------------------------------------- the builder
def _find(manual: str, name: str, key: str) -> str:
  for folder in ("annotations", ""):
    path = os.path.join(manual, folder, name)
    if os.path.isfile(path):
      return path
  raise VidjaxError(f"ava: {name} not found in {manual} or its annotations/ "
                    f"folder ({key})")


def _manual_dir(cfg) -> str:
  given = cfg.get("manual_dir", "") or ""
  path = os.path.abspath(os.path.expanduser(given))
  if not given or not os.path.isdir(path):
    raise VidjaxError(f"config.dataset.manual_dir={given!r}: not a folder "
                      "(set it to the AVA folder holding frames/ and "
                      "annotations/)")
  return path


class FrameFolders:
  """Frames of the videos under frames/<video_id>/, read on demand."""

  def __init__(self, frames_dir: str):
    self.frames_dir = frames_dir
    self._counts = {}

  def num_frames(self, video_id: str) -> int:
    if video_id not in self._counts:
      folder = os.path.join(self.frames_dir, video_id)
      self._counts[video_id] = sum(
          1 for n in os.listdir(folder)
          if n.startswith(video_id + "_") and n.endswith(".jpg"))
    return self._counts[video_id]

  def frames(self, video_id: str, indices) -> np.ndarray:
    import cv2
    out = []
    for i in np.asarray(indices).reshape(-1):
      path = frame_path(self.frames_dir, video_id, int(i))
      bgr = cv2.imread(path, cv2.IMREAD_COLOR)
      if bgr is None:
        raise VidjaxError(f"{path}: missing or unreadable frame")
      out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if len({f.shape for f in out}) > 1:
      raise VidjaxError(f"frames of {video_id}: sizes differ within a clip")
    return np.stack(out)


def load(cfg) -> dict:
  """The AVA keyframes of both splits over the user's files.

  Returns {"train", "test": (keyframes list, FrameFolders), "class_ids",
  "class_names", "files": {"train_csv", "test_csv", "label_map",
  "train_excluded", "test_excluded", "detector_csv" (test; "" if absent)}}.
  Keyframes come from group_keyframes (excluded timestamps and seconds
  outside 902..1798 dropped); the test split's boxes are the detector's
  (score >= config.dataset.detection_score_thresh, 0.8 as PySlowFast) when
  config.dataset.eval_boxes == "detector". Missing files: one-line
  VidjaxError naming the file.
  """
  manual = _manual_dir(cfg)
  frames_dir = os.path.join(manual, "frames")
  if not os.path.isdir(frames_dir):
    raise VidjaxError(f"ava: frame folder {frames_dir} not found "
                      "(config.dataset.manual_dir; frames/<video_id>/"
                      "<video_id>_%06d.jpg)")
  label_map = read_label_map(_find(manual, LABEL_MAP, "label map"))
  class_ids = sorted(label_map)
  files = {"label_map": _find(manual, LABEL_MAP, "label map")}
  frames = FrameFolders(frames_dir)
  out = {"class_ids": class_ids,
         "class_names": [label_map[c] for c in class_ids], "files": files}
  eval_boxes = cfg.get("eval_boxes", "gt")
  for split in ("train", "test"):
    files[f"{split}_csv"] = _find(manual, GT_FILES[split], f"{split} boxes")
    files[f"{split}_excluded"] = _find(manual, EXCLUDED_FILES[split],
                                       "excluded timestamps")
    excluded = read_excluded(files[f"{split}_excluded"])
    keyframes = group_keyframes(read_boxes(files[f"{split}_csv"]), class_ids,
                                excluded, seconds=VALID_SECONDS)
    if split == "test" and eval_boxes == "detector":
      files["detector_csv"] = _find(manual, DETECTOR_FILES[split],
                                    "config.dataset.eval_boxes=detector")
      det = read_boxes(files["detector_csv"],
                       cfg.get("detection_score_thresh", 0.8))
      det = {k: det.get(k, []) for k in {(v, t) for v, t, *_ in keyframes}}
      keyframes = group_keyframes(det, class_ids, excluded, gt=False,
                                  seconds=VALID_SECONDS)
    for vid in sorted({k[0] for k in keyframes}):
      folder = os.path.join(frames_dir, vid)
      if not os.path.isdir(folder):
        raise VidjaxError(f"ava: no frame folder {folder} for video {vid} "
                          f"of {GT_FILES[split]}")
    out[split] = (keyframes, frames)
  files.setdefault("detector_csv", "")
  return out
