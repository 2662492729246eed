"""`video_folder`: a TFDS dataset built from the user's own video files.

Layout and split rules: `vidjax/data/listing.py` (DIR/<class_name>/<videos>,
optional UCF-style split lists or a `path,label[,split]` CSV, else a
deterministic every-5th-file-per-class test split). Public datasets
(`public_datasets.py`) reuse this builder with their official annotations.

Build (once, on first use; array_record files, so `as_data_source` gives random
access): each video is decoded with PyAV (FFmpeg: any container/codec it
reads), frames resized to short side `resize_short` (cv2 INTER_AREA), optionally
subsampled to `fps`, and stored ONCE as JPEG bytes (`jpeg_quality`) in a
sequence feature. Training never touches the original files; a clip decodes
only the JPEGs it samples (`decode.LazyVideo`). Build workers: threads
(`build_workers`, 0 = one per CPU).

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
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from vidjax.data import decode  # noqa: E402
from vidjax.data.listing import Listing  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

SPLITS = ("train", "test")
INDEX_FILE, REPORT_FILE = "vidjax_index.json", "vidjax_report.txt"
PRINT_LIMIT = 200  # report lines printed per section (the file has them all)


@dataclasses.dataclass
class Report:
  """What a build left out, and why. Each list holds (path, reason)."""
  name: str
  num_videos: dict
  skipped: list
  ignored: list
  missing: list
  empty_classes: list
  where: str = ""

  def lines(self, limit: int | None = None) -> list:
    out = [f"{self.name}: " + ", ".join(
        f"{n} {s} videos" for s, n in self.num_videos.items())]
    for title, rows in (("videos skipped", self.skipped),
                        ("non-video files ignored", self.ignored),
                        ("listed videos missing", self.missing)):
      if rows:
        out.append(f"{len(rows)} {title}:")
        out += [f"  {p} — {why}" for p, why in rows[:limit]]
        if limit is not None and len(rows) > limit:
          out.append(f"  ... {len(rows) - limit} more in {self.where}")
    if self.empty_classes:
      out.append(f"{len(self.empty_classes)} classes with no usable video "
                 "(kept, so label ids stay fixed):")
      out += [f"  {c}" for c in self.empty_classes]
    return out

  def __str__(self) -> str:
    return "\n".join(self.lines())


@dataclasses.dataclass(eq=False)
class VideoFolderConfig(tfds.core.BuilderConfig):
  listing: Listing | None = dataclasses.field(default=None, repr=False)
  resize_short: int = 128
  fps: float = 0.0
  jpeg_quality: int = 90
  workers: int = 0


class VideoFolder(tfds.core.GeneratorBasedBuilder):
  """Videos decoded once into per-frame JPEGs; a label and source path each."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    listing = self.builder_config.listing
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "frames": tfds.features.Sequence(
                tfds.features.Tensor(shape=(), dtype=np.object_)),  # JPEGs
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
    return {s: self._generate_examples(s) for s in SPLITS}

  def _generate_examples(self, split):
    import tqdm  # noqa: PLC0415
    cfg = self.builder_config
    entries = getattr(cfg.listing, split)
    workers = cfg.workers if cfg.workers > 0 else (os.cpu_count() or 1)

    def work(entry):
      path = os.path.join(cfg.listing.root, entry[0])
      try:
        return decode.decode_to_jpegs(path, cfg.resize_short, cfg.fps,
                                      cfg.jpeg_quality)
      except decode.BadVideo as e:
        return str(e)
      except Exception as e:  # noqa: BLE001 - one bad file never stops a build
        return f"unexpected error: {type(e).__name__}: {e}"

    with concurrent.futures.ThreadPoolExecutor(workers) as pool, tqdm.tqdm(
        total=len(entries), desc=f"decoding {split} videos",
        unit="video") as bar:
      pending, it = collections.deque(), iter(enumerate(entries))
      while True:
        while len(pending) < 2 * workers:
          nxt = next(it, None)
          if nxt is None:
            break
          pending.append((nxt, pool.submit(work, nxt[1])))
        if not pending:
          break
        (key, (rel, label)), future = pending.popleft()
        out = future.result()
        bar.update()
        if isinstance(out, str):
          self._skipped.append((rel, out))
          continue
        self._built[split].append((rel, label, len(out["frames"])))
        yield key, {"frames": out["frames"], "height": out["height"],
                    "width": out["width"], "fps": out["fps"], "label": label,
                    "path": rel}
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


class _NoUsableVideo(Exception):
  def __init__(self, splits):
    super().__init__(splits)
    self.splits = splits


def fingerprint(listing: Listing, resize_short: int, fps: float,
                jpeg_quality: int) -> str:
  """12 hex digits naming a build (see the module docstring)."""
  def rows(entries):
    return [(p, y, os.path.getsize(os.path.join(listing.root, p)))
            for p, y in entries]
  key = json.dumps({"root": listing.root, "classes": list(listing.class_names),
                    "train": rows(listing.train), "test": rows(listing.test),
                    "resize_short": int(resize_short), "fps": float(fps),
                    "jpeg_quality": int(jpeg_quality), "version": "1.0.0"})
  return hashlib.sha1(key.encode()).hexdigest()[:12]


class VideoSource:
  """Random access to one split: `source[i]` -> {"video": LazyVideo,
  "label": int, "path": str}. `labels`/`paths`/`num_frames`: per video."""

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
                 workers: int = 0, verbose: bool = True):
  """Builds `listing` if needed; returns (train, test, Report)."""
  if resize_short < 0 or fps < 0 or not 1 <= jpeg_quality <= 100:
    raise VidjaxError(
        "config.dataset.resize_short/fps must be >= 0 and jpeg_quality in "
        f"[1, 100], got {resize_short}/{fps}/{jpeg_quality}")
  digest = fingerprint(listing, resize_short, fps, jpeg_quality)
  name = f"{listing.tag}_{digest}"
  config = VideoFolderConfig(
      name=name, listing=listing, resize_short=int(resize_short),
      fps=float(fps), jpeg_quality=int(jpeg_quality), workers=int(workers),
      description=listing.origin)
  builder = VideoFolder(config=config, data_dir=data_dir or None)
  built_now = not builder.is_prepared()
  try:
    builder.download_and_prepare(file_format="array_record")
  except _NoUsableVideo as e:
    report = _report(listing, builder, {s: [] for s in SPLITS},
                     builder._skipped, min_frames)
    print("\n".join(report.lines(PRINT_LIMIT)))
    raise VidjaxError(
        f"{listing.origin}: no usable video in the {'/'.join(e.splits)} "
        f"split ({len(builder._skipped)} skipped, report above)") from None
  index_path = os.path.join(builder.data_dir, INDEX_FILE)
  try:
    with open(index_path) as f:
      index = json.load(f)
  except (OSError, ValueError):
    raise VidjaxError(f"{index_path} is missing or unreadable; delete "
                      f"{builder.data_dir} to rebuild") from None
  sources, kept = {}, {}
  for s in SPLITS:
    rows = index["splits"][s]
    keep = [i for i, r in enumerate(rows) if r[2] >= min_frames]
    kept[s] = [rows[i] for i in keep]
    sources[s] = VideoSource(builder.as_data_source(split=s), keep, kept[s])
  report = _report(listing, builder, kept, index["skipped"] + [
      (r[0], f"{r[2]} frames < config.dataset.min_frames={min_frames}")
      for s in SPLITS for r in index["splits"][s] if r[2] < min_frames],
      min_frames)
  _save(report)
  if verbose:
    print("\n".join(report.lines(PRINT_LIMIT)) if built_now else
          f"{report.lines()[0]} (cached; {len(report.skipped)} skipped, "
          f"{len(report.missing)} missing: {report.where})")
  for s in SPLITS:
    if not len(sources[s]):
      raise VidjaxError(
          f"{listing.origin}: no usable video in the {s} split "
          f"({len(report.skipped)} skipped; report: {report.where})")
  return sources["train"], sources["test"], report


def _report(listing, builder, kept, skipped, min_frames) -> Report:
  used = {r[1] for rows in kept.values() for r in rows}
  return Report(
      name=f"{builder.name}/{builder.builder_config.name}",
      num_videos={s: len(kept[s]) for s in SPLITS},
      skipped=[tuple(x) for x in skipped], ignored=list(listing.ignored),
      missing=list(listing.missing),
      empty_classes=[c for i, c in enumerate(listing.class_names)
                     if i not in used],
      where=os.path.join(builder.data_dir, REPORT_FILE))


def _save(report: Report):
  """Writes the report next to the data (not if that folder is read-only)."""
  text = str(report) + "\n"
  try:
    if os.path.exists(report.where):
      with open(report.where) as f:
        if f.read() == text:
          return
    tmp = f"{report.where}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, report.where)
  except OSError:
    pass


def load(dataset_config, listing: Listing, verbose: bool = True):
  """(train, test, Report) of `listing` with config.dataset's settings."""
  cfg = dataset_config
  min_frames = int(cfg.get("min_frames", -1))
  if min_frames <= 0:
    min_frames = int(cfg.num_frames)
  return open_listing(
      listing, data_dir=cfg.get("data_dir", "") or None,
      resize_short=int(cfg.get("resize_short", 128)),
      fps=float(cfg.get("fps", 0.0)),
      jpeg_quality=int(cfg.get("jpeg_quality", 90)), min_frames=min_frames,
      workers=int(cfg.get("build_workers", 0)), verbose=verbose)
