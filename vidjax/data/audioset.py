"""AudioSet and VGGSound over the user's downloaded clips (nothing downloaded).

Issue #22 (audio-visual data). Both lists name YouTube segments; the user
downloads what is still online (availability decays: MBT's README, scenic
`projects/mbt`), and the build stores what it finds, reporting the rest.

* AudioSet (Gemmeke et al., ICASSP 2017): `balanced_train_segments.csv`
  (or `unbalanced_train_segments.csv`) and `eval_segments.csv`: three
  comment lines starting with `#`, then rows `YTID, start_seconds,
  end_seconds, "positive_labels"` (a space after each comma; the labels a
  quoted, comma-separated list of ontology MIDs), and
  `class_labels_indices.csv` (`index,mid,display_name`, header, quoted
  names with commas): 527 classes, multi-label.
* VGGSound (Chen et al., ICASSP 2020): `vggsound.csv`, no header, rows
  `youtube_id,start_seconds,label,split` (split train / test; labels quoted
  where they hold a comma): 309 classes (the sorted label strings),
  single-label; clips are 10 s from start_seconds.

Clips: config.dataset.manual_dir is searched recursively for video files
(listing.VIDEO_EXTENSIONS) named after the segment, in any of the common
layouts (YouTube ids are 11 characters of [A-Za-z0-9_-]):
  `<YTID>_<start>.<ext>` / `<YTID>_<start>_<end>.<ext>` (start/end as
  integers, zero-padded or not, or decimals: `abc_30.mp4`, `abc_000030.mp4`,
  `abc_30.000_40.000.mp4`): the file IS the segment, read from its start;
  `<YTID>.<ext>` or `Y<YTID>.<ext>` (AST's and the balanced-set downloaders'
  naming): taken as trimmed too, unless config.dataset.untrimmed is True,
  then the segment [start, end) is cut from the whole video.
A listed segment with no file is "missing"; an undecodable file is
"skipped" (decode.BadVideo's one-line reason); a video with no usable audio
keeps silence and is named under "no usable audio", or stops the build
(config.dataset.audio.missing="refuse", as vidjax/audio/decode.py). All
are counted and named in the build report (build_report.Report, printed and
saved as `vidjax_report.txt` beside the build); nothing crashes the build.
The build itself (TFDS builder `av_clips`) is vidjax/data/av_clips.py.

Each example stores a fixed shape (the segment's first `clip_seconds`):
  video uint8 [round(clip_seconds x fps), S, S, 3] frames at config.dataset.fps
    (0: 4 fps) through vidjax/data/decode.py (short side S =
    config.dataset.resize_short, then the centre S x S), the last frame
    repeated past the video's end (`num_frames`: how many are real);
  audio int16 [clip_seconds x sample_rate]: vidjax/audio/decode.py's mono
    track at config.dataset.audio.sample_rate (16 kHz), the window from the
    first stored frame's time (timestamp-aligned), zero-padded;
  labels uint8 [K] multi-hot; label int32 (the first positive class);
  clip_id, start, num_frames, has_audio.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re

from vidjax.data import listing as listing_lib
from vidjax.errors import VidjaxError

DATASETS = ("audioset", "vggsound")
DEFAULT_FPS = 4.0
CLIP_SECONDS = 10.0
_STEM = re.compile(r"^Y?(?P<id>[A-Za-z0-9_-]{11})"
                   r"(?:_(?P<start>\d+(?:\.\d+)?)(?:_\d+(?:\.\d+)?)?)?$")


@dataclasses.dataclass(frozen=True)
class Segment:
  ytid: str
  start: float
  end: float
  labels: tuple        # class ids
  split: str           # train | test
  where: str           # "file.csv:line" for the report

  @property
  def clip_id(self) -> str:
    return f"{self.ytid}_{self.start:g}"


def _rows(path: str):
  """(line number, fields) of a CSV, `#` comment lines and blanks skipped,
  spaces after commas ignored (AudioSet's `YTID, start, ...`)."""
  with open(path, newline="", encoding="utf-8") as f:
    lines = [(n, line) for n, line in enumerate(f, 1)
             if line.strip() and not line.lstrip().startswith("#")]
  for (n, _), fields in zip(lines, csv.reader(
      [line for _, line in lines], skipinitialspace=True)):
    yield n, [x.strip() for x in fields]


def read_class_labels(path: str) -> tuple[list, list]:
  """class_labels_indices.csv -> (mids, display names), index order."""
  out = {}
  for n, row in _rows(path):
    if n == 1 and row[:1] == ["index"]:
      continue
    if len(row) < 3 or not row[0].isdigit():
      raise VidjaxError(f"{path}:{n}: expected index,mid,display_name")
    out[int(row[0])] = (row[1], row[2])
  if sorted(out) != list(range(len(out))):
    raise VidjaxError(f"{path}: indices are not 0..{len(out) - 1}")
  return [out[i][0] for i in range(len(out))], [out[i][1] for i in
                                                 range(len(out))]


def read_audioset_segments(path: str, split: str, mid_index: dict):
  """-> (segments, bad rows [(where, why)]) of an AudioSet segments CSV."""
  segs, bad, name = [], [], os.path.basename(path)
  for n, row in _rows(path):
    where = f"{name}:{n}"
    try:
      ytid, start, end, labels = row[0], float(row[1]), float(row[2]), row[3]
    except (IndexError, ValueError):
      bad.append((where, f"not YTID, start, end, labels: {row[:4]}"))
      continue
    mids = [m.strip() for m in labels.split(",") if m.strip()]
    unknown = [m for m in mids if m not in mid_index]
    if unknown or not mids:
      bad.append((where, f"unknown label(s) {unknown}" if unknown else
                  "no label"))
      continue
    segs.append(Segment(ytid, start, end, tuple(sorted(
        {mid_index[m] for m in mids})), split, where))
  return segs, bad


def read_vggsound(path: str):
  """-> (class names sorted, segments, bad rows) of vggsound.csv."""
  rows, bad, name = [], [], os.path.basename(path)
  for n, row in _rows(path):
    where = f"{name}:{n}"
    split = row[3].lower() if len(row) >= 4 else ""
    if split not in ("train", "test"):
      if n == 1 and len(row) >= 2 and not row[1].replace(".", "").isdigit():
        continue  # a header row
      bad.append((where, f"not youtube_id,start,label,train|test: {row[:4]}"))
      continue
    try:
      rows.append((row[0], float(row[1]), row[2], split, where))
    except ValueError:
      bad.append((where, f"start is not a number: {row[1]!r}"))
  names = sorted({r[2] for r in rows})
  index = {c: i for i, c in enumerate(names)}
  segs = [Segment(y, s, s + CLIP_SECONDS, (index[c],), sp, w)
          for y, s, c, sp, w in rows]
  return names, segs, bad


def index_clips(root: str) -> dict:
  """{(ytid, start in ms or None): path} of the video files under root."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for name in sorted(filenames):
      if not listing_lib.is_video_name(name):
        continue
      m = _STEM.match(os.path.splitext(name)[0])
      if m is None:
        continue
      start = m.group("start")
      key = (m.group("id"), None if start is None else
             int(round(float(start) * 1000)))
      out.setdefault(key, os.path.join(dirpath, name))
  return out


@dataclasses.dataclass
class Listed:
  """What the CSVs list and which files were found."""
  name: str
  class_names: list
  mids: list
  found: dict          # split -> [(Segment, path, trimmed)]
  missing: list        # (clip id, why)
  bad_rows: list       # (where, why)
  files: list          # the annotation files read


def _file(d, key: str, default: str, root: str) -> str:
  value = d.get(key, "") or default
  return listing_lib.find_file(value, key, root)


def list_segments(d) -> Listed:
  """Reads config.dataset's CSVs and matches them to the clip files."""
  name = d.get("name", "")
  if name not in DATASETS:
    raise VidjaxError(f"config.dataset.name={name!r}: use one of {DATASETS}")
  root = listing_lib.existing_dir(d.get("manual_dir", ""), "manual_dir")
  if name == "audioset":
    files = [_file(d, "class_labels", "class_labels_indices.csv", root),
             _file(d, "csv", "balanced_train_segments.csv", root),
             _file(d, "test_csv", "eval_segments.csv", root)]
    mids, names = read_class_labels(files[0])
    index = {m: i for i, m in enumerate(mids)}
    segs, bad = read_audioset_segments(files[1], "train", index)
    more, bad2 = read_audioset_segments(files[2], "test", index)
    segs, bad = segs + more, bad + bad2
  else:
    files = [_file(d, "csv", "vggsound.csv", root)]
    names, segs, bad = read_vggsound(files[0])
    mids = []
  clips, untrimmed = index_clips(root), bool(d.get("untrimmed", False))
  found, missing = {"train": [], "test": []}, []
  for s in segs:
    path = clips.get((s.ytid, int(round(s.start * 1000))))
    trimmed = True
    if path is None:
      path, trimmed = clips.get((s.ytid, None)), not untrimmed
    if path is None:
      missing.append((s.clip_id, f"listed in {s.where}, no file under "
                      f"{root}"))
    else:
      found[s.split].append((s, path, trimmed))
  return Listed(name, list(names), mids, found, missing, bad, files)


@dataclasses.dataclass(frozen=True)
class ClipSettings:
  fps: float = DEFAULT_FPS
  size: int = 128
  clip_seconds: float = CLIP_SECONDS
  sample_rate: int = 16000
  missing_audio: str = "silence"

  @property
  def num_frames(self) -> int:
    return max(1, int(round(self.clip_seconds * self.fps)))

  @property
  def num_samples(self) -> int:
    return int(round(self.clip_seconds * self.sample_rate))

  @classmethod
  def from_config(cls, d) -> "ClipSettings":
    a = d.get("audio", None) or {}
    s = cls(float(d.get("fps", 0.0) or DEFAULT_FPS),
            int(d.get("resize_short", 128) or 0),
            float(d.get("clip_seconds", CLIP_SECONDS)),
            int(a.get("sample_rate", 16000)), a.get("missing", "silence"))
    for key, value, ok in (("fps", s.fps, s.fps > 0),
                           ("resize_short", s.size, s.size >= 8),
                           ("clip_seconds", s.clip_seconds,
                            s.clip_seconds > 0),
                           ("audio.sample_rate", s.sample_rate,
                            s.sample_rate > 0),
                           ("audio.missing", s.missing_audio,
                            s.missing_audio in ("silence", "refuse"))):
      if not ok:
        raise VidjaxError(f"config.dataset.{key}={value!r}: must be "
                          + ("'silence' or 'refuse'" if key == "audio.missing"
                             else "> 0" if key != "resize_short" else
                             ">= 8 (px, the stored square side)"))
    return s


def load(dataset_config, verbose: bool = True):
  """Lists, builds (once) and opens config.dataset's AudioSet / VGGSound
  clips: vidjax/data/av_clips.py (`AVClips`: train / test sources, class
  names, MIDs, the report)."""
  from vidjax.data import av_clips  # noqa: PLC0415 - TFDS import is slow
  return av_clips.load(dataset_config, verbose)
