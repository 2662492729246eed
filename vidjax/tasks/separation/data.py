"""Mixtures, their per-object stems, videos and object boxes, as fixed-shape
batches for the separation task's jitted steps.

A `SeparationSet` holds one split in memory (numpy):

  video    [N, T, H, W, 3] uint8   the clip (both objects visible)
  mixture  [N, S] float32 in [-1, 1] or int16 (as stored; rows() and
                                   waves() give float32)
  stems    [N, M, S] (same dtype)  each object's sound alone
  boxes    [N, M, T, 4] float32    each object's box per frame, normalised
                                   x1, y1, x2, y2

Mix-and-separate (Zhao et al., ECCV 2018, "The Sound of Pixels", Sec. 3.1):
the training mixture is a sum of sources whose separate tracks are known,
so every object's target is its own stem. `remix_gain` = g > 0 re-mixes
each training row as sum_k a_k stem_k + (mixture - sum_k stem_k) with gains
a_k drawn log-uniformly in [1/(1+g), 1+g] (new mixtures of the same
sources; the stems are scaled alike); 0 keeps the stored mixture.

Sources: `synthetic_av` (the embedded builder, config `separation`: both
objects sound; vidjax/data/av_loader.py reads it) and `separation_tones`
(`tones_set`: two coloured squares, each a harmonic tone whose pitch band
follows its colour; small and instant, for the tests).

Train batches are a function of (seed, step) (as vidjax/tasks/detection/
task.py's TrainLoader): step s of epoch e takes rows [jB, (j+1)B) of a
permutation drawn from (seed, e), so a resumed run replays the same
batches; each process builds only its rows.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from vidjax.audio.decode import from_int16
from vidjax.errors import VidjaxError

TRAIN_KEYS = ("video", "boxes", "mixture", "stems")
EVAL_KEYS = ("video", "boxes", "mixture")
SOURCES = ("synthetic_av", "separation_tones")


@dataclasses.dataclass
class SeparationSet:
  video: np.ndarray
  mixture: np.ndarray
  stems: np.ndarray
  boxes: np.ndarray
  sample_rate: int = 16000

  def __post_init__(self):
    n = len(self.video)
    for key in ("mixture", "stems", "boxes"):
      if len(getattr(self, key)) != n:
        raise VidjaxError(f"separation data: {key} has "
                          f"{len(getattr(self, key))} rows, video {n}")
    if self.stems.shape[-1] != self.mixture.shape[-1]:
      raise VidjaxError("separation data: stems and mixture lengths differ "
                        f"({self.stems.shape[-1]} vs {self.mixture.shape[-1]})")

  def __len__(self) -> int:
    return len(self.video)

  @property
  def num_sources(self) -> int:
    return self.stems.shape[1]

  def waves(self, key: str, idx) -> np.ndarray:
    """float32 waveforms of `key` (mixture | stems) at rows idx (int16
    storage read as int16 / 32767, vidjax.audio.decode.from_int16)."""
    x = getattr(self, key)[idx]
    return from_int16(x) if x.dtype == np.int16 else x.astype(np.float32)

  def rows(self, idx) -> dict:
    idx = np.asarray(idx)
    return {"video": self.video[idx],
            "boxes": self.boxes[idx].astype(np.float32),
            "mixture": self.waves("mixture", idx),
            "stems": self.waves("stems", idx)}


def remix(rows: dict, gain: float, rng: np.random.Generator) -> dict:
  """Rows re-mixed with random per-source gains (module docstring)."""
  if gain <= 0:
    return rows
  b, m = rows["stems"].shape[:2]
  a = np.exp(rng.uniform(-np.log1p(gain), np.log1p(gain), (b, m, 1)))
  stems = (rows["stems"] * a).astype(np.float32)
  rest = rows["mixture"] - rows["stems"].sum(1)
  return {**rows, "stems": stems,
          "mixture": (stems.sum(1) + rest).astype(np.float32)}


class TrainLoader:
  """Deterministic training batches in (seed, step) (module docstring)."""

  def __init__(self, dset: SeparationSet, seed: int, global_batch: int,
               process_index: int = 0, process_count: int = 1,
               remix_gain: float = 0.0):
    self.dset, self.seed, self.gain = dset, int(seed), float(remix_gain)
    self.global_batch = int(global_batch)
    local = self.global_batch // process_count
    self.rows = slice(process_index * local, (process_index + 1) * local)

  def indices(self, step: int) -> np.ndarray:
    n, b = len(self.dset), self.global_batch
    if n < b:
      return np.random.default_rng([self.seed, 1, int(step)]).integers(
          0, n, b)
    epoch, j = divmod(int(step), n // b)
    order = np.random.default_rng([self.seed, 0, epoch]).permutation(n)
    return order[j * b:(j + 1) * b]

  def batch(self, step: int) -> dict:
    rows = self.dset.rows(self.indices(step)[self.rows])
    rng = np.random.default_rng([self.seed, 2, int(step),
                                 self.rows.start or 0])
    return remix(rows, self.gain, rng)

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """One ordered pass over a split; the last batch padded with its final
  row (`valid` [B] marks the real ones, `index` [B] the set's rows)."""

  def __init__(self, dset: SeparationSet, batch_size: int,
               max_examples: int = 0):
    self.dset, self.batch_size = dset, int(batch_size)
    n = len(dset)
    self.count = min(n, max_examples) if max_examples > 0 else n
    self.order = np.linspace(0, n - 1, self.count).round().astype(int) \
        if self.count < n else np.arange(n)

  def iterate(self):
    for j in range(0, self.count, self.batch_size):
      idx = self.order[j:j + self.batch_size]
      valid = np.arange(self.batch_size) < len(idx)
      idx = np.concatenate([idx, np.full(self.batch_size - len(idx),
                                         idx[-1])])
      yield {**self.dset.rows(idx), "valid": valid, "index": idx}

  def batch(self, index: int) -> dict:
    for i, b in enumerate(self.iterate()):
      if i == index:
        return {k: b[k] for k in EVAL_KEYS}
    raise IndexError(index)


# ------------------------------------------------------------------ sources
def tones_set(n: int, seed: int, num_frames: int = 16, size: int = 32,
              sample_rate: int = 16000, seconds: float = 2.0,
              snr_db: float = 20.0) -> SeparationSet:
  """Two squares per clip, red (voice: 200-400 Hz, 3 harmonics) and blue
  (800-1600 Hz, 2 harmonics) at random places, each sounding in random
  100-300 ms bursts; background noise at `snr_db`. Deterministic in
  (seed, n)."""
  rng = np.random.default_rng([seed, n])
  s = int(sample_rate * seconds)
  t = np.arange(s) / sample_rate
  colours = np.asarray([[220, 40, 40], [40, 60, 220]], np.uint8)
  bands, harmonics = ((200.0, 400.0), (800.0, 1600.0)), (3, 2)
  out = {"video": np.zeros((n, num_frames, size, size, 3), np.uint8),
         "stems": np.zeros((n, 2, s), np.float32),
         "boxes": np.zeros((n, 2, num_frames, 4), np.float32)}
  mix = np.zeros((n, s), np.float32)
  for i in range(n):
    for k in range(2):
      side = int(rng.integers(6, 11))
      x0 = int(rng.integers(0, size // 2 - side)) + k * size // 2
      y0 = int(rng.integers(0, size - side))
      out["video"][i, :, y0:y0 + side, x0:x0 + side] = colours[k]
      out["boxes"][i, k] = np.asarray([x0, y0, x0 + side, y0 + side]) / size
      f0 = np.exp(rng.uniform(*np.log(bands[k])))
      tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h
                 for h in range(1, harmonics[k] + 1))
      gate = np.zeros(s)
      for _ in range(int(rng.integers(3, 6))):
        a = int(rng.integers(0, s - sample_rate // 3))
        gate[a:a + int(rng.integers(sample_rate // 10, sample_rate * 3 // 10))] = 1
      out["stems"][i, k] = 0.25 * tone * gate
    clean = out["stems"][i].sum(0)
    power = max(float(np.mean(clean ** 2)), 1e-8)
    mix[i] = clean + rng.standard_normal(s) * np.sqrt(power / 10 ** (snr_db / 10))
  return SeparationSet(out["video"], mix, out["stems"], out["boxes"],
                       sample_rate)


def synthetic_av(d) -> dict:
  """Both splits of config.dataset's synthetic_av build (config
  `separation`; vidjax/data/av_loader.py builds and reads it), int16 audio
  kept as stored (rows() converts)."""
  from vidjax.data import av_loader  # noqa: PLC0415 (TFDS import is slow)
  if d.get("config", "fusion") != "separation":
    raise VidjaxError(f"config.dataset.config={d.get('config')!r}: "
                      "separation trains on synthetic_av's 'separation' "
                      "config (both objects sound)")
  got = av_loader.load(d)
  return {split: SeparationSet(a["video"], a["audio"], a["stems"],
                               a["boxes"], int(got.sample_rate))
          for split, a in (("train", got.train.arrays),
                           ("test", got.test.arrays))}


def load(dataset_config) -> dict:
  """{"train", "test": SeparationSet} of config.dataset (module docstring)."""
  d = dataset_config
  name = d.get("name", "")
  if name == "separation_tones":
    n_train, n_test = int(d.get("train_size", 256)), int(d.get("test_size", 32))
    kw = dict(num_frames=int(d.get("num_frames", 16)),
              size=int(d.get("crop_size", 32)),
              seconds=int(d.get("clip_samples", 32000)) / 16000)
    return {"train": tones_set(n_train, 0, **kw),
            "test": tones_set(n_test, 1, **kw)}
  if name == "synthetic_av":
    return synthetic_av(d)
  raise VidjaxError(f"config.dataset.name={name!r}: separation datasets are "
                    f"{', '.join(SOURCES)} (the MUSIC-style solo-video layout "
                    "of configs/sound_of_pixels.py:music has no builder yet)")
