"""Clip sampling and batching from a random-access video source.

Every training batch is a pure function of (seed, step): the epoch's
permutation comes from (seed, epoch) and each clip's augmentation from
(seed, step, position in the global batch). A resumed run therefore sees
exactly the batches an uninterrupted run sees, whatever the number of hosts,
and no iterator state needs checkpointing.

Test views follow the field's multi-view protocol: `num_test_clips` uniformly
spaced temporal clips x `num_test_crops` spatial crops (1: centre; 3: left,
centre, right along the longer side, or top/centre/bottom).
"""
import collections
import concurrent.futures
from typing import Iterator, NamedTuple

import numpy as np

from vidjax.errors import VidjaxError


class ClipSpec(NamedTuple):
  num_frames: int
  frame_stride: int
  crop_size: int
  flip: bool

  @classmethod
  def from_config(cls, dataset_config) -> "ClipSpec":
    spec = cls(int(dataset_config.num_frames), int(dataset_config.frame_stride),
               int(dataset_config.crop_size), bool(dataset_config.flip))
    for field in ("num_frames", "frame_stride", "crop_size"):
      if getattr(spec, field) < 1:
        raise VidjaxError(f"config.dataset.{field} must be >= 1, got "
                          f"{getattr(spec, field)}")
    return spec


def frame_indices(num_stored: int, spec: ClipSpec, start: int) -> np.ndarray:
  """Frames of the clip starting at `start`; clamped for short videos."""
  idx = start + spec.frame_stride * np.arange(spec.num_frames)
  return np.minimum(idx, num_stored - 1)


def max_start(num_stored: int, spec: ClipSpec) -> int:
  span = (spec.num_frames - 1) * spec.frame_stride + 1
  return max(num_stored - span, 0)


def test_starts(num_stored: int, spec: ClipSpec, num_clips: int) -> np.ndarray:
  """`num_clips` uniformly spaced clip starts (one clip: the centred one)."""
  last = max_start(num_stored, spec)
  if num_clips == 1:
    return np.array([last // 2])
  return np.round(np.linspace(0, last, num_clips)).astype(int)


def crop_origins(height: int, width: int, crop: int, num_crops: int):
  """Top-left corners of the test crops (1: centre, 3: along the long side)."""
  cy, cx = (height - crop) // 2, (width - crop) // 2
  if num_crops == 1:
    return [(cy, cx)]
  if num_crops != 3:
    raise VidjaxError(f"config.num_test_crops must be 1 or 3, got {num_crops}")
  if width >= height:
    return [(cy, 0), (cy, cx), (cy, width - crop)]
  return [(0, cx), (cy, cx), (height - crop, cx)]


def _check_size(video: np.ndarray, crop: int):
  if video.shape[1] < crop or video.shape[2] < crop:
    raise VidjaxError(
        f"config.dataset.crop_size={crop} is larger than the stored frames "
        f"({video.shape[1]}x{video.shape[2]})")


class TrainLoader:
  """Global batch `step` -> this process's slice, as uint8 clips + labels."""

  def __init__(self, source, spec: ClipSpec, seed: int, global_batch: int,
               process_index: int = 0, process_count: int = 1):
    if len(source) == 0:
      raise VidjaxError("the training split has no videos")
    self.source, self.spec, self.seed = source, spec, seed
    self.global_batch = global_batch
    local = global_batch // process_count
    self.positions = range(process_index * local, (process_index + 1) * local)
    self._perms = collections.OrderedDict()

  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      rng = np.random.default_rng((self.seed, 7919, epoch))
      self._perms[epoch] = rng.permutation(len(self.source))
      while len(self._perms) > 2:
        self._perms.popitem(last=False)
    return self._perms[epoch]

  def indices(self, step: int) -> np.ndarray:
    """Source indices of this process's examples of global batch `step`."""
    n = len(self.source)
    out = []
    for j in self.positions:
      g = step * self.global_batch + j
      out.append(self._perm(g // n)[g % n])
    return np.array(out)

  def batch(self, step: int) -> dict:
    examples = _read(self.source, self.indices(step))
    videos = np.stack([
        self._augment(ex["video"], np.random.default_rng((self.seed, step, j)))
        for ex, j in zip(examples, self.positions)])
    labels = np.array([ex["label"] for ex in examples], np.int32)
    return {"video": videos, "label": labels}

  def _augment(self, video: np.ndarray, rng: np.random.Generator):
    spec = self.spec
    _check_size(video, spec.crop_size)
    start = rng.integers(0, max_start(len(video), spec) + 1)
    y = rng.integers(0, video.shape[1] - spec.crop_size + 1)
    x = rng.integers(0, video.shape[2] - spec.crop_size + 1)
    clip = video[frame_indices(len(video), spec, start), y:y + spec.crop_size,
                 x:x + spec.crop_size]
    if spec.flip and rng.random() < 0.5:
      clip = clip[:, :, ::-1]
    return clip

  def iterate(self, start_step: int, end_step: int, num_workers: int = 4,
              prefetch: int = 4) -> Iterator[dict]:
    """Batches start_step..end_step-1, built ahead in `num_workers` threads."""
    return _prefetched(self.batch, range(start_step, end_step), num_workers,
                       prefetch)


class EvalLoader:
  """All test views, in fixed order, batched and padded; with a video id each."""

  def __init__(self, source, spec: ClipSpec, num_clips: int, num_crops: int,
               global_batch: int, process_index: int = 0,
               process_count: int = 1):
    if len(source) == 0:
      raise VidjaxError("the test split has no videos")
    self.source, self.spec = source, spec
    self.num_clips, self.num_crops = num_clips, num_crops
    self.views_per_video = num_clips * num_crops
    self.num_views = len(source) * self.views_per_video
    self.global_batch = global_batch
    self.num_batches = -(-self.num_views // global_batch)
    local = global_batch // process_count
    self.positions = range(process_index * local, (process_index + 1) * local)

  def batch(self, b: int) -> dict:
    """Views b*B .. (b+1)*B-1 (this process's slice); padding has mask 0."""
    views = [b * self.global_batch + j for j in self.positions]
    videos = sorted({v // self.views_per_video for v in views
                     if v < self.num_views})
    loaded = dict(zip(videos, _read(self.source, np.array(videos, int))))
    clips, labels, mask = [], [], []
    for v in views:
      if v >= self.num_views:
        clips.append(np.zeros_like(clips[0]) if clips else None)
        labels.append(0)
        mask.append(0.0)
        continue
      ex = loaded[v // self.views_per_video]
      clips.append(self._view(ex["video"], v % self.views_per_video))
      labels.append(int(ex["label"]))
      mask.append(1.0)
    if clips[0] is None:  # this process's whole slice is padding
      shape = (self.spec.num_frames, self.spec.crop_size, self.spec.crop_size, 3)
      clips = [np.zeros(shape, np.uint8)] * len(clips)
    return {"video": np.stack(clips), "label": np.array(labels, np.int32),
            "mask": np.array(mask, np.float32)}

  def _view(self, video: np.ndarray, k: int) -> np.ndarray:
    spec = self.spec
    _check_size(video, spec.crop_size)
    clip_j, crop_k = divmod(k, self.num_crops)
    start = test_starts(len(video), spec, self.num_clips)[clip_j]
    y, x = crop_origins(video.shape[1], video.shape[2], spec.crop_size,
                        self.num_crops)[crop_k]
    return video[frame_indices(len(video), spec, start), y:y + spec.crop_size,
                 x:x + spec.crop_size]

  def iterate(self, num_workers: int = 4, prefetch: int = 4) -> Iterator[dict]:
    return _prefetched(self.batch, range(self.num_batches), num_workers,
                       prefetch)


def _read(source, indices: np.ndarray) -> list:
  if hasattr(source, "__getitems__"):
    return source.__getitems__([int(i) for i in indices])
  return [source[int(i)] for i in indices]


def _prefetched(make, keys, num_workers: int, prefetch: int):
  pool = concurrent.futures.ThreadPoolExecutor(max(num_workers, 1))
  pending = collections.deque()
  keys = iter(keys)
  try:
    while True:
      while len(pending) < max(prefetch, 1):
        key = next(keys, None)
        if key is None:
          break
        pending.append(pool.submit(make, key))
      if not pending:
        return
      yield pending.popleft().result()
  finally:
    pool.shutdown(wait=False, cancel_futures=True)
