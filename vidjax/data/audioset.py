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
import hashlib
import json
import os
import re

import numpy as np

from vidjax.data import listing as listing_lib
from vidjax.errors import VidjaxError

DATASETS = ("audioset", "vggsound")
DEFAULT_FPS = 4.0
CLIP_SECONDS = 10.0
REPORT_JSON = "vidjax_report.json"
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


def decode_clip(path: str, start: float, trimmed: bool,
                s: ClipSettings) -> dict:
  """One segment's example (module docstring). Raises decode.BadVideo;
  audio.decode.NoAudio is caught: silence and has_audio False."""
  from vidjax.audio import decode as adec  # noqa: PLC0415
  from vidjax.data import decode  # noqa: PLC0415
  got = decode.decode_to_jpegs(path, resize_short=s.size, fps=s.fps)
  fps = got["fps"] or s.fps
  offset = 0.0 if trimmed else max(start - got["t0"], 0.0)
  first = int(round(offset * fps))
  count = len(got["frames"])
  if first >= count:
    raise decode.BadVideo(f"the segment starts at {start:g} s, after the "
                          f"video's last frame ({count} at {fps:g} fps)")
  real = min(s.num_frames, count - first)
  idx = np.minimum(first + np.arange(s.num_frames), count - 1)
  frames = decode.decode_jpegs(got["frames"], idx, got["height"],
                               got["width"])
  h, w = frames.shape[1:3]
  y0, x0 = (h - min(h, w)) // 2, (w - min(h, w)) // 2
  frames = frames[:, y0:y0 + min(h, w), x0:x0 + min(h, w)]
  if frames.shape[1] != s.size:
    frames = np.stack([decode.resize(f, (s.size, s.size)) for f in frames])
  try:
    wave, audio_t0 = adec.decode_audio(path, s.sample_rate)
    track = adec.AudioTrack(wave, s.sample_rate, audio_t0, got["t0"], fps)
    audio, has_audio, why = adec.to_int16(track.clip(first, s.num_samples)
                                          ), True, ""
  except adec.NoAudio as e:
    audio, has_audio, why = np.zeros(s.num_samples, np.int16), False, str(e)
  return {"video": frames, "audio": audio, "num_frames": np.int32(real),
          "has_audio": has_audio, "no_audio_reason": why}


def _key(listed: Listed, s: ClipSettings, d) -> str:
  stats = [(p, os.path.getsize(p), int(os.path.getmtime(p)))
           for p in listed.files]
  clips = sorted((seg.clip_id, seg.split, p, t, os.path.getsize(p))
                 for rows in listed.found.values() for seg, p, t in rows)
  text = json.dumps([listed.name, stats, clips, dataclasses.asdict(s)],
                    default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:10]


# ------------------------------------------------------------------ the build
def _tfds():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow_datasets as tfds  # noqa: PLC0415 - slow: only to build
  return tfds


_BUILDER = None


def builder_class():
  """The TFDS builder `av_clips` (defined on first use: TFDS is slow to
  import). Its config name is `<dataset>_<hash of the CSVs' sizes and
  times, the found clips and the ClipSettings>`: new files, another CSV or
  setting build anew."""
  global _BUILDER
  if _BUILDER is not None:
    return _BUILDER
  tfds = _tfds()

  @dataclasses.dataclass(eq=False)
  class AvClipsConfig(tfds.core.BuilderConfig):
    dataset: str = "audioset"
    num_classes: int = 527
    num_frames: int = 40
    size: int = 128
    num_samples: int = 160000

  class AvClips(tfds.core.GeneratorBasedBuilder):
    """AudioSet / VGGSound segments from the user's clips."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [AvClipsConfig(name="audioset_empty")]

    def __init__(self, *, listed=None, settings=None, **kw):
      super().__init__(**kw)
      self.listed, self.settings = listed, settings
      self.events = {"skipped": [], "no_audio": [], "labels": set()}

    def _info(self):
      c = self.builder_config
      enc = tfds.features.Encoding.BYTES
      return self.dataset_info_from_configs(
          features=tfds.features.FeaturesDict({
              "video": tfds.features.Tensor(
                  shape=(c.num_frames, c.size, c.size, 3), dtype=np.uint8,
                  encoding=enc),
              "audio": tfds.features.Tensor(shape=(c.num_samples,),
                                            dtype=np.int16, encoding=enc),
              "labels": tfds.features.Tensor(shape=(c.num_classes,),
                                             dtype=np.uint8),
              "label": tfds.features.Scalar(dtype=np.int32),
              "clip_id": tfds.features.Text(),
              "start": tfds.features.Scalar(dtype=np.float32),
              "num_frames": tfds.features.Scalar(dtype=np.int32),
              "has_audio": tfds.features.Scalar(dtype=np.bool_),
          }), disable_shuffling=True, description=__doc__.split("\n\n")[0])

    def _split_generators(self, dl_manager):
      del dl_manager  # the user's files
      return {s: self._generate_examples(s) for s in ("train", "test")}

    def _generate_examples(self, split):
      s, c = self.settings, self.builder_config
      from vidjax.data import decode  # noqa: PLC0415
      for i, (seg, path, trimmed) in enumerate(self.listed.found[split]):
        try:
          ex = decode_clip(path, seg.start, trimmed, s)
        except decode.BadVideo as e:
          self.events["skipped"].append((path, str(e)))
          continue
        if not ex.pop("has_audio"):
          why = ex.pop("no_audio_reason")
          if s.missing_audio == "refuse":
            raise VidjaxError(f"{path}: {why} (config.dataset.audio."
                              "missing='refuse')")
          self.events["no_audio"].append((path, why))
          ex["has_audio"] = False
        else:
          ex.pop("no_audio_reason")
          ex["has_audio"] = True
        hot = np.zeros(c.num_classes, np.uint8)
        hot[list(seg.labels)] = 1
        if split == "train":
          self.events["labels"].update(seg.labels)
        yield f"{i:07d}", {**ex, "labels": hot, "label": np.int32(
            seg.labels[0]), "clip_id": seg.clip_id,
                           "start": np.float32(seg.start)}

  _BUILDER = (AvClips, AvClipsConfig)
  return _BUILDER


@dataclasses.dataclass
class AVClips:
  train: object        # random-access sources (builder.as_data_source)
  test: object
  class_names: list
  mids: list           # AudioSet ontology ids ([] for VGGSound)
  multilabel: bool
  report: object       # build_report.Report
  builder: object = None


def load(dataset_config, verbose: bool = True) -> AVClips:
  """Lists, builds (once: cached under the TFDS data dir by content hash)
  and opens config.dataset's AudioSet / VGGSound clips."""
  from vidjax.data import build_report  # noqa: PLC0415
  d = dataset_config
  settings = ClipSettings.from_config(d)
  listed = list_segments(d)
  if not listed.found["train"] or not listed.found["test"]:
    empty = "train" if not listed.found["train"] else "test"
    raise VidjaxError(f"{listed.name}: none of the {empty} segments listed "
                      "has a clip file under config.dataset.manual_dir="
                      f"{d.get('manual_dir')} (layouts: vidjax/data/"
                      "audioset.py)")
  cls, config_cls = builder_class()
  config = config_cls(
      name=f"{listed.name}_{_key(listed, settings, d)}", dataset=listed.name,
      num_classes=len(listed.class_names), num_frames=settings.num_frames,
      size=settings.size, num_samples=settings.num_samples)
  builder = cls(config=config, data_dir=d.get("data_dir", "") or None,
                listed=listed, settings=settings)
  folder = str(builder.data_dir)
  saved = os.path.join(folder, REPORT_JSON)
  if not os.path.exists(saved):
    builder.download_and_prepare(file_format="array_record")
    ev = builder.events
    with open(saved, "w") as f:
      json.dump({"skipped": ev["skipped"], "no_audio": ev["no_audio"],
                 "empty": [n for i, n in enumerate(listed.class_names)
                           if i not in ev["labels"]]}, f)
  with open(saved) as f:
    events = json.load(f)
  train, test = (builder.as_data_source(s) for s in ("train", "test"))
  report = build_report.Report(
      name=listed.name, num_videos={"train": len(train), "test": len(test)},
      skipped=[tuple(x) for x in events["skipped"]] + [
          (w, f"bad CSV row: {why}") for w, why in listed.bad_rows],
      ignored=[], missing=list(listed.missing),
      empty_classes=events["empty"],
      where=os.path.join(folder, "vidjax_report.txt"),
      no_audio=[tuple(x) for x in events["no_audio"]])
  build_report.save_report(report)
  if verbose:
    print("\n".join(report.lines(build_report.PRINT_LIMIT)))
  return AVClips(train, test, listed.class_names, listed.mids,
                 listed.name == "audioset", report, builder)
