"""`video_folder`: a TFDS dataset built from the user's own video files.

Layout and split rules: `vidjax/data/listing.py` (DIR/<class_name>/<videos>,
optional UCF-style split lists or a `path,label[,split]` CSV, else a
deterministic every-5th-file-per-class test split). Public datasets
(`public_datasets.py`) reuse this builder with their official annotations.

Build (once, on first use; array_record files, so `as_data_source` gives random
access): each video is decoded with PyAV (FFmpeg: any container/codec it
reads), frames resized to short side `resize_short` (cv2 INTER_AREA), optionally
subsampled to `fps`, and stored ONCE as JPEG bytes (`jpeg_quality`). Version
2.0.0 writes the JPEGs to per-split flat frame files next to the TFDS records
(`frame_store.py`), so a clip reads (pread) and decodes only the frames it
samples (`decode.LazyVideo`); the records keep the per-video fields. A 1.0.0
build (all of a video's JPEGs in its record) stays readable (`VideoSource`);
the version is part of the fingerprint, so a new build is 2.0.0. Training
never touches the original files. Decoding runs in worker
processes (`build_workers`, 0 = one per core) that stage each video's result
in `<tag>_<hash>/staging/`, so a killed build resumes where it stopped; the
TFDS assembly reads the staged parts while they decode (`prepare.py`).
`tools/prepare_data.py` runs this before training; the main job runs the same
code when it finds no build.

Opening: `load` lists the raw tree, opens (or builds) the build, then records
it in a manifest (`prepared.py`); `open_prepared` opens a build from its
manifest alone, with no listing of the raw tree (`datasets.load` tries it
first).

Cache: `<data_dir>/video_folder/<tag>_<hash>/1.0.0/`, `<tag>` naming the
source (e.g. `video_folder_myclips`, `ucf101_split1`) and `<hash>` the first 12
hex digits of SHA-1 over (resolved root, class names, every (path, label,
file size) of both splits, resize_short, fps, jpeg_quality). Another folder, a
changed split, an added/removed/re-encoded file or other settings therefore
build apart; `min_frames` is applied when the dataset is opened, so changing
the clip length never rebuilds.

Bad input never stops a build: each file that cannot be used is skipped and
named with its reason (`decode.BadVideo`). The report (videos skipped, files
ignored, listed videos missing, classes without a usable video) is printed
after the build, saved as `vidjax_report.txt` (+ `vidjax_index.json`) in the
dataset's folder, and returned as `Report`.

Audio (config.dataset.audio.enabled; off by default, and then nothing here
changes): each video's audio track is also decoded (vidjax/audio/decode.py),
resampled to config.dataset.audio.sample_rate and stored as int16 beside the
frames (frame_store.py), with its start time and the first frame's; the rate
joins the fingerprint. A video with no usable audio keeps silence and is named
under "videos with no usable audio" in the report, or (missing="refuse")
stops the build with a one-line error naming it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from tensorflow_datasets.core.utils import tqdm_utils  # noqa: E402

from vidjax.data import decode, frame_store, prepare, prepared  # noqa: E402
from vidjax.data.frame_store import StoredSource  # noqa: E402
from vidjax.data.build_report import (  # noqa: E402,F401 (Report: API)
    PRINT_LIMIT, SPLITS, BuildSummary, Report, make_report, save_report)
from vidjax.data.listing import Listing  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

INDEX_FILE, REPORT_FILE = "vidjax_index.json", "vidjax_report.txt"


@dataclasses.dataclass(eq=False)
class VideoFolderConfig(tfds.core.BuilderConfig):
  listing: Listing | None = dataclasses.field(default=None, repr=False)
  resize_short: int = 128
  fps: float = 0.0
  jpeg_quality: int = 90
  workers: int = 0
  audio_rate: int = 0  # Hz; 0: no audio stored
  audio_missing: str = "silence"
  stager: "prepare.Stager | None" = dataclasses.field(default=None,
                                                      repr=False)


class VideoFolder(tfds.core.GeneratorBasedBuilder):
  """Videos decoded once into per-frame JPEGs; a label and source path each."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "2.0.0": "JPEGs in per-split frame files (frame_store)."}

  def _info(self) -> tfds.core.DatasetInfo:
    listing = self.builder_config.listing
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "first_frame": tfds.features.Scalar(dtype=np.int64),  # store
            "num_frames": tfds.features.Scalar(dtype=np.int64),
            "height": tfds.features.Scalar(dtype=np.int32),
            "width": tfds.features.Scalar(dtype=np.int32),
            "fps": tfds.features.Scalar(dtype=np.float32),
            "label": tfds.features.ClassLabel(
                names=list(listing.class_names) if listing else []),
            "path": tfds.features.Text(),
        }),
        disable_shuffling=True,  # records in listing order (integer keys)
        description="User videos stored as per-frame JPEGs (vidjax).")

  def _split_generators(self, dl_manager):
    del dl_manager
    self._built = {s: [] for s in SPLITS}
    self._skipped, self._finished = [], set()
    self.video_seconds = 0.0
    return {s: self._generate_examples(s) for s in SPLITS}

  def _generate_examples(self, split):
    """Reads the staged videos (`prepare.Stager`) in listing order."""
    stager = self.builder_config.stager
    writer = frame_store.FrameWriter(self.data_dir, split)
    cfg = self.builder_config
    sound = (frame_store.AudioWriter(self.data_dir, split, cfg.audio_rate)
             if cfg.audio_rate else None)
    for key, (rel, label) in enumerate(getattr(self.builder_config.listing,
                                               split)):
      out = stager.result(rel)
      if "skip" in out:
        self._skipped.append((rel, out["skip"]))
        continue
      self._built[split].append((rel, label, len(out["frames"])))
      self.video_seconds += prepare.duration(out)
      first = writer.add(out["frames"], out["height"], out["width"])
      if sound is not None:
        _check_audio(rel, out, cfg.audio_missing)
        sound.add(rel, out)
      yield key, {"first_frame": first, "num_frames": len(out["frames"]),
                  "height": out["height"], "width": out["width"],
                  "fps": out["fps"], "label": label, "path": rel}
    writer.close()
    if sound is not None:
      sound.close()
    self._finished.add(split)

  def _download_and_prepare(self, dl_manager, download_config):
    try:
      super()._download_and_prepare(dl_manager=dl_manager,
                                    download_config=download_config)
    except Exception as e:  # TFDS refuses a split with no example
      empty = [s for s in sorted(getattr(self, "_finished", ()))
               if not self._built[s]]
      if empty:
        raise _NoUsableVideo(empty) from e
      raise
    index = {"splits": self._built, "skipped": self._skipped}
    with open(os.path.join(self.data_dir, INDEX_FILE), "w") as f:
      json.dump(index, f)


def _check_audio(rel: str, out: dict, missing: str):
  if "no_audio" in out and missing == "refuse":
    raise VidjaxError(f"{rel}: {out['no_audio']} (config.dataset.audio."
                      "missing='refuse'; 'silence' keeps it silent)")


class _NoUsableVideo(Exception):
  def __init__(self, splits):
    super().__init__(splits)
    self.splits = splits


def source_sizes(listing: Listing) -> dict:
  """{relative path: file size} of every listed video (one stat each)."""
  return {p: os.path.getsize(os.path.join(listing.root, p))
          for s in SPLITS for p, _ in getattr(listing, s)}


def fingerprint(listing: Listing, resize_short: int, fps: float,
                jpeg_quality: int, sizes: dict | None = None,
                audio_rate: int = 0) -> str:
  """12 hex digits naming a build (see the module docstring)."""
  sizes = source_sizes(listing) if sizes is None else sizes
  audio = {"audio_rate": int(audio_rate)} if audio_rate else {}
  key = json.dumps({**audio, "root": listing.root,
                    "classes": list(listing.class_names),
                    "train": [(p, y, sizes[p]) for p, y in listing.train],
                    "test": [(p, y, sizes[p]) for p, y in listing.test],
                    "resize_short": int(resize_short), "fps": float(fps),
                    "jpeg_quality": int(jpeg_quality),
                    "version": str(VideoFolder.VERSION)})
  return hashlib.sha1(key.encode()).hexdigest()[:12]


class VideoSource:
  """Random access to one split of a 1.0.0 build (every JPEG of a video in
  its record): `source[i]` -> {"video": LazyVideo, "label": int, "path":
  str}. `labels`/`paths`/`num_frames`: per video."""

  def __init__(self, data_source, records, rows):
    self._ds, self._records = data_source, np.asarray(records, np.int64)
    self.paths = [r[0] for r in rows]
    self.labels = np.array([r[1] for r in rows], np.int64)
    self.num_frames = np.array([r[2] for r in rows], np.int64)

  def __len__(self) -> int:
    return len(self._records)

  def _convert(self, i: int, ex: dict) -> dict:
    path = ex["path"].decode() if isinstance(ex["path"], bytes) else ex["path"]
    if path != self.paths[i]:
      raise VidjaxError(f"the built dataset is out of step with its "
                        f"{INDEX_FILE} (record {self._records[i]} is {path}, "
                        f"expected {self.paths[i]}); delete its folder")
    return {"video": decode.LazyVideo(ex["frames"], ex["height"], ex["width"]),
            "label": int(ex["label"]), "path": path}

  def __getitem__(self, i) -> dict:
    i = int(i)
    if not -len(self) <= i < len(self):
      raise IndexError(i)
    i %= len(self)
    return self._convert(i, self._ds[int(self._records[i])])

  def __getitems__(self, indices) -> list:
    indices = [int(i) % len(self) for i in indices]
    exs = self._ds.__getitems__([int(self._records[i]) for i in indices])
    return [self._convert(i, ex) for i, ex in zip(indices, exs)]


def open_listing(listing: Listing, *, data_dir: str | None = None,
                 resize_short: int = 128, fps: float = 0.0,
                 jpeg_quality: int = 90, min_frames: int = 1,
                 workers: int = 0, verbose: bool = True,
                 estimate_after: float = 60.0, audio=None):
  """Builds `listing` if needed; returns (train, test, Report).

  `workers`: decoding processes (<= 0: one per core); `estimate_after`:
  seconds before the size / time-left estimate line; `audio`: an
  `audio.decode.AudioSpec` to store audio tracks too (None: frames only)."""
  if resize_short < 0 or fps < 0 or not 1 <= jpeg_quality <= 100:
    raise VidjaxError(
        "config.dataset.resize_short/fps must be >= 0 and jpeg_quality in "
        f"[1, 100], got {resize_short}/{fps}/{jpeg_quality}")
  sizes = source_sizes(listing)
  rate = audio.sample_rate if audio is not None else 0
  digest = fingerprint(listing, resize_short, fps, jpeg_quality, sizes, rate)
  config = VideoFolderConfig(
      name=f"{listing.tag}_{digest}", listing=listing,
      resize_short=int(resize_short), fps=float(fps),
      jpeg_quality=int(jpeg_quality), workers=int(workers),
      audio_rate=rate, audio_missing=audio.missing if audio else "silence",
      description=listing.origin)
  builder = VideoFolder(config=config, data_dir=data_dir or None)
  summary = None
  if not builder.is_prepared():
    summary = _build(builder, sizes, min_frames, verbose, estimate_after)
  index_path = os.path.join(builder.data_dir, INDEX_FILE)
  try:
    with open(index_path) as f:
      index = json.load(f)
  except (OSError, ValueError):
    raise VidjaxError(f"{index_path} is missing or unreadable; delete "
                      f"{builder.data_dir} to rebuild") from None
  train, test, report = _open(
      builder, index["splits"], index["skipped"], min_frames,
      listing.class_names, listing.ignored, listing.missing, listing.origin,
      audio=audio)
  report.build = summary
  if verbose:
    print("\n".join(report.lines(PRINT_LIMIT)) if summary else
          f"{report.lines()[0]} (cached; {len(report.skipped)} skipped, "
          f"{len(report.missing)} missing: {report.where})")
    if summary:
      print(summary.line(report.name), flush=True)
  return train, test, report


def _build(builder, sizes, min_frames, verbose, estimate_after):
  """Decodes (worker processes, resumable) and assembles the TFDS build.

  Returns its BuildSummary, or None if another process built it meanwhile."""
  cfg = builder.builder_config
  listing, name_dir = cfg.listing, os.path.dirname(builder.data_dir)
  local = "://" not in name_dir
  staging = (os.path.join(name_dir, "staging") if local else os.path.join(
      tempfile.gettempdir(), "vidjax_staging", cfg.name))
  lock = os.path.join(name_dir if local else staging, ".lock")
  with prepare.build_lock(lock, f"{builder.name}/{cfg.name}"):
    if builder.is_prepared():
      return None
    if local:  # what a killed TFDS assembly left behind
      for entry in os.listdir(name_dir):
        if entry.startswith("incomplete."):
          shutil.rmtree(os.path.join(name_dir, entry), ignore_errors=True)
    workers = cfg.workers if cfg.workers > 0 else prepare.default_workers()
    settings = {"resize_short": cfg.resize_short, "fps": cfg.fps,
                "jpeg_quality": cfg.jpeg_quality}
    if cfg.audio_rate:
      settings["audio_rate"] = cfg.audio_rate
    rels = [p for s in SPLITS for p, _ in getattr(listing, s)]
    t0 = time.perf_counter()
    bars = getattr(tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)  # one bar: the Stager's
    empty = None
    with prepare.Stager(listing.root, rels, staging, settings, workers, sizes,
                        estimate_after, verbose) as stager:
      cfg.stager = stager
      try:
        builder.download_and_prepare(file_format="array_record")
      except _NoUsableVideo as e:
        empty = e.splits
      finally:
        cfg.stager = None
        tfds.display_progress_bar(bars)
    stager.discard()  # complete, or nothing to resume: same files, same skips
  if empty:
    report = make_report(
        f"{builder.name}/{cfg.name}", listing.class_names, listing.ignored,
        listing.missing, {s: [] for s in SPLITS}, builder._skipped,
        os.path.join(builder.data_dir, REPORT_FILE))
    print("\n".join(report.lines(PRINT_LIMIT)))
    raise VidjaxError(
        f"{listing.origin}: no usable video in the {'/'.join(empty)} split "
        f"({len(builder._skipped)} skipped, report above)")
  kept = sum(len(rows) for rows in builder._built.values())
  disk = sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(builder.data_dir) for f in files) \
      if local else 0
  return BuildSummary(
      videos=kept, decoded=stager.decoded, resumed=stager.resumed,
      skipped=len(builder._skipped), workers=stager.processes,
      seconds=time.perf_counter() - t0, disk_bytes=disk,
      video_seconds=builder.video_seconds)


def open_prepared(dataset_config, min_frames: int, verbose: bool = True):
  """(train, test, Report, class names) of a prepared build, read from its
  manifest (vidjax/data/prepared.py) without listing the raw tree; None when
  there is no valid manifest."""
  manifest = prepared.read(dataset_config)
  if manifest is None:
    return None
  from vidjax.audio.decode import AudioSpec  # noqa: PLC0415
  audio = AudioSpec.from_config(dataset_config)
  builder = tfds.builder_from_directory(manifest["build_dir"])
  train, test, report = _open(
      builder, manifest["splits"], manifest["skipped"], min_frames,
      manifest["class_names"], manifest["ignored"], manifest["missing"],
      manifest["origin"], name=manifest["name"],
      where=os.path.join(manifest["build_dir"], REPORT_FILE), audio=audio)
  if verbose:
    print(f"{report.lines()[0]} (prepared; {len(report.skipped)} skipped, "
          f"{len(report.missing)} missing: {report.where})")
  return train, test, report, list(manifest["class_names"])


def _open(builder, splits, skipped, min_frames, class_names, ignored,
          missing, origin, name=None, where=None, audio=None):
  """Sources of a complete build from its index rows; its Report, saved."""
  sources, kept, no_audio = {}, {}, []
  for s in SPLITS:
    rows = splits[s]
    keep = [i for i, r in enumerate(rows) if r[2] >= min_frames]
    kept[s] = [rows[i] for i in keep]
    folder = str(builder.data_dir)
    sound = None
    if audio is not None:
      if not frame_store.has_audio(folder, s):
        raise VidjaxError(f"config.dataset.audio.enabled: the build {folder} "
                          "has no audio; delete it (or its manifest) to "
                          "rebuild")
      sound = frame_store.AudioStore(folder, s)
      used = {r[0] for r in kept[s]}
      no_audio += [tuple(x) for x in sound.no_audio if x[0] in used]
      if no_audio and audio.missing == "refuse":
        raise VidjaxError(f"{no_audio[0][0]}: {no_audio[0][1]} (config."
                          "dataset.audio.missing='refuse')")
    sources[s] = (
        StoredSource(frame_store.FrameStore(folder, s), keep, kept[s], sound)
        if frame_store.has_store(folder, s) else
        VideoSource(builder.as_data_source(split=s), keep, kept[s]))
  report = make_report(
      name or f"{builder.name}/{builder.builder_config.name}", class_names,
      ignored, missing, kept, list(skipped) + [
          (r[0], f"{r[2]} frames < config.dataset.min_frames={min_frames}")
          for s in SPLITS for r in splits[s] if r[2] < min_frames],
      where or os.path.join(builder.data_dir, REPORT_FILE))
  report.no_audio = no_audio
  save_report(report)
  for s in SPLITS:
    if not len(sources[s]):
      raise VidjaxError(
          f"{origin}: no usable video in the {s} split "
          f"({len(report.skipped)} skipped; report: {report.where})")
  return sources["train"], sources["test"], report


def _min_frames(cfg) -> int:
  min_frames = int(cfg.get("min_frames", -1))
  return min_frames if min_frames > 0 else int(cfg.num_frames)


def load(dataset_config, listing: Listing, verbose: bool = True,
         workers: int | None = None, estimate_after: float = 60.0):
  """(train, test, Report) of `listing` with config.dataset's settings; the
  build (made if needed) is then recorded in a manifest (prepared.py).
  `workers`: None = config.dataset.build_workers."""
  cfg = dataset_config
  from vidjax.audio.decode import AudioSpec  # noqa: PLC0415
  audio = AudioSpec.from_config(cfg)  # its config errors before any build
  data_dir = prepared.data_dir(cfg)
  train, test, report = open_listing(
      listing, data_dir=data_dir,
      resize_short=int(cfg.get("resize_short", 128)),
      fps=float(cfg.get("fps", 0.0)),
      jpeg_quality=int(cfg.get("jpeg_quality", 90)),
      min_frames=_min_frames(cfg),
      workers=int(cfg.get("build_workers", 0) if workers is None else workers),
      verbose=verbose, estimate_after=estimate_after, audio=audio)
  build_dir = os.path.dirname(report.where)
  with open(os.path.join(build_dir, INDEX_FILE)) as f:
    index = json.load(f)
  try:
    prepared.write(
        cfg, build=os.path.relpath(build_dir, data_dir), name=report.name,
        origin=listing.origin, class_names=listing.class_names,
        splits=index["splits"], skipped=index["skipped"],
        ignored=listing.ignored, missing=listing.missing,
        annotations=listing.annotations)
  except OSError as e:
    if verbose:
      print(f"note: could not save the prepared-dataset manifest ({e})")
  return train, test, report
