"""ActivityNet-1.3 and THUMOS14 over the user's own files (nothing downloaded),
as `localization.data.Sequence`s of pre-extracted features or of frames.

`config.dataset.name`:
* `activitynet`: `activity_net.v1-3.min.json` (in manual_dir, its
  `annotations/` folder, or `config.dataset.annotation_file`); train split =
  subset "training", test split = "validation" (testing has no labels).
* `thumos14`: the per-class lists `<Class>_val.txt` / `<Class>_test.txt` and
  `Ambiguous_*.txt` anywhere under manual_dir (annotations.read_thumos14);
  validation videos are the train split, test videos the test split.

Inputs, either:
* features (`config.dataset.features_dir`): one `<video>.npy` [N, D] per
  video anywhere under the folder. Its timing comes from the sidecar
  `<video>.json` that tools/extract_features.py writes (fps, span, stride),
  else from `feature_fps`, `feature_span`, `feature_stride`, `feature_offset`
  (e.g. the I3D THUMOS release: 30 fps, 16-frame windows, stride 4);
* videos (manual_dir): each video is decoded once into a `video_folder`
  frame-store build (vidjax/data/video_folder.py: resize, fps, JPEG, cache,
  report), one step per stored frame.

Files are matched to annotation ids by file stem: `<id>` or `v_<id>` (the
ActivityNet releases name YouTube id X `v_X.mp4`). Listed videos without a
file are counted in `missing`; none found is a one-line VidjaxError.
"""
from __future__ import annotations

import json
import os

import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks.localization import annotations as ann
from vidjax.tasks.localization.data import from_annotation
from vidjax.tasks.localization.timing import FeatureTiming

NAMES = ("activitynet", "thumos14")
ACTIVITYNET_FILE = "activity_net.v1-3.min.json"


def _manual_dir(cfg) -> str:
  path = os.path.abspath(os.path.expanduser(cfg.get("manual_dir", "") or ""))
  if not cfg.get("manual_dir") or not os.path.isdir(path):
    raise VidjaxError(f"config.dataset.manual_dir={cfg.get('manual_dir')!r}: "
                      "not a folder (set it to the dataset's folder)")
  return path


def read_database(cfg) -> dict:
  """{video_id: VideoAnnotation} of config.dataset.name's annotations."""
  name = cfg.name
  if name not in NAMES:
    raise VidjaxError(f"config.dataset.name={name!r}: localization datasets "
                      f"over your files are {', '.join(NAMES)}")
  if name == "thumos14":
    return ann.read_thumos14(_manual_dir(cfg))
  given = cfg.get("annotation_file", "")
  if given:
    path = os.path.expanduser(given)
    if not os.path.isfile(path):
      raise VidjaxError(f"config.dataset.annotation_file={given}: no such "
                        "file")
    return ann.read_activitynet(path)
  manual = _manual_dir(cfg)
  for folder in ("", "annotations"):
    path = os.path.join(manual, folder, ACTIVITYNET_FILE)
    if os.path.isfile(path):
      return ann.read_activitynet(path)
  raise VidjaxError(f"activitynet: expected {ACTIVITYNET_FILE} in {manual} "
                    "or its annotations/ folder (config.dataset.manual_dir), "
                    "or set config.dataset.annotation_file")


def split_database(cfg, database: dict, split: str) -> dict:
  return ann.subset(database, ann.SPLIT_SUBSETS[cfg.name][split])


def find_by_stem(root: str, ids, exts) -> dict:
  """{id: path} of the files under root named `<id>.<ext>` or `v_<id>.<ext>`
  (ext in exts, lower case, no dot; None = any)."""
  wanted = set(ids)
  found = {}
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for name in sorted(filenames):
      stem, ext = os.path.splitext(name)
      if name.startswith(".") or (exts is not None and
                                  ext.lower().lstrip(".") not in exts):
        continue
      for key in (stem, stem[2:] if stem.startswith("v_") else None):
        if key in wanted and key not in found:
          found[key] = os.path.join(dirpath, name)
  return found


class FeatureSequences:
  """One split's videos as Sequences of pre-extracted window features."""

  def __init__(self, cfg, database: dict, split: str, class_names):
    folder = os.path.expanduser(cfg.get("features_dir", "") or "")
    if not folder or not os.path.isdir(folder):
      raise VidjaxError(f"config.dataset.features_dir={folder!r}: not a "
                        "folder of <video>.npy feature files")
    self.database = split_database(cfg, database, split)
    paths = find_by_stem(folder, self.database, {"npy"})
    self.missing = sorted(set(self.database) - set(paths))
    self.video_ids = sorted(paths)
    if not self.video_ids:
      raise VidjaxError(f"{cfg.name}: none of the {len(self.database)} {split}"
                        f" videos has a <video>.npy under {folder} "
                        "(config.dataset.features_dir)")
    self.paths = paths
    self.class_index = {c: i for i, c in enumerate(class_names)}
    self.default = dict(fps=cfg.get("feature_fps", 0.0),
                        span=cfg.get("feature_span", 0),
                        stride=cfg.get("feature_stride", 0),
                        offset=cfg.get("feature_offset", 0))

  def timing(self, npy_path: str) -> FeatureTiming:
    side = os.path.splitext(npy_path)[0] + ".json"
    if os.path.isfile(side):
      with open(side) as f:
        return FeatureTiming.from_feature_meta(json.load(f), side)
    d = self.default
    if not (d["fps"] and d["span"] and d["stride"]):
      raise VidjaxError(
          f"{npy_path}: no sidecar JSON (tools/extract_features.py) and "
          "config.dataset.feature_fps/feature_span/feature_stride are unset: "
          "the features' timing is unknown")
    return FeatureTiming(float(d["fps"]), int(d["span"]), int(d["stride"]),
                         int(d["offset"] or 0))

  def __len__(self) -> int:
    return len(self.video_ids)

  def __getitem__(self, i):
    vid = self.video_ids[int(i)]
    path = self.paths[vid]
    feats = np.load(path, mmap_mode="r")
    if feats.ndim != 2:
      raise VidjaxError(f"{path}: features must be [steps, dim], got shape "
                        f"{feats.shape}")
    return from_annotation(vid, feats, self.timing(path), self.database[vid],
                           self.class_index)


def video_listing(cfg, database: dict, class_names):
  """The `video_folder` Listing of the annotated videos under manual_dir
  (label 0 for all: the segments come from the annotations)."""
  from vidjax.data.listing import Listing
  root = _manual_dir(cfg)
  splits = {s: split_database(cfg, database, s) for s in ("train", "test")}
  ids = [v for d in splits.values() for v in d]
  paths = find_by_stem(root, ids, {"mp4", "mkv", "webm", "avi", "mov", "m4v",
                                   "mpg", "mpeg", "flv"})
  rows = {s: tuple((os.path.relpath(paths[v], root), 0) for v in d
                   if v in paths) for s, d in splits.items()}
  missing = tuple((v, f"annotated in the {s} split, no video file")
                  for s, d in splits.items() for v in d if v not in paths)
  for s in rows:
    if not rows[s]:
      raise VidjaxError(f"{cfg.name}: none of the {len(splits[s])} {s} videos"
                        f" of the annotations is under {root} (config."
                        "dataset.manual_dir)")
  return Listing(f"{cfg.name}_untrimmed", root, f"config.dataset.manual_dir="
                 f"{root} ({cfg.name})", tuple(class_names), rows["train"],
                 rows["test"], (), missing)


class VideoSequences:
  """A built split's videos as Sequences of frames (one step per frame)."""

  def __init__(self, source, build_dir: str, split: str, database: dict,
               class_names):
    import tensorflow_datasets as tfds
    records = tfds.builder_from_directory(build_dir).as_data_source(split)
    self.source = source
    rec = np.asarray(source._records)  # the kept rows of the split
    self.fps = [float(records[int(r)]["fps"]) for r in rec]
    self.video_ids = [self._id(p, database) for p in source.paths]
    self.database = database
    self.class_index = {c: i for i, c in enumerate(class_names)}

  @staticmethod
  def _id(path: str, database: dict) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if stem in database else stem[2:]

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i):
    i = int(i)
    vid = self.video_ids[i]
    video = self.source[i]["video"]
    return from_annotation(vid, video, FeatureTiming.frames(self.fps[i]),
                           self.database[vid], self.class_index)


def load(cfg, verbose: bool = False) -> dict:
  """{"train", "test": sequences, "class_names", "database", "ambiguous",
  "missing"} of an `activitynet` / `thumos14` config: features when
  config.dataset.features_dir is set, else videos under manual_dir."""
  database = read_database(cfg)
  train_subset = ann.SPLIT_SUBSETS[cfg.name]["train"]
  names = ann.class_names(database, {train_subset}) or \
      ann.class_names(database)
  test_subset = ann.SPLIT_SUBSETS[cfg.name]["test"]
  out = {"class_names": names, "database": database,
         "ambiguous": ann.ambiguous(database, test_subset)}
  if cfg.get("features_dir"):
    out["train"] = FeatureSequences(cfg, database, "train", names)
    out["test"] = FeatureSequences(cfg, database, "test", names)
    out["missing"] = out["train"].missing + out["test"].missing
    return out
  from vidjax.data import video_folder
  listing = video_listing(cfg, database, names)
  train, test, report = video_folder.open_listing(
      listing, data_dir=cfg.get("data_dir") or None,
      resize_short=int(cfg.get("resize_short", 128)),
      fps=float(cfg.get("fps", 0.0)), min_frames=1,
      workers=int(cfg.get("build_workers", 0)), verbose=verbose)
  build_dir = os.path.dirname(report.where)
  for split, src in (("train", train), ("test", test)):
    out[split] = VideoSequences(src, build_dir, split,
                                split_database(cfg, database, split), names)
  out["missing"] = [m[0] for m in listing.missing]
  out["report"] = report
  return out
