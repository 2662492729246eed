"""The audio-visual task's batches: the in-memory `synthetic_av` loader
(vidjax/data/av_loader.py) reduced to what the steps take.

Batches (numpy, one shape per config, so the steps compile once):

  video  [B, T, H, W, 3] uint8
  audio  [B, samples] float32 waveform in [-1, 1] (the log-mel is taken
         inside the jitted step, train_step.py)
  label  [B] int32: the dataset's label ("classification") or, for
         "sync", 1 = aligned / 0 = shifted
  valid  [B] bool (evaluation only: False on the padded last rows)

Objectives (`config.objective`):
* "classification": the dataset's labels;
* "sync" (Owens & Efros, ECCV 2018, "Audio-Visual Scene Analysis with
  Self-Supervised Multisensory Features", Sec. 3: aligned vs shifted audio
  of the same video): the loader's pairs (`config.dataset.sync` on):
  training rows shifted with probability 1/2 by a circular shift of at
  least `dataset.sync_min_shift` s (0.25) either way, drawn from (seed,
  step, row); every test example once aligned and once shifted (chance 0.5).
* "voice" (the AST sanity task): the colour class of the sounding object
  (synthetic_av's colour fixes the voice's pitch band); audio alone tells.
* `dataset.audio_control="noise"` (the sync bar's control) replaces every
  waveform, train and test, by white noise of the same RMS, drawn from
  (seed, step or eval batch, row).

The wrapped loaders keep av_loader's contract (a training batch is a pure
function of (seed, step); each process builds its rows).
"""
from __future__ import annotations

import numpy as np

from vidjax.errors import VidjaxError

TRAIN_KEYS = ("video", "audio", "label")
EVAL_KEYS = ("video", "audio")
OBJECTIVES = ("classification", "sync", "voice")


def check(config):
  """One-line errors for the data options (before anything is built)."""
  d = config.dataset
  objective = config.get("objective", "classification")
  if objective not in OBJECTIVES:
    raise VidjaxError(f"config.objective={objective!r}: one of "
                      f"{', '.join(OBJECTIVES)}")
  if bool(d.get("sync", False)) != (objective == "sync"):
    raise VidjaxError(f"config.dataset.sync={d.get('sync', False)}: must be "
                      f"{objective == 'sync'} for config.objective="
                      f"{objective!r}")
  if d.get("audio_control", "") not in ("", "noise"):
    raise VidjaxError(f"config.dataset.audio_control={d.audio_control!r}: "
                      "'' or 'noise'")
  a = d.get("audio", None) or {}
  if a.get("features", "waveform") != "waveform":
    raise VidjaxError("config.dataset.audio.features: the audio_visual task "
                      "takes waveforms ('waveform'; its log-mel is "
                      "config.audio_frontend, taken in the step)")
  samples = int(d.get("audio_samples", 0))
  if samples <= 0:
    raise VidjaxError(f"config.dataset.audio_samples={samples}: must be > 0 "
                      "(clip seconds x sample rate)")


def select(batch: dict, objective: str, control: str, key) -> dict:
  """The loader's batch -> the task's keys (module docstring)."""
  if objective == "sync":
    label = batch["aligned"]
  elif objective == "voice":  # the sounding object's colour class
    label = np.take_along_axis(batch["colour"], np.argmax(
        batch["sounding"], axis=1)[:, None], axis=1)[:, 0]
  else:
    label = batch["label"]
  audio = np.asarray(batch["audio"], np.float32)
  if control == "noise":
    rms = np.sqrt(np.mean(audio ** 2, axis=-1, keepdims=True))
    audio = (rms * np.random.default_rng(key).standard_normal(
        audio.shape)).astype(np.float32)
  out = {"video": batch["video"], "audio": audio,
         "label": np.asarray(label, np.int32)}
  if "valid" in batch:
    out["valid"] = batch["valid"]
  return out


class TrainLoader:
  """av_loader.TrainLoader's batches, reduced (`select`)."""

  def __init__(self, inner, config):
    self.inner, self.seed = inner, int(config.seed)
    self.objective = config.get("objective", "classification")
    self.control = config.dataset.get("audio_control", "")
    self.first_row = inner.rows[0] if len(inner.rows) else 0

  def batch(self, step: int) -> dict:
    return select(self.inner.batch(step), self.objective, self.control,
                  [self.seed, 7, int(step), int(self.first_row)])

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """av_loader.EvalLoader's batches, reduced (`select`; `valid` kept)."""

  def __init__(self, inner, config):
    self.inner, self.seed = inner, int(config.seed)
    self.objective = config.get("objective", "classification")
    self.control = config.dataset.get("audio_control", "")

  def iterate(self):
    for b in range(self.inner.num_batches):
      yield select(self.inner.batch(b), self.objective, self.control,
                   [self.seed, 8, b])

  def batch(self, index: int) -> dict:
    got = select(self.inner.batch(index), self.objective, self.control,
                 [self.seed, 8, int(index)])
    return {k: got[k] for k in EVAL_KEYS}
