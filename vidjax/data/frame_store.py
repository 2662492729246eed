"""Per-split flat frame files: a clip reads only its own frames' JPEG bytes.

Before (build version 1.0.0) a video_folder build stored each video as ONE
TFDS array_record record holding all its JPEG frames, so every clip read and
parsed (protobuf, GIL held: 0.5-5 ms) its whole video, ~20x the bytes a
16-frame clip at stride 4 of a 300-frame video uses (issue #16,
shared/notes/scale.md section 2). Build version 2.0.0 keeps the TFDS records
for the per-video fields (label, path, size, fps, where its frames start) and
writes the JPEG bytes of each split, in record order, to

  frames-<split>.bin          the JPEGs, back to back
  frames-<split>.offsets.npy  int64 [frames + 1]: frame k is bin[o[k]:o[k+1]]
  frames-<split>.videos.npy   int64 [videos, 4]: first frame, frame count,
                              height, width, per record (build order)

next to the TFDS files. A clip then costs a few array look-ups and one
`os.pread` per sampled frame (the "index" reads are the two small .npy files,
loaded once per process). `bytes_read` counts what was read, for tests.

Remote data dirs (`gs://...`, anything with a scheme) cannot be pread: their
frames are read through a file object of `etils.epath` (TFDS's file layer;
seek + read), one per process, behind a lock.

A store pickles as its folder and split only: a worker process reopens it.
`StoredSource` is a split of a 2.0.0 build as a pipeline source (its rows come
from the build's index; video_folder.py).

Audio (config.dataset.audio.enabled, issue #22; vidjax/audio/decode.py): a
build with audio also writes, per split, in record order,

  audio-<split>.bin        every video's resampled mono track, int16 (half
                           of float32's bytes; quantisation step 1/32767,
                           ~96 dB below full scale), back to back
  audio-<split>.index.npy  float64 [videos, 5]: first sample, sample count,
                           audio start time (s), first stored frame time (s),
                           stored fps
  audio-<split>.json       {"sample_rate", "dtype": "int16", "no_audio":
                           [[path, reason], ...] (stored as silence)}

and `StoredSource` then gives each example an "audio" `AudioTrack` whose
clip windows read (pread) only their own samples.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from vidjax.data import decode
from vidjax.errors import VidjaxError

SPLIT_FILES = ("frames-{}.bin", "frames-{}.offsets.npy", "frames-{}.videos.npy")
AUDIO_FILES = ("audio-{}.bin", "audio-{}.index.npy", "audio-{}.json")


def _remote(path: str) -> bool:
  return "://" in path


def _open(path: str, mode: str):
  if _remote(path):
    from etils import epath  # noqa: PLC0415
    return epath.Path(path).open(mode)
  return open(path, mode)


def _join(folder: str, name: str) -> str:
  return f"{folder.rstrip('/')}/{name}" if _remote(folder) else os.path.join(
      folder, name)


def has_store(folder: str, split: str) -> bool:
  """Whether `folder` (a build's version folder) holds `split`'s frame files."""
  path = _join(folder, SPLIT_FILES[2].format(split))
  if _remote(path):
    from etils import epath  # noqa: PLC0415
    return epath.Path(path).exists()
  return os.path.exists(path)


class FrameWriter:
  """Appends videos' JPEGs to a split's files; `close` writes the indexes."""

  def __init__(self, folder: str, split: str):
    self.folder, self.split = folder, split
    self._bin = _open(_join(folder, SPLIT_FILES[0].format(split)), "wb")
    self._offsets, self._videos = [0], []

  def add(self, jpegs, height: int, width: int) -> int:
    """Writes one video's frames; returns the index of its first frame."""
    first = len(self._offsets) - 1
    for jpeg in jpegs:
      self._bin.write(jpeg)
      self._offsets.append(self._offsets[-1] + len(jpeg))
    self._videos.append((first, len(jpegs), int(height), int(width)))
    return first

  def close(self):
    self._bin.close()
    for name, array in ((SPLIT_FILES[1], np.array(self._offsets, np.int64)),
                        (SPLIT_FILES[2], np.array(self._videos, np.int64)
                         .reshape(-1, 4))):
      with _open(_join(self.folder, name.format(self.split)), "wb") as f:
        np.save(f, array)


class FrameStore:
  """Random access to a split's frames: `video(r)` -> a `decode.LazyVideo`
  of build record r that reads (pread) and decodes only the frames asked."""

  def __init__(self, folder: str, split: str):
    self.folder, self.split = folder, split
    self.bytes_read = 0
    self._setup()

  def _setup(self):
    with _open(_join(self.folder, SPLIT_FILES[1].format(self.split)),
               "rb") as f:
      self.offsets = np.load(f)
    with _open(_join(self.folder, SPLIT_FILES[2].format(self.split)),
               "rb") as f:
      self.videos = np.load(f)
    self._path = _join(self.folder, SPLIT_FILES[0].format(self.split))
    self._fd = self._file = None
    self._lock = threading.Lock()

  def __getstate__(self):
    return {"folder": self.folder, "split": self.split}

  def __setstate__(self, state):
    self.folder, self.split, self.bytes_read = state["folder"], state[
        "split"], 0
    self._setup()

  def __len__(self) -> int:
    return len(self.videos)

  def read(self, frame: int) -> bytes:
    """The JPEG bytes of stored frame `frame` (split-wide index)."""
    lo, hi = int(self.offsets[frame]), int(self.offsets[frame + 1])
    return _read_range(self, lo, hi, f"frame {frame}")

  def video(self, record: int) -> decode.LazyVideo:
    first, count, height, width = (int(v) for v in self.videos[record])
    return decode.LazyVideo(_Frames(self, first, count), height, width)

  def close(self):
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None
    if self._file is not None:
      self._file.close()
      self._file = None

  def __del__(self):
    try:
      self.close()
    except Exception:  # noqa: BLE001 - interpreter shutdown
      pass


class _Frames:
  """A video's JPEGs as a lazy sequence: item k is read when asked."""

  __slots__ = ("_store", "_first", "_count")

  def __init__(self, store: FrameStore, first: int, count: int):
    self._store, self._first, self._count = store, first, count

  def __len__(self) -> int:
    return self._count

  def __getitem__(self, k: int) -> bytes:
    k = int(k)
    if not 0 <= k < self._count:
      raise IndexError(k)
    return self._store.read(self._first + k)


class StoredSource:
  """Random access to one split of a 2.0.0 build: `source[i]` -> {"video":
  LazyVideo reading only the frames asked (frame_store), "label": int,
  "path": str}. No TFDS record is parsed; pickles small (worker processes)."""

  def __init__(self, store: FrameStore, records, rows, audio=None):
    self.store, self._records = store, np.asarray(records, np.int64)
    self.audio = audio  # an AudioStore when the build has audio
    self.paths = [r[0] for r in rows]
    self.labels = np.array([r[1] for r in rows], np.int64)
    self.num_frames = np.array([r[2] for r in rows], np.int64)
    stored = store.videos[self._records, 1] if len(self._records) else []
    if not np.array_equal(stored, self.num_frames):
      raise VidjaxError(f"the frame files of {store.folder} are out of step "
                        "with its index; delete its folder")

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, i) -> dict:
    i = int(i)
    if not -len(self) <= i < len(self):
      raise IndexError(i)
    i %= len(self)
    out = {"video": self.store.video(int(self._records[i])),
           "label": int(self.labels[i]), "path": self.paths[i]}
    if self.audio is not None:
      out["audio"] = self.audio.track(int(self._records[i]))
    return out

  def __getitems__(self, indices) -> list:
    return [self[i] for i in indices]


class AudioWriter:
  """Appends videos' int16 tracks to a split's audio files (record order)."""

  def __init__(self, folder: str, split: str, sample_rate: int):
    self.folder, self.split, self.sample_rate = folder, split, int(sample_rate)
    self._bin = _open(_join(folder, AUDIO_FILES[0].format(split)), "wb")
    self._rows, self._next, self.no_audio = [], 0, []

  def add(self, path: str, result: dict):
    """One video's staged result: its "audio" (int16) + "audio_t0", or its
    "no_audio" reason (stored as an empty track: silence)."""
    samples = np.asarray(result.get("audio", np.zeros(0, np.int16)), np.int16)
    if "audio" not in result:
      self.no_audio.append([path, result.get("no_audio", "no audio")])
    self._bin.write(samples.astype("<i2").tobytes())
    self._rows.append((self._next, len(samples),
                       float(result.get("audio_t0", 0.0)),
                       float(result.get("t0", 0.0)), float(result["fps"])))
    self._next += len(samples)

  def close(self):
    import json  # noqa: PLC0415
    self._bin.close()
    with _open(_join(self.folder, AUDIO_FILES[1].format(self.split)),
               "wb") as f:
      np.save(f, np.array(self._rows, np.float64).reshape(-1, 5))
    with _open(_join(self.folder, AUDIO_FILES[2].format(self.split)),
               "w") as f:
      json.dump({"sample_rate": self.sample_rate, "dtype": "int16",
                 "no_audio": self.no_audio}, f)


def has_audio(folder: str, split: str) -> bool:
  return has_store(folder, split) and _exists(
      _join(folder, AUDIO_FILES[2].format(split)))


def _exists(path: str) -> bool:
  if _remote(path):
    from etils import epath  # noqa: PLC0415
    return epath.Path(path).exists()
  return os.path.exists(path)


class AudioStore(FrameStore):
  """A split's stored tracks: `track(r)` -> the `AudioTrack` of record r,
  reading only the samples a window asks (pread of the int16 range)."""

  def _setup(self):
    import json  # noqa: PLC0415
    with _open(_join(self.folder, AUDIO_FILES[1].format(self.split)),
               "rb") as f:
      self.index = np.load(f)
    with _open(_join(self.folder, AUDIO_FILES[2].format(self.split)),
               "r") as f:
      meta = json.load(f)
    self.sample_rate, self.no_audio = int(meta["sample_rate"]), meta[
        "no_audio"]
    self._path = _join(self.folder, AUDIO_FILES[0].format(self.split))
    self._fd = self._file = None
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.index)

  def read_samples(self, lo: int, hi: int) -> np.ndarray:
    """float32 samples [lo, hi) of the split's track file."""
    data = _read_range(self, 2 * lo, 2 * hi, f"samples [{lo}, {hi})")
    return np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32767)

  def track(self, record: int):
    from vidjax.audio.decode import AudioTrack  # noqa: PLC0415
    first, count, audio_t0, video_t0, fps = self.index[record]
    return AudioTrack(_Samples(self, int(first), int(count)),
                      self.sample_rate, float(audio_t0), float(video_t0),
                      float(fps))


def _read_range(store, lo: int, hi: int, what: str) -> bytes:
  """Bytes [lo, hi) of a store's file (pread locally, a locked seek+read
  on a remote path); `what` names them if the file is truncated."""
  if _remote(store._path):
    with store._lock:
      if store._file is None:
        store._file = _open(store._path, "rb")
      store._file.seek(lo)
      data = store._file.read(hi - lo)
  else:
    if store._fd is None:
      with store._lock:
        if store._fd is None:
          store._fd = os.open(store._path, os.O_RDONLY)
    data = os.pread(store._fd, hi - lo, lo)
  if len(data) != hi - lo:
    raise ValueError(f"{store._path}: {what} is truncated (read "
                     f"{len(data)} of {hi - lo} bytes)")
  store.bytes_read += len(data)
  return data


class _Samples:
  """One video's stored track: `len`, `read(lo, hi)` -> float32."""

  __slots__ = ("_store", "_first", "_count")

  def __init__(self, store: AudioStore, first: int, count: int):
    self._store, self._first, self._count = store, first, count

  def __len__(self) -> int:
    return self._count

  def read(self, lo: int, hi: int) -> np.ndarray:
    return self._store.read_samples(self._first + lo, self._first + hi)
