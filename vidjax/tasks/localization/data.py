"""Untrimmed videos as fixed-shape, masked batches for a jitted step.

A `Sequence` is one video as a localization model sees it: a time series of
inputs (window features [N, D], or frames [T, H, W, 3] with per-frame timing),
the `FeatureTiming` that places step i in seconds, and its ground-truth
segments in seconds with class ids. `pad_batch` turns a list of them into
numpy arrays of one shape per (max_len, max_segments), so the step compiles
once (ActionFormer, Zhang et al. 2022, Sec. 3.3, pads to a fixed maximum
length the same way):

  inputs        [B, L, ...]  float32 features or uint8 frames, zero padded
  mask          [B, L]       True on real steps
  segments      [B, M, 2]    float32 start/end in STEP coordinates
                             (timing.index_at: step i's centre is i)
  segment_seconds [B, M, 2]  float32 the same in seconds (evaluation)
  labels        [B, M]       int32 class ids (-1 on padding)
  segment_mask  [B, M]       True on real segments
  num_steps     [B]          int32; duration [B] float32 seconds
  fps, span, stride, offset [B]  the timing of each row (decode step
                             coordinates back to seconds: timing.py)

`crop` cuts a training window out of a long sequence (segments clipped to it,
those keeping less than `min_overlap` of their length dropped), as ActionFormer
crops long THUMOS videos; test sequences are padded whole (`bucket_length`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence as Seq

import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks.localization.timing import FeatureTiming


@dataclasses.dataclass
class Sequence:
  """One untrimmed video: inputs [N, ...], timing, segments (s) and labels."""

  video_id: str
  inputs: Any            # np.ndarray [N, D] / [N, H, W, C], or LazyVideo
  timing: FeatureTiming
  duration: float
  segments: np.ndarray   # float [n, 2] seconds
  labels: np.ndarray     # int [n]

  def __len__(self) -> int:
    return len(self.inputs)


def bucket_length(n: int, multiple: int = 32) -> int:
  """n rounded up to a multiple (a temporal pyramid of k 2x levels needs a
  multiple of 2**(k-1))."""
  return -(-int(n) // multiple) * multiple


def crop(seq: Sequence, start: int, length: int,
         min_overlap: float = 0.3) -> Sequence:
  """Steps [start, start + length) of seq; segments clipped to the window's
  time span (its first step's start to its last step's end, in seconds),
  keeping those with at least `min_overlap` of their length inside."""
  start = int(np.clip(start, 0, max(len(seq) - 1, 0)))
  stop = min(start + int(length), len(seq))
  t = seq.timing
  timing = FeatureTiming(t.fps, t.span, t.stride,
                         t.offset + start * t.stride)
  lo = float(t.start_frame(start)) / t.fps
  hi = float(t.start_frame(stop - 1) + t.span) / t.fps
  segs = np.asarray(seq.segments, np.float64).reshape(-1, 2)
  clipped = np.stack([np.maximum(segs[:, 0], lo), np.minimum(segs[:, 1], hi)],
                     1) if len(segs) else segs
  length_s = np.maximum(segs[:, 1] - segs[:, 0], 1e-9)
  keep = (clipped[:, 1] - clipped[:, 0]) >= min_overlap * length_s
  return Sequence(seq.video_id, seq.inputs[start:stop], timing, seq.duration,
                  clipped[keep], np.asarray(seq.labels)[keep])


def random_crop(seq: Sequence, length: int, rng: np.random.Generator,
                min_overlap: float = 0.3, tries: int = 10) -> Sequence:
  """A random `length`-step window holding at least one segment when one
  exists (up to `tries` draws); the whole sequence when it is short enough."""
  if len(seq) <= length:
    return seq
  out = None
  for _ in range(tries):
    out = crop(seq, int(rng.integers(0, len(seq) - length + 1)), length,
               min_overlap)
    if len(out.labels) or not len(seq.labels):
      break
  return out


def pad_batch(items: Seq[Sequence], max_len: int, max_segments: int,
              input_dtype=None) -> dict:
  """The fixed-shape batch of `items` (see the module docstring).

  A sequence longer than max_len, or with more than max_segments segments, is
  a VidjaxError naming it (crop training windows first; pad test videos to
  `bucket_length` of the longest).
  """
  if not items:
    raise VidjaxError("pad_batch needs at least one sequence")
  first = np.asarray(items[0].inputs[:1])
  dtype = input_dtype or (np.uint8 if first.dtype == np.uint8 else np.float32)
  b = len(items)
  out = {
      "inputs": np.zeros((b, max_len) + first.shape[1:], dtype),
      "mask": np.zeros((b, max_len), bool),
      "segments": np.zeros((b, max_segments, 2), np.float32),
      "segment_seconds": np.zeros((b, max_segments, 2), np.float32),
      "labels": np.full((b, max_segments), -1, np.int32),
      "segment_mask": np.zeros((b, max_segments), bool),
      "num_steps": np.zeros((b,), np.int32),
      "duration": np.zeros((b,), np.float32),
      "fps": np.zeros((b,), np.float32),
      "span": np.zeros((b,), np.float32),
      "stride": np.zeros((b,), np.float32),
      "offset": np.zeros((b,), np.float32),
  }
  for i, s in enumerate(items):
    n, m = len(s), len(s.labels)
    if n > max_len:
      raise VidjaxError(f"video {s.video_id}: {n} steps > max_len={max_len} "
                        "(crop it, or raise the max length)")
    if m > max_segments:
      raise VidjaxError(f"video {s.video_id}: {m} segments > max_segments="
                        f"{max_segments}")
    out["inputs"][i, :n] = np.asarray(s.inputs[:n])
    out["mask"][i, :n] = True
    segs = np.asarray(s.segments, np.float64).reshape(-1, 2)
    out["segment_seconds"][i, :m] = segs
    out["segments"][i, :m] = s.timing.index_at(segs)
    out["labels"][i, :m] = np.asarray(s.labels)
    out["segment_mask"][i, :m] = True
    out["num_steps"][i] = n
    out["duration"][i] = s.duration
    t = s.timing
    out["fps"][i], out["span"][i] = t.fps, t.span
    out["stride"][i], out["offset"][i] = t.stride, t.offset
  return out


def from_annotation(video_id: str, inputs, timing: FeatureTiming, annotation,
                    class_index: dict, duration: float | None = None
                    ) -> Sequence:
  """A Sequence from an annotations.VideoAnnotation (labels by class_index;
  segments of other labels are dropped)."""
  rows = [(s, e, class_index[c]) for s, e, c in annotation.segments
          if c in class_index]
  segs = np.asarray([r[:2] for r in rows], np.float64).reshape(-1, 2)
  labels = np.asarray([r[2] for r in rows], np.int64)
  if duration is None:
    duration = annotation.duration
  if duration is None:
    duration = float(timing.start_frame(len(inputs) - 1) + timing.span
                     ) / timing.fps
  return Sequence(video_id, inputs, timing, float(duration), segs, labels)


def to_windows(seq: Sequence, frames: int, frame_stride: int = 1,
               stride: int | None = None) -> Sequence:
  """A frame Sequence (one step per frame) as clip windows: inputs
  [N, frames, H, W, C], the window k of `FeatureTiming.windows` (frames
  `frame_stride` apart, a window every `stride` frames); a backbone maps each
  clip to the feature of step k, whose centre time is timing.centre_time(k)."""
  if seq.timing.span != 1 or seq.timing.stride != 1:
    raise VidjaxError(f"video {seq.video_id}: to_windows needs one step per "
                      "frame")
  timing = FeatureTiming.windows(seq.timing.fps, frames, frame_stride, stride,
                                 seq.timing.offset)
  n = len(seq)
  local = FeatureTiming(timing.fps, timing.span, timing.stride)
  idx = local.window_frames(np.arange(local.num_features(n)), frames, n)
  video = seq.inputs
  if hasattr(video, "frames"):  # decode.LazyVideo: only the frames read
    flat = np.unique(idx)
    got = np.asarray(video.frames(flat))
    clips = got[np.searchsorted(flat, idx)]
  else:
    clips = np.asarray(video)[idx]
  return Sequence(seq.video_id, clips, timing, seq.duration, seq.segments,
                  seq.labels)


class SyntheticSequences:
  """One split of a `synthetic_untrimmed` build as Sequences of frames
  (timing: one step per frame), its segments read from the build's
  ActivityNet JSON (the reader of the real files)."""

  def __init__(self, builder, split: str):
    from vidjax.data import synthetic_untrimmed as su
    from vidjax.tasks.localization import annotations
    self.source = builder.as_data_source(split)
    db = annotations.read_activitynet(su.annotations_path(builder))
    self.database = annotations.subset(db, su.SUBSETS[split])
    self.class_names = list(builder.info.features["labels"].feature.names)
    self.class_index = {c: i for i, c in enumerate(self.class_names)}
    self.fps = float(builder.builder_config.fps)
    self.video_ids = [su.video_id(split, i) for i in range(len(self.source))]

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i) -> Sequence:
    ex = self.source[int(i)]
    vid = ex["video_id"]
    vid = vid.decode() if isinstance(vid, bytes) else str(vid)
    return from_annotation(vid, ex["video"], FeatureTiming.frames(self.fps),
                           self.database[vid], self.class_index)


def load(dataset_config) -> dict:
  """{"train", "test": sequence sources, "class_names", "database",
  "ambiguous", "missing"} of a localization dataset config:
  `synthetic_untrimmed` (config.dataset fields named like
  SyntheticUntrimmedConfig's override the build's, e.g. train_videos), or
  `activitynet` / `thumos14` over the user's files (untrimmed_public.load)."""
  name = dataset_config.get("name", "")
  if name != "synthetic_untrimmed":
    from vidjax.data import untrimmed_public
    return untrimmed_public.load(dataset_config)
  import dataclasses as dc
  from vidjax.data import synthetic_untrimmed as su
  from vidjax.tasks.localization import annotations
  fields = {f.name for f in dc.fields(su.SyntheticUntrimmedConfig)} - {
      "name", "version", "release_notes", "supported_versions",
      "description", "tags"}
  base = su.make_config()
  overrides = {k: type(getattr(base, k))(dataset_config[k]) for k in fields
               if k in dataset_config and dataset_config[k] is not None
               and dataset_config[k] != getattr(base, k)}
  builder = su.load_builder(dataset_config.get("data_dir") or None,
                            **overrides)
  db = annotations.read_activitynet(su.annotations_path(builder))
  train = SyntheticSequences(builder, "train")
  return {"train": train, "test": SyntheticSequences(builder, "test"),
          "class_names": train.class_names, "database": db, "ambiguous": {},
          "missing": []}
