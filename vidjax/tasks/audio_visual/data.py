"""In-memory audio-visual examples as fixed-shape batches for a jitted step.

A `Split` holds one split's arrays: video [N, T, H, W, 3] uint8, audio
[N, samples] float32 in [-1, 1], label [N] int (or [N, K] multi-hot).
Batches (numpy, one shape per config, so the steps compile once):

  video  [B, T, H, W, 3] uint8
  audio  [B, samples] float32
  label  [B] int32 | [B, K] float32
  valid  [B] bool          (eval batches: False on the padded last rows)

Objectives (`config.objective`):
* "classification": the split's labels;
* "sync" (Owens & Efros, ECCV 2018, "Audio-Visual Scene Analysis with
  Self-Supervised Multisensory Features", Sec. 3: aligned vs shifted audio
  of the same video): label 1 = aligned, 0 = the audio circularly shifted
  by s samples, s uniform in [min_shift, samples - min_shift]
  (`dataset.sync_min_shift_s`, 0.25 s by default: at least that far in
  either direction), each row aligned with probability 1/2. Training rows
  draw from (seed, step, row), test rows from (seed, example index): a
  resumed run and every evaluation see the same pairs.
* `dataset.audio_control="noise"` (the sync bar's control) replaces every
  waveform, train and test, by white noise of the same RMS.

`TrainLoader` follows the shared loop's contract (vidjax/tasks/base.py):
step s of epoch e takes rows [j B, (j + 1) B) of a permutation drawn from
(seed, e); this process builds only its rows of the global batch.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from vidjax.errors import VidjaxError

TRAIN_KEYS = ("video", "audio", "label")
EVAL_KEYS = ("video", "audio")


@dataclasses.dataclass
class Split:
  video: np.ndarray
  audio: np.ndarray
  label: np.ndarray

  def __len__(self) -> int:
    return len(self.label)


@dataclasses.dataclass(frozen=True)
class PairSpec:
  """How rows become examples (module docstring)."""
  objective: str = "classification"   # | "sync"
  min_shift: int = 4000               # samples
  audio_control: str = ""             # "" | "noise"
  seed: int = 0

  @classmethod
  def from_config(cls, config) -> "PairSpec":
    d = config.dataset
    rate = int(config.audio_frontend.sample_rate)
    return cls(config.get("objective", "classification"),
               int(round(float(d.get("sync_min_shift_s", 0.25)) * rate)),
               d.get("audio_control", ""), int(config.seed))


def check(config):
  """One-line errors for the data options (before anything is built)."""
  d = config.dataset
  objective = config.get("objective", "classification")
  if objective not in ("classification", "sync"):
    raise VidjaxError(f"config.objective={objective!r}: 'classification' "
                      "or 'sync'")
  if d.get("audio_control", "") not in ("", "noise"):
    raise VidjaxError(f"config.dataset.audio_control={d.audio_control!r}: "
                      "'' or 'noise'")
  samples = int(d.get("audio_samples", 0))
  if samples <= 0:
    raise VidjaxError(f"config.dataset.audio_samples={samples}: must be > 0 "
                      "(clip seconds x sample rate)")
  shift = float(d.get("sync_min_shift_s", 0.25)) * float(
      config.audio_frontend.sample_rate)
  if objective == "sync" and not 0 < shift < samples / 2:
    raise VidjaxError(f"config.dataset.sync_min_shift_s="
                      f"{d.get('sync_min_shift_s', 0.25)}: must be > 0 and "
                      "below half the clip")


def make_rows(split: Split, idx, spec: PairSpec, keys) -> dict:
  """Rows `idx` of `split` as a batch; `keys[r]` seeds row r's pair draw."""
  audio = split.audio[idx].astype(np.float32)
  label = split.label[idx]
  if spec.objective == "sync":
    n = audio.shape[1]
    label = np.zeros(len(idx), np.int32)
    for r, key in enumerate(keys):
      rng = np.random.default_rng(key)
      if rng.random() < 0.5:
        label[r] = 1
      else:
        audio[r] = np.roll(audio[r], int(rng.integers(
            spec.min_shift, n - spec.min_shift + 1)))
  if spec.audio_control == "noise":
    for r, key in enumerate(keys):
      rms = np.sqrt(np.mean(audio[r] ** 2))
      audio[r] = rms * np.random.default_rng(
          [*key, 9]).standard_normal(audio.shape[1]).astype(np.float32)
  label = label.astype(np.float32 if label.ndim == 2 else np.int32)
  return {"video": split.video[idx], "audio": audio, "label": label}


class TrainLoader:
  """Training batches, a function of (seed, step) (module docstring)."""

  def __init__(self, split: Split, spec: PairSpec, global_batch: int,
               process_index: int = 0, process_count: int = 1):
    self.split, self.spec = split, spec
    self.global_batch = int(global_batch)
    local = self.global_batch // process_count
    self.rows = slice(process_index * local, (process_index + 1) * local)

  def indices(self, step: int) -> np.ndarray:
    n, b, seed = len(self.split), self.global_batch, self.spec.seed
    if n < b:
      return np.random.default_rng([seed, 1, int(step)]).integers(0, n, b)
    epoch, j = divmod(int(step), n // b)
    order = np.random.default_rng([seed, 0, epoch]).permutation(n)
    return order[j * b:(j + 1) * b]

  def batch(self, step: int) -> dict:
    rows = np.arange(self.global_batch)[self.rows]
    idx = self.indices(step)[rows]
    keys = [[self.spec.seed, 2, int(step), int(r)] for r in rows]
    return make_rows(self.split, idx, self.spec, keys)

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """One ordered pass over the test split; the last batch padded (repeats
  of the last example, `valid` False), its pairs drawn from (seed, index)."""

  def __init__(self, split: Split, spec: PairSpec, batch_size: int):
    self.split, self.spec, self.batch_size = split, spec, int(batch_size)

  def iterate(self):
    n, b = len(self.split), self.batch_size
    for start in range(0, n, b):
      idx = np.arange(start, start + b)
      valid = idx < n
      idx = np.minimum(idx, n - 1)
      out = make_rows(self.split, idx, self.spec,
                      [[self.spec.seed, 3, int(i)] for i in idx])
      out["valid"] = valid
      yield out

  def batch(self, index: int) -> dict:
    for i, b in enumerate(self.iterate()):
      if i == index:
        return {k: b[k] for k in EVAL_KEYS}
    raise IndexError(index)
