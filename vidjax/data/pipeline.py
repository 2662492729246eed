"""Clip sampling and batching from a random-access video source.

Every training batch is a pure function of (seed, step): the epoch's
permutation comes from (seed, epoch), each clip's augmentation from
(seed, step, position in the global batch) and the batch's mixup/cutmix from
(seed, step). A resumed run therefore sees exactly the batches an
uninterrupted run sees, whatever the number of hosts, and no iterator state
needs checkpointing.

A source's `video` is a uint8 array [T, H, W, C] or a lazy object with
`len`, `.shape` and `.frames(indices)`; frames are read only through
`read_frames`, which decodes just the sampled frames of a lazy video.
Augmentations (vidjax/data/augment.py) are set by config.dataset fields;
the defaults give a plain random crop of the stored frames. With
`repeated_aug` = k a step holds batch/k distinct videos, each k times with
different augmentations (copy r of slot u at position r * batch/k + u).

Test views follow the field's multi-view protocol: `num_test_clips` uniformly
spaced temporal clips x `num_test_crops` spatial crops (1: centre; 3: left,
centre, right along the longer side, or top/centre/bottom).

Work units: a batch is `plan`ned into groups of slots that share one video
(the k copies of `repeated_aug`; the clips x crops views of a test video);
`make` reads a group's video once and decodes each of its frames at most once
(`_FrameCache`: the union of the copies' frames, as VideoMAE's repeated
sampling), and `assemble` stacks, pads and mixes. `batch` runs all three in
the caller; with config.dataset.worker_processes != 0, `iterate` runs `make`
in worker processes (vidjax/data/clip_workers.py) with the same bytes out.

Audio (config.dataset.audio.enabled, issue #22; vidjax/audio/decode.py): a
source whose examples carry an "audio" track gives each clip the samples from
the time its first frame shows (the same temporal start as the frames: the
train clip's random start, each test view's start), `AudioSpec.window_samples`
long, zero-padded; batch["audio"] stacks them (float32 [B, samples], or log-mel
[B, frames, mels] with features="log_mel"; eval padding: zeros; worker
processes send the windows back with their answers, clip_workers.py). Off
(the default), batches have no "audio" key and nothing else changes.
"""
import collections
import concurrent.futures
import dataclasses
from typing import Iterator, NamedTuple

import numpy as np

from vidjax.data import augment, decode
from vidjax.data.augment import AugmentSpec
from vidjax.errors import VidjaxError

MIX_SALT = 1 << 40  # rng stream of the batch-level mixing (> any position)


class ClipSpec(NamedTuple):
  num_frames: int
  frame_stride: int
  crop_size: int
  flip: bool
  aug: AugmentSpec = AugmentSpec()
  test_crop_size: int = 0  # 0: crop_size
  worker_processes: int = 0  # iterate: 0 threads; N (-1: one per core) procs
  audio: object = None  # vidjax.audio.decode.AudioSpec; None: no audio

  @classmethod
  def from_config(cls, dataset_config, num_classes: int = 0) -> "ClipSpec":
    """The clip fields of config.dataset; `num_classes` (the data's count)
    sets the soft-label width when mixup/cutmix is on."""
    d = dataset_config
    for field in ("num_frames", "frame_stride", "crop_size"):
      if int(d[field]) < 1:
        raise VidjaxError(f"config.dataset.{field} must be >= 1, got "
                          f"{d[field]}")
    aug = AugmentSpec.from_config(d, num_classes=num_classes)
    if 0 < aug.test_resize_short < int(d.crop_size):
      raise VidjaxError(
          f"config.dataset.test_resize_short={aug.test_resize_short} is "
          f"smaller than config.dataset.crop_size={d.crop_size}")
    procs = int(d.get("worker_processes", 0))
    if procs < -1:
      raise VidjaxError("config.dataset.worker_processes must be -1 (one per "
                        f"core), 0 (threads) or a process count, got {procs}")
    from vidjax.audio.decode import AudioSpec  # noqa: PLC0415
    audio = AudioSpec.from_config(d)
    if audio is not None and aug.mixing:
      raise VidjaxError(
          "config.dataset.audio.enabled: set config.dataset.mixup_alpha and "
          "cutmix_alpha to 0 (clips with audio are not mixed)")
    return cls(int(d.num_frames), int(d.frame_stride), int(d.crop_size),
               bool(d.get("flip", False)), aug,
               int(d.get("test_crop_size", 0)), procs, audio)

  @property
  def test_crop(self) -> int:
    return self.test_crop_size or self.crop_size


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


def read_frames(video, indices, window=None) -> np.ndarray:
  """Frames `indices` of `video` ([n, H, W, C] uint8), cropped to `window`.

  `window` = (y, x, h, w) in stored pixels. A lazy video (with `.frames`) is
  asked once for the sorted distinct indices only.
  """
  indices = np.asarray(indices, int)
  if hasattr(video, "frames"):
    uniq, inverse = np.unique(indices, return_inverse=True)
    frames = np.asarray(video.frames(uniq))
    if len(uniq) != len(indices) or not np.array_equal(uniq, indices):
      frames = frames[inverse.reshape(-1)]
    if window is not None:
      y, x, h, w = window
      frames = frames[:, y:y + h, x:x + w]
    return frames
  if window is None:
    return video[indices]
  y, x, h, w = window
  return video[indices, y:y + h, x:x + w]


def _audio_clip(spec: ClipSpec, ex: dict, start: int) -> np.ndarray:
  """The audio window of the clip whose first stored frame is `start`."""
  track = ex.get("audio")
  if track is None:
    raise VidjaxError("config.dataset.audio.enabled: this dataset stores no "
                      "audio (video_folder and the public datasets do)")
  return track.clip(int(start), spec.audio.window_samples)


def with_audio(spec: ClipSpec, out: dict, waves: list) -> dict:
  """out["audio"] from each slot's window (None: padding, zeros)."""
  n = spec.audio.window_samples
  out["audio"] = spec.audio.features_of(np.stack(
      [np.zeros(n, np.float32) if w is None else w for w in waves]))
  return out


def _groups(keys) -> list:
  """[(key, [slots with that key])] in first-slot order."""
  out = {}
  for slot, key in enumerate(keys):
    out.setdefault(int(key), []).append(slot)
  return list(out.items())


def _hw(video):
  shape = video.shape
  return int(shape[1]), int(shape[2])


def check_batch(aug: AugmentSpec, global_batch: int, process_count: int = 1):
  """Batch-size rules of repeated augmentation and mixing (config alone)."""
  if global_batch % aug.repeated_aug:
    raise VidjaxError(
        f"config.dataset.repeated_aug={aug.repeated_aug} must divide "
        f"config.batch_size={global_batch}")
  if aug.mixing and (global_batch // process_count) % 2:
    raise VidjaxError(
        f"config.batch_size={global_batch} must be even per host "
        f"({process_count} hosts) for mixup/cutmix (clips mix in pairs)")


class TrainLoader:
  """Global batch `step` -> this process's slice, as uint8 clips + labels.

  Labels are int32 [B], or float32 soft labels [B, num_classes] when mixup
  or cutmix is on (every step then, mixed or not, so shapes never change).
  """

  def __init__(self, source, spec: ClipSpec, seed: int, global_batch: int,
               process_index: int = 0, process_count: int = 1):
    if len(source) == 0:
      raise VidjaxError("the training split has no videos")
    self.source, self.spec, self.seed = source, spec, seed
    self.global_batch = global_batch
    local = global_batch // process_count
    self.positions = range(process_index * local, (process_index + 1) * local)
    aug = spec.aug
    check_batch(aug, global_batch, process_count)
    self.distinct = global_batch // aug.repeated_aug
    if aug.mixing and aug.num_classes < 1:
      k = int(getattr(source, "num_classes", 0) or 0)
      if k < 1:
        raise VidjaxError("config.dataset.mixup_alpha/cutmix_alpha need the "
                          "class count: build the ClipSpec with "
                          "from_config(dataset_config, num_classes)")
      self.spec = spec = spec._replace(aug=dataclasses.replace(
          aug, num_classes=k))
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
      g = step * self.distinct + j % self.distinct
      out.append(self._perm(g // n)[g % n])
    return np.array(out)

  @property
  def clip_shape(self) -> tuple:
    s = self.spec
    return (s.num_frames, s.crop_size, s.crop_size, len(s.aug.mean))

  def plan(self, step: int) -> list:
    """[(source index, [local slots])]: the slots of each video of `step`."""
    return _groups(self.indices(step))

  def make(self, step: int, groups) -> list:
    """[(clips, label)] per group; each group's frames decoded once."""
    loaded = _read(self.source, np.array([g[0] for g in groups], int))
    out = []
    for (_, slots), ex in zip(groups, loaded):
      video = decode.shared_frames(ex["video"], len(slots))
      out.append(([self._augment(video, np.random.default_rng(
          (self.seed, step, self.positions[s])), ex) for s in slots],
                  int(ex["label"])))
    return out

  def batch(self, step: int) -> dict:
    groups = self.plan(step)
    clips, labels = [None] * len(self.positions), [0] * len(self.positions)
    for (_, slots), (made, label) in zip(groups, self.make(step, groups)):
      for s, clip in zip(slots, made):
        clips[s], labels[s] = clip, label
    if self.spec.audio is not None:
      return with_audio(self.spec, self.assemble(
          step, np.stack([c[0] for c in clips]), labels),
                        [c[1] for c in clips])
    return self.assemble(step, np.stack(clips), labels)

  def assemble(self, step: int, videos: np.ndarray, labels) -> dict:
    """The batch from its stacked clips and int labels (mixing, if on)."""
    labels = np.array(labels, np.int32)
    if self.spec.aug.mixing:
      rng = np.random.default_rng((self.seed, step, MIX_SALT))
      videos, labels = augment.mix_batch(videos, labels, rng, self.spec.aug)
    return {"video": videos, "label": labels}

  def _augment(self, video, rng: np.random.Generator, ex=None):
    """One training clip: start, resize/crop, flip, photometric (in order);
    (clip, its audio window) when audio is on."""
    spec, aug = self.spec, self.spec.aug
    start = rng.integers(0, max_start(len(video), spec) + 1)
    height, width = _hw(video)
    sampling = augment.train_sampling(rng, height, width, aug, spec.crop_size)
    window = sampling.window(height, width)
    frames = read_frames(video, frame_indices(len(video), spec, start), window)
    clip = sampling.apply(frames, window)
    if spec.flip and rng.random() < 0.5:
      clip = augment.hflip(clip)
    if aug.photometric:
      clip = augment.photometric(clip, rng, aug)
    if spec.audio is not None:
      return clip, _audio_clip(spec, ex, start)
    return clip

  def iterate(self, start_step: int, end_step: int, num_workers: int = 4,
              prefetch: int = 4) -> Iterator[dict]:
    """Batches start_step..end_step-1, built ahead in `num_workers` threads
    (or spec.worker_processes processes), `prefetch` batches ahead."""
    return _iterate(self, range(start_step, end_step), num_workers, prefetch)


class EvalLoader:
  """All test views, in fixed order, batched and padded; with a video id each.

  With config.dataset.test_resize_short = S > 0 the frames' short side is
  resized to S before the crops are taken.
  """

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

  @property
  def clip_shape(self) -> tuple:
    crop = self.spec.test_crop  # mean: one value per channel
    return (self.spec.num_frames, crop, crop, len(self.spec.aug.mean))

  def _views(self, b: int) -> list:
    return [b * self.global_batch + j for j in self.positions]

  def plan(self, b: int) -> list:
    """[(video, [local slots])] of batch b's real (not padding) views."""
    views = self._views(b)
    return _groups([v // self.views_per_video for v in views
                    if v < self.num_views])

  def make(self, b: int, groups) -> list:
    """[(clips, label)] per group: a video's views, its frames decoded once."""
    views = self._views(b)
    loaded = _read(self.source, np.array([g[0] for g in groups], int))
    out = []
    for (_, slots), ex in zip(groups, loaded):
      video = decode.shared_frames(ex["video"], len(slots))
      out.append(([self._view(video, views[s] % self.views_per_video, ex)
                   for s in slots], int(ex["label"])))
    return out

  def batch(self, b: int) -> dict:
    """Views b*B .. (b+1)*B-1 (this process's slice); padding has mask 0."""
    groups = self.plan(b)
    clips, labels = [None] * len(self.positions), [0] * len(self.positions)
    for (_, slots), (made, label) in zip(groups, self.make(b, groups)):
      for s, clip in zip(slots, made):
        clips[s], labels[s] = clip, label
    sound = self.spec.audio is not None
    videos = [c[0] if sound and c is not None else c for c in clips]
    real = [c for c in videos if c is not None]
    pad = (np.zeros_like(real[0]) if real else
           np.zeros(self.clip_shape, np.uint8))
    out = self.assemble(b, np.stack([pad if c is None else c for c in videos]),
                        labels)
    return with_audio(self.spec, out, [None if c is None else c[1]
                                       for c in clips]) if sound else out

  def assemble(self, b: int, videos: np.ndarray, labels) -> dict:
    """The batch from its stacked clips (padding: zeros) and labels."""
    mask = np.array([float(v < self.num_views) for v in self._views(b)],
                    np.float32)
    return {"video": videos, "label": np.array(labels, np.int32),
            "mask": mask}

  def _view(self, video, k: int, ex=None):
    spec, short = self.spec, self.spec.aug.test_resize_short
    height, width = _hw(video)
    rh, rw = augment.resized_dims(height, width, short)
    augment.check_crop(rh, rw, spec.test_crop,
                       "test_resize_short" if short else "",
                       "test_crop_size" if spec.test_crop_size else "crop_size")
    clip_j, crop_k = divmod(k, self.num_crops)
    start = test_starts(len(video), spec, self.num_clips)[clip_j]
    origin = crop_origins(rh, rw, spec.test_crop, self.num_crops)[crop_k]
    sampling = augment.test_sampling(height, width, short, origin,
                                     spec.test_crop)
    window = sampling.window(height, width)
    frames = read_frames(video, frame_indices(len(video), spec, start), window)
    if spec.audio is not None:
      return sampling.apply(frames, window), _audio_clip(spec, ex, start)
    return sampling.apply(frames, window)

  def iterate(self, num_workers: int = 4, prefetch: int = 4) -> Iterator[dict]:
    return _iterate(self, range(self.num_batches), num_workers, prefetch)


class Subset:
  """`max_videos` evenly spaced examples of a source (all if 0 or more than
  it has); keeps `paths`/`labels` aligned. For quick evaluations."""

  def __init__(self, source, max_videos: int):
    n = len(source)
    take = n if max_videos <= 0 or max_videos >= n else max_videos
    self.source = source
    self.indices = np.round(np.linspace(0, n - 1, take)).astype(int) if (
        take < n) else np.arange(n)
    for name in ("paths", "labels"):
      values = getattr(source, name, None)
      if values is not None:
        setattr(self, name, [values[int(i)] for i in self.indices])

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[int(self.indices[int(i)])]

  def __getitems__(self, indices) -> list:
    return _read(self.source, self.indices[np.asarray(indices, int)])


def _read(source, indices: np.ndarray) -> list:
  if hasattr(source, "__getitems__"):
    return source.__getitems__([int(i) for i in indices])
  return [source[int(i)] for i in indices]


def _iterate(loader, keys, num_workers: int, prefetch: int):
  procs = loader.spec.worker_processes
  if procs == 0:
    return _prefetched(loader.batch, keys, num_workers, prefetch)
  from vidjax.data import clip_workers  # noqa: PLC0415
  return clip_workers.iterate(loader, keys, procs, prefetch)


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
