"""Temporal annotations: the ActivityNet JSON schema and THUMOS14's lists.

ActivityNet (Caba Heilbron et al. 2015; `activity_net.v1-3.min.json`):
{"version": ..., "taxonomy": [...], "database": {video_id: {"duration": s,
"subset": "training" | "validation" | "testing", "url": ..., "annotations":
[{"segment": [start_s, end_s], "label": name}]}}}. Testing videos carry no
annotations; results in the literature are on validation.

THUMOS14 (Jiang et al. 2014, the THUMOS challenge): per-class text files
`<Class>_val.txt` (TH14_Temporal_annotations_validation) and
`<Class>_test.txt` (TH14_Temporal_Annotations_Test), lines
`video_name start_s end_s`, plus `Ambiguous_val.txt` / `Ambiguous_test.txt`
for intervals the evaluator ignores (vidjax/tasks/localization/evaluate.py).
The untrimmed validation set is the training set and the test set the test
set, so THUMOS videos get subset "validation" (train) or "test" (test);
`SPLIT_SUBSETS` maps vidjax's train/test splits to each dataset's subsets.
THUMOS lists give no durations: `duration` is None until the video or its
features are read.

The same schema (and readers) serve the embedded `synthetic_untrimmed`
dataset, whose builder writes its annotations as ActivityNet JSON.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Mapping

from vidjax.errors import VidjaxError

AMBIGUOUS = "Ambiguous"
SPLIT_SUBSETS = {
    "activitynet": {"train": "training", "test": "validation"},
    "synthetic_untrimmed": {"train": "training", "test": "validation"},
    "thumos14": {"train": "validation", "test": "test"},
}
_THUMOS_FILE = re.compile(r"^(.+)_(val|test)\.txt$")


@dataclasses.dataclass(frozen=True)
class VideoAnnotation:
  """One video: id, duration (s, or None), subset, segments
  ((start_s, end_s, label), ...), THUMOS ambiguous ((start_s, end_s), ...)."""

  video_id: str
  duration: float | None
  subset: str
  segments: tuple = ()
  ambiguous: tuple = ()
  url: str = ""


def _segment(raw, where: str) -> tuple:
  try:
    start, end = (float(x) for x in raw)
  except (TypeError, ValueError):
    raise VidjaxError(f"{where}: segment {raw!r} is not [start_s, end_s]"
                      ) from None
  if end < start:
    raise VidjaxError(f"{where}: segment [{start}, {end}] ends before it "
                      "starts")
  return start, end


def read_activitynet(path: str) -> dict:
  """{video_id: VideoAnnotation} of an ActivityNet-schema JSON file."""
  try:
    with open(path) as f:
      data = json.load(f)
  except OSError as e:
    raise VidjaxError(f"{path}: cannot read the annotation file ({e.strerror})"
                      ) from None
  except ValueError as e:
    raise VidjaxError(f"{path}: not JSON ({e})") from None
  if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
    raise VidjaxError(f"{path}: expected ActivityNet JSON with a 'database' "
                      "object ({video_id: {duration, subset, annotations}})")
  out = {}
  for vid, entry in data["database"].items():
    where = f"{os.path.basename(path)}: database[{vid!r}]"
    if "subset" not in entry:
      raise VidjaxError(f"{where} has no 'subset'")
    segs = []
    for n, a in enumerate(entry.get("annotations", ())):
      if "segment" not in a or "label" not in a:
        raise VidjaxError(f"{where}.annotations[{n}] needs segment and label")
      segs.append(_segment(a["segment"], f"{where}.annotations[{n}]") +
                  (str(a["label"]),))
    duration = entry.get("duration")
    out[vid] = VideoAnnotation(
        video_id=vid, duration=None if duration is None else float(duration),
        subset=str(entry["subset"]).lower(), segments=tuple(segs),
        ambiguous=tuple(tuple(_segment(s, where)) for s in
                        entry.get("ambiguous", ())),
        url=str(entry.get("url", "")))
  return out


def write_activitynet(path: str, database: Mapping,
                      version: str = "VERSION 1.3", taxonomy=None) -> None:
  """Writes {video_id: VideoAnnotation} as ActivityNet JSON (THUMOS
  ambiguous intervals, if any, under each video's extra key 'ambiguous')."""
  db = {}
  for vid, v in database.items():
    entry = {"duration": v.duration, "subset": v.subset, "url": v.url,
             "annotations": [{"segment": [float(s), float(e)], "label": c}
                             for s, e, c in v.segments]}
    if v.ambiguous:
      entry["ambiguous"] = [[float(s), float(e)] for s, e in v.ambiguous]
    db[vid] = entry
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump({"version": version, "taxonomy": list(taxonomy or []),
               "database": db}, f)
  os.replace(tmp, path)


def class_names(database: Mapping, subsets=None) -> list:
  """The sorted labels of the segments (of `subsets`, default: all)."""
  return sorted({c for v in database.values()
                 if subsets is None or v.subset in subsets
                 for _, _, c in v.segments})


def subset(database: Mapping, name: str) -> dict:
  """The videos of one subset, in id order."""
  return {k: database[k] for k in sorted(database)
          if database[k].subset == name}


def ground_truth(database: Mapping, subset_name: str | None = None) -> dict:
  """{video: [{"segment", "label"}]} for evaluate.detection_map (every video
  of the subset, also those without segments)."""
  return {k: [{"segment": [s, e], "label": c} for s, e, c in v.segments]
          for k, v in database.items()
          if subset_name is None or v.subset == subset_name}


def ambiguous(database: Mapping, subset_name: str | None = None) -> dict:
  """{video: [[s, e]]} of the THUMOS ambiguous intervals."""
  return {k: [list(a) for a in v.ambiguous] for k, v in database.items()
          if (subset_name is None or v.subset == subset_name) and v.ambiguous}


def find_thumos_lists(root: str) -> dict:
  """{("val" | "test", class): path} of every `<Class>_val|test.txt` under
  root (the official annotation folders may be nested anywhere in it)."""
  found = {}
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for name in sorted(filenames):
      m = _THUMOS_FILE.match(name)
      if m:
        found.setdefault((m.group(2), m.group(1)),
                         os.path.join(dirpath, name))
  return found


def read_thumos14(root: str, durations: Mapping | None = None) -> dict:
  """{video_id: VideoAnnotation} from the THUMOS14 lists under root.

  Videos of `<Class>_val.txt` get subset "validation" (vidjax's train split),
  of `<Class>_test.txt` "test". Class names are the file names' prefixes
  (without Ambiguous); `durations` ({video_id: s}) fills in durations.
  """
  lists = find_thumos_lists(root)
  classes = sorted({c for (_, c) in lists if c != AMBIGUOUS})
  if not classes:
    raise VidjaxError(f"thumos14: no <Class>_val.txt / <Class>_test.txt "
                      f"annotation lists under {root} (config.dataset."
                      "manual_dir)")
  per_video = {}
  for (kind, cls), path in sorted(lists.items()):
    subset_name = "validation" if kind == "val" else "test"
    with open(path) as f:
      for n, line in enumerate(f, 1):
        parts = line.split()
        if not parts:
          continue
        if len(parts) != 3:
          raise VidjaxError(f"{path}:{n}: expected 'video_name start end', "
                            f"got {line.strip()!r}")
        vid = os.path.splitext(parts[0])[0]
        seg = _segment(parts[1:], f"{path}:{n}")
        entry = per_video.setdefault(vid, {"subset": subset_name, "segs": [],
                                           "amb": []})
        if entry["subset"] != subset_name:
          raise VidjaxError(f"{path}:{n}: {vid} is also listed in the "
                            f"{entry['subset']} lists")
        if cls == AMBIGUOUS:
          entry["amb"].append(seg)
        else:
          entry["segs"].append(seg + (cls,))
  durations = durations or {}
  return {vid: VideoAnnotation(
      video_id=vid, duration=durations.get(vid), subset=e["subset"],
      segments=tuple(sorted(e["segs"])), ambiguous=tuple(sorted(e["amb"])))
          for vid, e in sorted(per_video.items())}


def thumos14_class_names(root: str) -> list:
  """The sorted class names of the THUMOS lists under root (no Ambiguous)."""
  return sorted({c for (_, c) in find_thumos_lists(root) if c != AMBIGUOUS})
