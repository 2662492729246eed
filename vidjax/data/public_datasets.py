"""Public video datasets over the user's own copy (nothing is downloaded).

`config.dataset.name` = one of the names below, `config.dataset.manual_dir` =
the folder holding the extracted official archives, `config.dataset.split` =
the official split number (UCF-101, HMDB-51: 1-3; the others have one). Each
function reads the official annotation files into a `Listing` that the
`video_folder` builder decodes (cache name `<name>_split<N>_<hash>`). A missing
file is a one-line VidjaxError naming the file expected and where.

* ucf101 (Soomro, Zamir & Shah, 2012, "UCF101: A Dataset of 101 Human Actions
  Classes From Videos in The Wild"): `UCF-101/<Class>/v_<Class>_gXX_cYY.avi`
  (UCF101.rar) + `ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt`
  (UCF101TrainTestSplits-RecognitionTask.zip). classInd lines `1 ApplyEyeMakeup`
  give the label ids (1-based in the file, 0-based here); trainlist lines
  `Class/v_....avi <id>`, testlist lines `Class/v_....avi`. File names are
  matched case-insensitively (the lists and folders disagree on case).
* hmdb51 (Kuehne et al., 2011, "HMDB: A Large Video Database for Human Motion
  Recognition"): `hmdb51_org/<class>/<video>.avi` (each class's .rar extracted
  into its folder; `hmdb51/` or class folders directly in manual_dir also work)
  + `testTrainMulti_7030_splits/<class>_test_split<N>.txt` with lines
  `<video>.avi <1|2|0>`: 1 = train, 2 = test, 0 = unused. Classes: sorted.
* kinetics400 (Kay et al., 2017, "The Kinetics Human Action Video Dataset"):
  `kinetics400/{train,validate}.csv` (also accepted in `annotations/` or
  manual_dir itself) with header `label,youtube_id,time_start,time_end,split`
  (extra columns such as `is_cc` are ignored); videos named
  `<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>` anywhere under
  manual_dir (per-split folders such as `train/`, `val/`, with or without
  class sub-folders). train.csv is the train split, validate.csv the test split
  (results in the literature are on validation). Classes: the sorted labels of
  train.csv. Videos no longer on YouTube are reported as missing.
* something_something_v2 (Goyal et al., 2017, "The "something something" video
  database for learning and evaluating visual common sense"):
  `20bn-something-something-v2/<id>.webm` + `something-something-v2-{train,
  validation,labels}.json` (in `labels/` or manual_dir). labels.json maps a
  template to an id string; an entry's class is its `template` with the
  brackets removed ("Putting [something] on a surface" -> "Putting something
  on a surface"). train.json is the train split, validation.json the test one.

`CLASS_NAMES[name](cfg)` gives a dataset's class names (equal to its
Listing's) from the class annotation file alone: classInd.txt, the HMDB split
file names, train.csv's labels, labels.json; no video is looked at.
"""
from __future__ import annotations

import csv
import glob
import json
import os

from vidjax.data.listing import Listing, PathResolver, existing_dir
from vidjax.errors import VidjaxError

def _expect(path: str, name: str, what: str) -> str:
  if not os.path.exists(path):
    raise VidjaxError(f"{name}: expected {what} at {path} (config.dataset."
                      "manual_dir)")
  return path


def _split_number(cfg, name: str, allowed=(1, 2, 3)) -> int:
  split = int(cfg.get("split", 1))
  if split not in allowed:
    raise VidjaxError(f"config.dataset.split={split}: {name} has official "
                      f"split(s) {', '.join(map(str, allowed))}")
  return split


def _first_dir(name: str, manual: str, candidates, what: str) -> str:
  for c in candidates:
    if os.path.isdir(os.path.join(manual, c)):
      return os.path.join(manual, c)
  return _expect(os.path.join(manual, candidates[0]), name, what)


def _first_file(name: str, manual: str, filename: str, folders) -> str:
  for folder in folders:
    path = os.path.join(manual, folder, filename)
    if os.path.isfile(path):
      return path
  return _expect(os.path.join(manual, folders[0], filename), name,
                 f"the official annotation file {filename}")


def _listing(name, split, root, manual, class_names, rows,
             annotations=()) -> Listing:
  """rows: (split, listed relative path, label, where listed)."""
  resolve = PathResolver(root) if not callable(root) else root
  out, missing = {"train": [], "test": []}, []
  for s, rel, label, where in rows:
    found = resolve(rel)
    if found is None:
      missing.append((rel, f"listed in {where}, no such file"))
    else:
      out[s].append((found, label))
  root_dir = resolve.root
  for s in out:
    if not out[s]:
      raise VidjaxError(
          f"{name}: none of the {s} videos listed in the annotations is under "
          f"{root_dir} (config.dataset.manual_dir={manual})")
  return Listing(f"{name}_split{split}", root_dir,
                 f"config.dataset.manual_dir={manual} ({name})",
                 tuple(class_names), tuple(out["train"]), tuple(out["test"]),
                 (), tuple(missing), tuple(annotations))


def _ucf_class_ids(cfg) -> tuple:
  """(classInd.txt path, {class: 0-based id}, names in id order)."""
  manual = existing_dir(cfg.get("manual_dir", ""), "manual_dir")
  path = _expect(os.path.join(manual, "ucfTrainTestlist", "classInd.txt"),
                 "ucf101", "UCF101TrainTestSplits-RecognitionTask.zip's "
                 "classInd.txt")
  ids = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        num, cls = line.split()
        ids[cls] = int(num) - 1
  names = [c for c, _ in sorted(ids.items(), key=lambda kv: kv[1])]
  if [ids[c] for c in names] != list(range(len(names))):
    raise VidjaxError(f"{path}: ids are not 1..{len(names)}")
  return path, ids, tuple(names)


def ucf101_class_names(cfg) -> tuple:
  return _ucf_class_ids(cfg)[2]


def ucf101(cfg) -> Listing:
  manual = existing_dir(cfg.get("manual_dir", ""), "manual_dir")
  split = _split_number(cfg, "ucf101")
  lists = os.path.join(manual, "ucfTrainTestlist")
  files = {k: _expect(os.path.join(lists, f), "ucf101",
                      "UCF101TrainTestSplits-RecognitionTask.zip's " + f)
           for k, f in (("classes", "classInd.txt"),
                        ("train", f"trainlist0{split}.txt"),
                        ("test", f"testlist0{split}.txt"))}
  root = _first_dir("ucf101", manual, ("UCF-101", "UCF101"),
                    "the video folder of UCF101.rar (UCF-101/<Class>/*.avi)")
  _, ids, names = _ucf_class_ids(cfg)
  lower = {c.lower(): i for c, i in ids.items()}
  rows = []
  for s in ("train", "test"):
    base = os.path.basename(files[s])
    with open(files[s]) as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        rel = line.split()[0]
        cls = rel.replace("\\", "/").split("/")[0].lower()
        if cls not in lower:
          raise VidjaxError(f"{files[s]}:{n}: class of {rel!r} is not in "
                            "classInd.txt")
        rows.append((s, rel, lower[cls], f"{base}:{n}"))
  return _listing("ucf101", split, root, manual, names, rows,
                  files.values())


def _hmdb_split_files(cfg) -> tuple:
  """(manual_dir, split, [split files], class names) of hmdb51."""
  manual = existing_dir(cfg.get("manual_dir", ""), "manual_dir")
  split = _split_number(cfg, "hmdb51")
  split_dir = _expect(os.path.join(manual, "testTrainMulti_7030_splits"),
                      "hmdb51", "the folder of test_train_splits.rar")
  pattern = os.path.join(split_dir, f"*_test_split{split}.txt")
  split_files = sorted(glob.glob(pattern))
  if not split_files:
    raise VidjaxError(f"hmdb51: expected <class>_test_split{split}.txt files "
                      f"in {split_dir} (config.dataset.manual_dir)")
  names = tuple(os.path.basename(p)[:-len(f"_test_split{split}.txt")]
                for p in split_files)
  return manual, split, split_files, names


def hmdb51_class_names(cfg) -> tuple:
  return _hmdb_split_files(cfg)[3]


def hmdb51(cfg) -> Listing:
  manual, split, split_files, names = _hmdb_split_files(cfg)
  if os.path.isdir(os.path.join(manual, names[0])):
    root = manual
  else:
    root = _first_dir("hmdb51", manual, ("hmdb51_org", "hmdb51"),
                      "the videos of hmdb51_org.rar (hmdb51_org/<class>/*.avi)")
  rows = []
  for label, (cls, path) in enumerate(zip(names, split_files)):
    with open(path) as f:
      for n, line in enumerate(f, 1):
        parts = line.split()
        if not parts:
          continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
          raise VidjaxError(f"{path}:{n}: expected '<video>.avi <0|1|2>'")
        if parts[1] != "0":
          rows.append(("train" if parts[1] == "1" else "test",
                       f"{cls}/{parts[0]}", label,
                       f"{os.path.basename(path)}:{n}"))
  return _listing("hmdb51", split, root, manual, names, rows, split_files)


class _StemResolver:
  """Kinetics file stem -> relative path anywhere under root; prefers a path
  inside a folder named after the split."""

  SPLIT_DIRS = {"train": {"train", "training"},
                "test": {"val", "valid", "validate", "validation"}}

  def __init__(self, root: str):
    self.root, self.by_stem = root, {}
    for dirpath, dirnames, filenames in os.walk(root):
      dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
      for name in sorted(filenames):
        stem, ext = os.path.splitext(name)
        if ext and not name.startswith("."):
          rel = os.path.relpath(os.path.join(dirpath, name), root)
          self.by_stem.setdefault(stem, []).append(rel)

  def __call__(self, key):
    split, stem = key.split("|", 1)
    found = self.by_stem.get(stem)
    if not found:
      return None
    for rel in found:
      if set(rel.split(os.sep)[:-1]) & self.SPLIT_DIRS[split]:
        return rel
    return found[0]


_K400_FOLDERS = ("kinetics400", "annotations", "")


def _k400_table(path: str) -> list:
  """[(line number, row dict)] of a Kinetics CSV, its header checked."""
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    need = {"label", "youtube_id", "time_start", "time_end"}
    if not need <= set(reader.fieldnames or ()):
      raise VidjaxError(f"{path}: expected the header label,youtube_id,"
                        f"time_start,time_end,split; got {reader.fieldnames}")
    return list(enumerate(reader, 2))


def kinetics400_class_names(cfg) -> tuple:
  """The sorted labels of train.csv (only its label column is used)."""
  manual = existing_dir(cfg.get("manual_dir", ""), "manual_dir")
  path = _first_file("kinetics400", manual, "train.csv", _K400_FOLDERS)
  return tuple(sorted({r["label"] for _, r in _k400_table(path)}))


def kinetics400(cfg) -> Listing:
  manual = existing_dir(cfg.get("manual_dir", ""), "manual_dir")
  split = _split_number(cfg, "kinetics400", (1,))
  csvs = {s: _first_file("kinetics400", manual, f, _K400_FOLDERS)
          for s, f in (("train", "train.csv"), ("test", "validate.csv"))}
  tables = {s: _k400_table(path) for s, path in csvs.items()}
  names = sorted({r["label"] for _, r in tables["train"]})
  index = {c: i for i, c in enumerate(names)}
  rows = []
  for s, table in tables.items():
    for n, r in table:
      if r["label"] not in index:
        raise VidjaxError(f"{csvs[s]}:{n}: label {r['label']!r} is not a "
                          "label of train.csv")
      stem = (f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_"
              f"{int(float(r['time_end'])):06d}")
      rows.append((s, f"{s}|{stem}", index[r["label"]],
                   f"{os.path.basename(csvs[s])}:{n}"))
  listing = _listing("kinetics400", split, _StemResolver(manual), manual,
                     names, rows)
  missing = tuple((rel.split("|", 1)[1] + ".mp4", why)
                  for rel, why in listing.missing)
  return Listing(listing.tag, listing.root, listing.origin,
                 listing.class_names, listing.train, listing.test, (), missing,
                 tuple(csvs.values()))


_SSV2 = "something_something_v2"


def _ssv2_file(manual: str, key: str) -> str:
  return _first_file(_SSV2, manual, f"something-something-v2-{key}.json",
                     ("labels", ""))


def _ssv2_class_ids(manual: str) -> tuple:
  """({template: id}, names in id order) of labels.json."""
  path = _ssv2_file(manual, "labels")
  with open(path) as f:
    ids = {t: int(i) for t, i in json.load(f).items()}
  names = [t for t, _ in sorted(ids.items(), key=lambda kv: kv[1])]
  if [ids[t] for t in names] != list(range(len(names))):
    raise VidjaxError(f"{path}: ids are not 0..{len(names) - 1}")
  return ids, tuple(names)


def something_something_v2_class_names(cfg) -> tuple:
  return _ssv2_class_ids(existing_dir(cfg.get("manual_dir", ""),
                                      "manual_dir"))[1]


def something_something_v2(cfg) -> Listing:
  name = _SSV2
  manual = existing_dir(cfg.get("manual_dir", ""), "manual_dir")
  split = _split_number(cfg, name, (1,))
  root = _first_dir(name, manual, ("20bn-something-something-v2",),
                    "the video folder (20bn-something-something-v2/<id>.webm)")
  files = {k: _ssv2_file(manual, k) for k in ("labels", "train", "validation")}
  ids, names = _ssv2_class_ids(manual)
  rows = []
  for s, key in (("train", "train"), ("test", "validation")):
    with open(files[key]) as f:
      entries = json.load(f)
    base = os.path.basename(files[key])
    for e in entries:
      template = e["template"].replace("[", "").replace("]", "")
      if template not in ids:
        raise VidjaxError(f"{files[key]}: video {e['id']}: template "
                          f"{template!r} is not in {files['labels']}")
      rows.append((s, f"{e['id']}.webm", ids[template], f"{base} id {e['id']}"))
  return _listing(name, split, root, manual, names, rows, files.values())


LISTINGS = {"ucf101": ucf101, "hmdb51": hmdb51, "kinetics400": kinetics400,
            "something_something_v2": something_something_v2}
CLASS_NAMES = {"ucf101": ucf101_class_names, "hmdb51": hmdb51_class_names,
               "kinetics400": kinetics400_class_names,
               "something_something_v2": something_something_v2_class_names}
