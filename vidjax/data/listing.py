"""What a real-video dataset holds: class names and (path, label) per split.

A `Listing` is computed from the user's files (class folders, split lists, a
CSV, or a public dataset's official annotation files) before anything is
decoded; `video_folder` builds a TFDS dataset from it. Paths are relative to
`Listing.root`.

`config.dataset.path` layout: DIR/<class_name>/<video files> (class folders
may hold sub-folders; the top-level folder is the class). Split assignment:
  * `train_list` (+ optional `test_list`): UCF-101-style text files, one
    `ClassName/file.ext [number]` per line (the number, if any, is ignored: the
    class is the first path component). Without `test_list` every video file
    in the class folders that `train_list` does not name is a test video.
  * `csv`: rows `path,label[,split]` (optional header row starting with
    `path`); `label` is a class name (all-integer labels sort numerically);
    `split` is train/training or test/testing/val/valid/validation; paths are
    relative to `path` (or, if `path` is empty, to the CSV's folder).
  * neither: a deterministic split. Within each class, files sorted by their
    relative path, the i-th file (from 0) is a test video iff
    floor((i+1)*f) > floor(i*f), f = `test_fraction` (default 0.2: every 5th
    file, i = 4, 9, ...); so each class gives exactly floor(n*f) test videos.
Classes: with lists or a CSV, the classes they name; otherwise every class
folder, including empty ones (kept so label ids do not depend on which files
decode; reported as having no usable video). Non-video files inside class
folders (a name starting with "." or an extension not in VIDEO_EXTENSIONS)
are not decoded; they are counted and named in the report as "ignored".
Hidden folders and files at the top level of DIR are not looked at.

`folder_class_names` gives the same class names from the lists, the CSV or
the top-level folder names alone (no tree walk, no stat of the videos).
"""
from __future__ import annotations

import csv
import dataclasses
import fractions
import os
import re

from vidjax.errors import VidjaxError

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .m2v .ts .mts .m2ts .flv .f4v "
    ".wmv .asf .ogv .3gp .3g2 .vob .divx .mxf .dv .y4m .nut .ivf .gif .h264 "
    ".264 .hevc .mjpeg .mjpg .rm .rmvb".split())
_TRAIN_WORDS = {"train", "training"}
_TEST_WORDS = {"test", "testing", "val", "valid", "validation"}


@dataclasses.dataclass(frozen=True)
class Listing:
  """Videos to build. `missing`: (path, where it is listed); `ignored`:
  (path, why) for non-video files in class folders."""
  tag: str                  # cache-name prefix, e.g. "ucf101_split1"
  root: str                 # absolute; entry paths are relative to it
  origin: str               # for messages, e.g. "config.dataset.path=/x"
  class_names: tuple
  train: tuple              # ((relative path, label), ...)
  test: tuple
  ignored: tuple = ()
  missing: tuple = ()
  annotations: tuple = ()   # absolute paths of the list/annotation files read


def slug(text: str, limit: int = 40) -> str:
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "data"


def existing_dir(path: str, key: str) -> str:
  if not path:
    raise VidjaxError(f"config.dataset.{key} is empty: set it to the dataset "
                      "folder")
  full = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(full):
    why = "not a folder" if os.path.exists(full) else "no such folder"
    raise VidjaxError(f"config.dataset.{key}={path}: {why}")
  return full


def find_file(path: str, key: str, root: str) -> str:
  """A file named by config key `key`: as given, else relative to `root`."""
  full = os.path.expanduser(path)
  for candidate in (full, os.path.join(root, full)):
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  raise VidjaxError(f"config.dataset.{key}={path}: file not found (looked "
                    f"as given and in {root})")


def is_video_name(name: str) -> bool:
  return (not name.startswith(".")
          and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS)


def class_folder_names(root: str) -> tuple:
  """The class folders of DIR (one scandir; hidden entries skipped)."""
  return tuple(sorted(e.name for e in os.scandir(root)
                      if not e.name.startswith(".") and e.is_dir()))


def scan_class_folders(root: str):
  """({class: [relative video paths]}, [(path, why ignored)]), sorted."""
  classes, ignored = {}, []
  for entry in sorted(os.scandir(root), key=lambda e: e.name):
    if entry.name.startswith(".") or not entry.is_dir():
      continue
    files = classes.setdefault(entry.name, [])
    for dirpath, dirnames, filenames in os.walk(entry.path):
      dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
      for name in sorted(filenames):
        rel = os.path.relpath(os.path.join(dirpath, name), root)
        if is_video_name(name):
          files.append(rel)
        else:
          ext = os.path.splitext(name)[1]
          ignored.append((rel, "hidden file" if name.startswith(".") else
                          f"not a video file extension ({ext or 'none'})"))
  return classes, ignored


def deterministic_split(per_class: dict, class_names, test_fraction: float):
  """(train, test) lists of (path, label): see the module docstring."""
  if not 0.0 < test_fraction < 1.0:
    raise VidjaxError("config.dataset.test_fraction must be in (0, 1), got "
                      f"{test_fraction}")
  f = fractions.Fraction(str(test_fraction))
  train, test = [], []
  for label, name in enumerate(class_names):
    for i, rel in enumerate(sorted(per_class.get(name, ()))):
      is_test = (i + 1) * f // 1 > i * f // 1
      (test if is_test else train).append((rel, label))
  return train, test


class PathResolver:
  """Listed path -> the relative path of an existing file under `root`.

  Exact match first, then a case-insensitive one (UCF-101's lists and folders
  disagree on case, e.g. HandstandPushups / v_HandStandPushups_...)."""

  def __init__(self, root: str):
    self.root, self._lower = root, None

  def __call__(self, rel: str):
    rel = os.path.normpath(rel.strip().replace("\\", "/"))
    if os.path.isfile(os.path.join(self.root, rel)):
      return rel
    if self._lower is None:
      self._lower = {}
      for dirpath, _, filenames in os.walk(self.root):
        for name in filenames:
          full = os.path.relpath(os.path.join(dirpath, name), self.root)
          self._lower.setdefault(full.lower(), full)
    return self._lower.get(rel.lower())


def read_split_list(list_path: str):
  """[(relative path, line number)] of a UCF-style list."""
  out = []
  with open(list_path, encoding="utf-8-sig") as f:
    for n, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      parts = line.rsplit(maxsplit=1)
      rel = parts[0] if len(parts) == 2 and parts[1].isdigit() else line
      out.append((rel, n))
  return out


def _check_not_empty(listing: Listing, hint: str):
  if not listing.train and not listing.test:
    raise VidjaxError(f"{listing.origin}: no video files found")
  for split in ("train", "test"):
    if not getattr(listing, split):
      raise VidjaxError(f"{listing.origin}: the {split} split has no video "
                        f"({hint})")
  return listing


def _folder_sources(cfg):
  """(root, origin, tag, csv path, {split: list path}) of a video_folder
  config; checks the fields without reading any file."""
  csv_file = cfg.get("csv", "")
  train_list, test_list = cfg.get("train_list", ""), cfg.get("test_list", "")
  if csv_file and (train_list or test_list):
    raise VidjaxError("config.dataset.csv and config.dataset.train_list/"
                      "test_list are exclusive: give one")
  csv_path = ""
  if csv_file and not cfg.get("path", ""):
    csv_path = find_file(csv_file, "csv", os.getcwd())
    root = os.path.dirname(csv_path)
  else:
    root = existing_dir(cfg.get("path", ""), "path")
  if csv_file and not csv_path:
    csv_path = find_file(csv_file, "csv", root)
  lists = {}
  if train_list:
    lists["train"] = find_file(train_list, "train_list", root)
    if test_list:
      lists["test"] = find_file(test_list, "test_list", root)
  origin = f"config.dataset.path={cfg.get('path', '') or root}"
  return root, origin, "video_folder_" + slug(os.path.basename(root)), \
      csv_path, lists


def folder_class_names(dataset_config) -> tuple:
  """The class names `folder_listing` gives, from the CSV, the split lists or
  the top-level class folders alone (no tree walk, no stat of the videos)."""
  root, origin, _, csv_path, lists = _folder_sources(dataset_config)
  if csv_path:
    return csv_class_names(read_csv_rows(csv_path))
  if lists:
    return list_class_names(lists.values())
  names = class_folder_names(root)
  if not names:
    raise VidjaxError(f"{origin}: no class folders (expected "
                      "DIR/<class_name>/<video files>)")
  return names


def list_class_names(list_paths) -> tuple:
  """Sorted class names (first path component) of UCF-style split lists."""
  return tuple(sorted({_class_of(rel) for path in list_paths
                       for rel, _ in read_split_list(path)}))


def folder_listing(dataset_config) -> Listing:
  """The Listing of `config.dataset.path` (see the module docstring)."""
  cfg = dataset_config
  root, origin, tag, csv_path, lists = _folder_sources(cfg)
  if csv_path:
    return _csv_listing(csv_path, root, origin, tag,
                        cfg.get("test_fraction", 0.2))
  per_class, ignored = scan_class_folders(root)
  if not lists:
    if not per_class:
      raise VidjaxError(f"{origin}: no class folders (expected "
                        "DIR/<class_name>/<video files>)")
    names = tuple(sorted(per_class))
    train, test = deterministic_split(per_class, names,
                                      cfg.get("test_fraction", 0.2))
    return _check_not_empty(
        Listing(tag, root, origin, names, tuple(train), tuple(test),
                tuple(ignored)),
        "each class needs >= 1/config.dataset.test_fraction videos for a test "
        "video; or give split lists")
  resolve, missing, splits = PathResolver(root), [], {}
  for split, path in lists.items():
    splits[split] = []
    for rel, n in read_split_list(path):
      found = resolve(rel)
      if found is None:
        missing.append((rel, f"listed in {os.path.basename(path)}:{n}, no "
                        "such file"))
      else:
        splits[split].append((found, _class_of(rel)))
  names = list_class_names(lists.values())
  index = {n.lower(): i for i, n in enumerate(names)}
  if "test" not in splits:
    listed = {p for p, _ in splits["train"]}
    splits["test"] = [(p, name) for name in sorted(per_class)
                      if name.lower() in index
                      for p in per_class[name] if p not in listed]
  entries = {s: tuple((p, index[c.lower()]) for p, c in splits[s])
             for s in ("train", "test")}
  ignored = tuple(i for i in ignored if _class_of(i[0]).lower() in index)
  return _check_not_empty(
      Listing(tag + "_lists", root, origin, tuple(names), entries["train"],
              entries["test"], ignored, tuple(missing),
              tuple(lists.values())),
      "check the split lists")


def _class_of(rel: str) -> str:
  parts = os.path.normpath(rel.replace("\\", "/")).split(os.sep)
  if len(parts) < 2:
    raise VidjaxError(f"split list entry {rel!r}: expected ClassName/file")
  return parts[0]


def read_csv_rows(csv_path: str) -> list:
  """[(path, label, split, line number)] of a `path,label[,split]` CSV."""
  rows = []
  with open(csv_path, newline="", encoding="utf-8-sig") as f:
    for n, row in enumerate(csv.reader(f), 1):
      row = [c.strip() for c in row]
      if not row or not any(row) or (n == 1 and row[0].lower() == "path"):
        continue
      if len(row) < 2:
        raise VidjaxError(f"{csv_path}:{n}: expected path,label[,split], got "
                          f"{','.join(row)!r}")
      split = row[2].lower() if len(row) > 2 and row[2] else ""
      if split and split not in _TRAIN_WORDS | _TEST_WORDS:
        raise VidjaxError(f"{csv_path}:{n}: split {row[2]!r} is not train/"
                          "test/val")
      rows.append((row[0], row[1], split, n))
  return rows


def csv_class_names(rows) -> tuple:
  """The CSV's labels, sorted (numerically if all are integers)."""
  labels = {r[1] for r in rows}
  numeric = all(re.fullmatch(r"-?\d+", x) for x in labels)
  return tuple(sorted(labels, key=int if numeric else str))


def _csv_listing(csv_path, root, origin, tag, test_fraction) -> Listing:
  rows, missing = read_csv_rows(csv_path), []
  names = csv_class_names(rows)
  index = {n: i for i, n in enumerate(names)}
  resolve, kept = PathResolver(root), []
  for rel, label, split, n in rows:
    path = os.path.relpath(rel, root) if os.path.isabs(rel) else rel
    found = resolve(path)
    if found is None:
      missing.append((path, f"listed in {os.path.basename(csv_path)}:{n}, no "
                      "such file"))
    else:
      kept.append((found, index[label], split))
  if any(s for _, _, s in kept) and not all(s for _, _, s in kept):
    raise VidjaxError(f"{csv_path}: some rows have a split column and some "
                      "do not; give it on every row or on none")
  if kept and kept[0][2]:
    train = [(p, y) for p, y, s in kept if s in _TRAIN_WORDS]
    test = [(p, y) for p, y, s in kept if s in _TEST_WORDS]
  else:
    per_class = {}
    for p, y, _ in kept:
      per_class.setdefault(names[y], []).append(p)
    train, test = deterministic_split(per_class, names, test_fraction)
  return _check_not_empty(
      Listing(tag + "_csv_" + slug(os.path.basename(csv_path), 20), root,
              origin, names, tuple(train), tuple(test), (), tuple(missing),
              (csv_path,)),
      f"check {csv_path}")
