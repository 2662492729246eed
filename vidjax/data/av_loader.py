"""`synthetic_av` in memory (and AudioSet / VGGSound builds read per batch),
as fixed-shape batches for a jitted step.

`load(config.dataset)` builds (once) and reads both splits of the config's
`synthetic_av` build into numpy arrays (`AVSplit`, ~100 KB per example as
stored: the default 2048 + 256 examples take ~0.56 GB in memory, int16
audio).
`TrainLoader.batch(step)` / `EvalLoader.iterate()` follow the shared loop's
contract (vidjax/tasks/base.py): a training batch is a pure function of
(seed, step), the same for any process count (each process builds its rows
of the global batch), so a resumed run replays the same batches.

Batch (B rows):

  video      uint8 [B, T, H, W, 3]
  audio      float32 [B, N] waveform in [-1, 1] (int16 / 32767), or
             [B, frames, mels] log-mel (`features="log_mel"`, the
             vidjax.audio.frontend preset `log_mel`, default "ast_kaldi")
  stems      float32 [B, 2, N] each object's sound (waveform, shifted with
             the audio); audio == stems.sum(1) + noise
  label      int32 [B]; boxes float32 [B, 2, T, 4]; sounding bool [B, 2];
  direction  int32 [B, 2]; colour, shape int32 [B, 2]; index int32 [B]
  labels     float32 [B, K] multi-hot (AudioSet / VGGSound builds only;
             they have no stems, boxes, sounding, direction, colour, shape)
  aligned    int32 [B] 1 = audio in sync, 0 = shifted (always 1 without sync)
  shift      int32 [B] the circular shift applied to audio and stems, in
             samples (0 when aligned)
  valid      bool [B] (evaluation only: False on padding rows)

Synchronisation pairs (Owens & Efros, ECCV 2018: "are these frames and this
audio aligned?"): with `sync=True` each training row is shifted with
probability 1/2 by a circular shift `np.roll(audio, s)` of a whole number
k of video frames, s = k x num_samples / num_frames samples (k x
sample_rate / fps: 2000 at 16 kHz and 8 fps; rounded to the nearest sample
only where a frame is not a whole number of samples), k uniform over
[ceil(min_shift x fps), T - ceil(min_shift x fps)] so every onset moves
>= min_shift (default 0.25 s = 2 frames) in either direction; rows, choices
and shifts are drawn from (seed, step, row). Evaluation with sync takes every
test example twice, aligned then shifted (k drawn from (seed, index)):
exactly balanced, chance 0.5. Whole frames, not whole samples: synthetic_av
puts every onset on a frame start (av_render), so a shift off the frame grid
would let the audio alone tell a shifted track (its onsets off the grid),
with no need to look at the video. Known remaining audio-only cue (#22):
aligned synthetic clips have onsets only in frames 1..T-3 (bursts <= 150 ms,
so frames 0, T-2 and T-1 start no event), while a circular shift puts an
onset in frame 0, T-2 or T-1 in 57% of shifted test pairs (a burst moved to
frame T-1 may wrap past the seam into frame 0). The `which` build has none:
its onsets and bursts are circular (av_render), so an aligned track looks
the same as a circularly shifted one to the audio alone. Shifts that put
every sounding onset on a flash frame are not drawn (`draw_shift`).

Config (config.dataset): name "synthetic_av", config (fusion | separation |
factorised | which), data_dir, any SyntheticAvConfig field as an override
(train_examples, test_examples, seed, ...), audio.features (waveform |
log_mel), audio.log_mel (preset), sync (bool), sync_min_shift (seconds),
hflip (bool: training rows mirrored left <-> right with probability 1/2
drawn from (seed, step), the label permuted by the data's
`flip_permutation`: av_render's for synthetic_av, none for AudioSet /
VGGSound).
config.dataset.num_frames, fps and sample_rate are SyntheticAvConfig fields
too: a clip is the whole stored example, so a value other than the named
config's (16, 8.0, 16000) renders a different build, not a sub-clip
(fps = 0, the default config's "native", keeps the build's 8).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from vidjax.audio.decode import from_int16
from vidjax.data.av_pairs import (  # noqa: F401  (av_loader's API)
    draw_shift, mirror, shift_frames, sync_timing)
from vidjax.errors import VidjaxError

ARRAYS = ("video", "audio", "stems", "boxes", "sounding", "direction",
          "colour", "shape", "f0", "flash", "onset_frames", "onset_samples",
          "snr_db", "label", "index")
ROW_KEYS = ("label", "boxes", "sounding", "direction", "colour", "shape",
            "index")


@dataclasses.dataclass
class AVSplit:
  """One split's examples as stacked arrays (synthetic_av's features)."""
  arrays: dict

  def __len__(self) -> int:
    return len(self.arrays["label"])

  def __getitem__(self, key: str) -> np.ndarray:
    return self.arrays[key]

  @property
  def num_samples(self) -> int:
    return int(self.arrays["audio"].shape[1])

  @property
  def num_frames(self) -> int:
    return int(self.arrays["video"].shape[1])

  def take(self, idx) -> dict:
    return {k: v[idx] for k, v in self.arrays.items()}

  @classmethod
  def from_source(cls, source, skip=()) -> "AVSplit":
    keys = [k for k in ARRAYS if k not in skip]
    rows = [source[i] for i in range(len(source))]
    return cls({k: np.stack([np.asarray(r[k]) for r in rows])
                for k in keys})


class SourceSplit:
  """A random-access source (an AudioSet / VGGSound build, av_clips.py) read
  row by row for each batch: too big to hold in memory."""

  KEYS = ("video", "audio", "labels", "label", "num_frames", "has_audio")

  def __init__(self, source):
    self.source = source
    first = source[0] if len(source) else None
    self.num_samples = (int(np.asarray(first["audio"]).shape[0])
                        if first is not None else 0)
    self.num_frames = (int(np.asarray(first["video"]).shape[0])
                       if first is not None else 0)

  def __len__(self) -> int:
    return len(self.source)

  def take(self, idx) -> dict:
    rows = [self.source[int(i)] for i in idx]
    out = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in self.KEYS}
    out["index"] = np.asarray(idx, np.int32)
    return out


@dataclasses.dataclass
class AVData:
  train: AVSplit
  test: AVSplit
  class_names: Sequence[str]
  num_classes: int
  sample_rate: int
  fps: float
  builder: Any = None
  multilabel: bool = False   # AudioSet: batch["labels"] multi-hot targets
  report: Any = None         # AudioSet / VGGSound: the build report
  flip_permutation: Any = None  # class j of a mirrored clip = perm[j]


@dataclasses.dataclass(frozen=True)
class AVSpec:
  """How batches are made (config.dataset, checked by `from_config`)."""
  sample_rate: int = 16000
  features: str = "waveform"
  log_mel: str = "ast_kaldi"
  sync: bool = False
  min_shift: float = 0.25   # seconds
  hflip: bool = False       # training rows mirrored with probability 1/2

  @classmethod
  def from_config(cls, d, sample_rate: int = 16000,
                  duration: float = 2.0) -> "AVSpec":
    a = d.get("audio", None) or {}
    features = a.get("features", "waveform")
    name = a.get("log_mel", "ast_kaldi")
    if features not in ("waveform", "log_mel"):
      raise VidjaxError("config.dataset.audio.features must be 'waveform' or "
                        f"'log_mel', got {features!r}")
    if features == "log_mel":
      from vidjax.audio import frontend  # noqa: PLC0415
      if name not in frontend.PRESETS:
        raise VidjaxError(f"config.dataset.audio.log_mel={name!r} is not a "
                          "front-end preset (known: "
                          f"{sorted(frontend.PRESETS)})")
      if frontend.PRESETS[name].sample_rate != sample_rate:
        raise VidjaxError(
            f"config.dataset.audio.log_mel={name!r} expects "
            f"{frontend.PRESETS[name].sample_rate} Hz; synthetic_av is "
            f"{sample_rate} Hz")
    shift = float(d.get("sync_min_shift", 0.25))
    if not 0 < shift <= duration / 2:
      raise VidjaxError(f"config.dataset.sync_min_shift={shift}: must be in "
                        f"(0, {duration / 2}] seconds (half the clip)")
    return cls(int(sample_rate), features, name, bool(d.get("sync", False)),
               shift, bool(d.get("hflip", False)))

  def features_of(self, waves: np.ndarray) -> np.ndarray:
    if self.features == "waveform":
      return waves
    from vidjax.audio import frontend  # noqa: PLC0415
    return np.asarray(frontend.log_mel(waves, frontend.PRESETS[self.log_mel]),
                      np.float32)


def make_batch(split, indices, spec: AVSpec, shifts=None) -> dict:
  """Rows `indices` of `split` (AVSplit or SourceSplit); shifts [B] int
  samples (0: aligned). Keys the split lacks (stems, boxes, ... for
  AudioSet / VGGSound; labels for synthetic_av) are left out."""
  idx = np.asarray(indices, np.int64)
  shifts = (np.zeros(len(idx), np.int64) if shifts is None
            else np.asarray(shifts, np.int64))
  rows = split.take(idx)
  audio = from_int16(rows["audio"])
  stems = from_int16(rows["stems"]) if "stems" in rows else None
  for r, s in enumerate(shifts):
    if s:
      audio[r] = np.roll(audio[r], s)
      if stems is not None:
        stems[r] = np.roll(stems[r], s, axis=-1)
  out = {"video": rows["video"], "audio": spec.features_of(audio),
         "aligned": (shifts == 0).astype(np.int32),
         "shift": shifts.astype(np.int32)}
  if stems is not None:
    out["stems"] = stems
  for k in ROW_KEYS:
    if k in rows:
      out[k] = rows[k]
  if "labels" in rows:  # AudioSet / VGGSound: multi-hot targets
    out["labels"] = rows["labels"].astype(np.float32)
  out["label"] = out["label"].astype(np.int32)
  out["index"] = out["index"].astype(np.int32)
  return out


class TrainLoader:
  """Step s of epoch e takes rows [j B, (j + 1) B) of a permutation drawn
  from (seed, e) (B > #examples: B draws with replacement from (seed, s));
  sync choices and shifts from (seed, s, row). This process builds only its
  rows of the global batch."""

  def __init__(self, split: AVSplit, spec: AVSpec, seed: int,
               global_batch: int, process_index: int = 0,
               process_count: int = 1, flip_permutation=None):
    if len(split) == 0:
      raise VidjaxError("the training split has no examples")
    if global_batch % process_count:
      raise VidjaxError(f"config.batch_size={global_batch} must be a "
                        f"multiple of the process count {process_count}")
    self.split, self.spec, self.seed = split, spec, int(seed)
    self.global_batch = int(global_batch)
    local = self.global_batch // process_count
    self.rows = range(process_index * local, (process_index + 1) * local)
    self.frames = shift_frames(split, spec) if spec.sync else None
    self.flip_permutation = flip_permutation

  def indices(self, step: int) -> np.ndarray:
    n, b = len(self.split), self.global_batch
    if n < b:
      return np.random.default_rng([self.seed, 1, int(step)]).integers(0, n, b)
    epoch, j = divmod(int(step), n // b)
    order = np.random.default_rng([self.seed, 0, epoch]).permutation(n)
    return order[j * b:(j + 1) * b]

  def shifts(self, step: int) -> np.ndarray:
    """[global B] samples (0: aligned) for sync, else zeros."""
    out = np.zeros(self.global_batch, np.int64)
    if self.spec.sync:
      idx = self.indices(step)
      for r in range(self.global_batch):
        rng = np.random.default_rng([self.seed, 3, int(step), r])
        if rng.uniform() < 0.5:
          out[r] = draw_shift(rng, self.frames,
                              sync_timing(self.split, int(idx[r])))
    return out

  def flips(self, step: int) -> np.ndarray:
    """[global B] bool: rows mirrored (spec.hflip), from (seed, step)."""
    if not self.spec.hflip:
      return np.zeros(self.global_batch, bool)
    rng = np.random.default_rng([self.seed, 5, int(step)])
    return rng.uniform(size=self.global_batch) < 0.5

  def batch(self, step: int) -> dict:
    rows = np.asarray(self.rows)
    out = make_batch(self.split, self.indices(step)[rows], self.spec,
                     self.shifts(step)[rows])
    return mirror(out, self.flips(step)[rows], self.flip_permutation)

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """One ordered pass over the test split (with sync: each example aligned,
  then shifted), in batches of `batch_size` padded with the last row
  (`valid` marks the real ones); this process's rows of each batch."""

  def __init__(self, split: AVSplit, spec: AVSpec, batch_size: int,
               seed: int, process_index: int = 0, process_count: int = 1):
    if len(split) == 0:
      raise VidjaxError("the test split has no examples")
    self.split, self.spec = split, spec
    self.batch_size, self.seed = int(batch_size), int(seed)
    n = len(split)
    if spec.sync:
      frames = shift_frames(split, spec)
      self.rows = np.repeat(np.arange(n), 2)
      self.row_shifts = np.array(
          [0 if k % 2 == 0 else draw_shift(np.random.default_rng(
              [self.seed, 4, int(i)]), frames, sync_timing(split, int(i)))
           for k, i in enumerate(self.rows)], np.int64)
    else:
      self.rows, self.row_shifts = np.arange(n), np.zeros(n, np.int64)
    self.num_batches = -(-len(self.rows) // self.batch_size)
    local = self.batch_size // process_count
    self.local = slice(process_index * local, (process_index + 1) * local)

  def batch(self, b: int) -> dict:
    lo, hi = b * self.batch_size, min((b + 1) * self.batch_size,
                                      len(self.rows))
    if not 0 <= b < self.num_batches:
      raise IndexError(b)
    pos = np.arange(lo, lo + self.batch_size)
    valid = pos < hi
    pos = np.minimum(pos, hi - 1)[self.local]
    out = make_batch(self.split, self.rows[pos], self.spec,
                     self.row_shifts[pos])
    out["valid"] = valid[self.local]
    return out

  def iterate(self):
    for b in range(self.num_batches):
      yield self.batch(b)


def builder_overrides(d) -> dict:
  """SyntheticAvConfig fields set in config.dataset that differ from the
  named config's (e.g. train_examples=64)."""
  from vidjax.data import synthetic_av as sa  # noqa: PLC0415
  skip = {"name", "version", "release_notes", "supported_versions",
          "description", "tags", "kind"}
  base = sa.make_config(d.get("config", "fusion") or "fusion")
  out = {}
  for f in dataclasses.fields(sa.SyntheticAvConfig):
    if f.name in skip or f.name not in d or d[f.name] is None:
      continue
    if f.name == "fps" and not d[f.name]:
      continue  # config.dataset.fps = 0 means "native": the build's own
    value = type(getattr(base, f.name))(d[f.name])
    if value != getattr(base, f.name):
      out[f.name] = value
  return out


def load(dataset_config, skip=()) -> AVData:
  """Both splits of config.dataset's synthetic_av build, in memory (but the
  arrays named in `skip`, e.g. ("stems",) where no step reads them: 64 KB
  an example); or of an AudioSet / VGGSound build
  (vidjax/data/audioset.py), read per batch (SourceSplit)."""
  d = dataset_config
  name = d.get("name", "synthetic_av")
  if name in ("audioset", "vggsound"):
    from vidjax.data import audioset  # noqa: PLC0415
    got = audioset.load(d)
    c = got.builder.builder_config
    seconds = c.num_samples / float(got.builder.settings.sample_rate)
    return AVData(train=SourceSplit(got.train), test=SourceSplit(got.test),
                  class_names=list(got.class_names),
                  num_classes=len(got.class_names),
                  sample_rate=got.builder.settings.sample_rate,
                  fps=c.num_frames / seconds, builder=got.builder,
                  multilabel=got.multilabel, report=got.report)
  if name != "synthetic_av":
    raise VidjaxError(f"config.dataset.name={name!r}: the audio-visual "
                      "loader reads synthetic_av, audioset and vggsound")
  from vidjax.data import synthetic_av as sa  # noqa: PLC0415 - TFDS is slow
  builder = sa.load_builder(d.get("config", "fusion") or "fusion",
                            data_dir=d.get("data_dir", None) or None,
                            **builder_overrides(d))
  c = builder.builder_config
  names = list(c.class_names)
  from vidjax.data import av_render  # noqa: PLC0415
  return AVData(
      train=AVSplit.from_source(builder.as_data_source("train"), skip),
      test=AVSplit.from_source(builder.as_data_source("test"), skip),
      class_names=names, num_classes=len(names), sample_rate=c.sample_rate,
      fps=c.fps, builder=builder,
      flip_permutation=av_render.flip_permutation(c.kind))
