"""Synchronisation pairs and mirroring of audio-visual batches (issue #22),
for vidjax/data/av_loader.py: which circular shifts make a negative
(Owens & Efros, ECCV 2018: the same clip's audio shifted by whole video
frames) and how a left <-> right mirrored row changes its labels.
"""
from __future__ import annotations

import numpy as np

from vidjax.errors import VidjaxError


def shift_frames(split, spec) -> tuple:
  """(num_samples, num_frames, k_lo, k_hi): the split's clip length in
  samples and video frames and the allowed sync shifts in whole frames,
  k in [k_lo, k_hi], k_lo = ceil(min_shift x sample_rate / frame samples)."""
  n, t = int(split.num_samples), int(split.num_frames)
  lo = int(round(spec.min_shift * spec.sample_rate))
  k_lo = max(1, -(-lo * t // n))
  if k_lo > t - k_lo:
    raise VidjaxError(f"config.dataset.sync_min_shift={spec.min_shift}: "
                      f"{k_lo} of the clip's {t} frames leaves no shift of "
                      "whole frames that moves the audio that far both ways")
  return n, t, k_lo, t - k_lo


def sync_timing(split, i: int):
  """(onset frames of the sounding objects, frames where any object
  flashes) of synthetic_av example i, or None for a split without them
  (AudioSet / VGGSound)."""
  arrays = getattr(split, "arrays", None)
  if not arrays or "flash" not in arrays:
    return None
  sounding = np.asarray(arrays["sounding"][i], bool)
  onsets = np.asarray(arrays["onset_frames"][i])[sounding].ravel()
  return onsets, np.flatnonzero(np.asarray(arrays["flash"][i]).any(0))


def draw_shift(rng: np.random.Generator, frames: tuple,
               timing=None) -> int:
  """A circular shift of k whole video frames (`frames` from `shift_frames`,
  k uniform in [k_lo, k_hi]), in samples: k x num_samples / num_frames.
  With `timing` (from `sync_timing`), shifts that move EVERY sounding onset
  onto a flash frame are left out: such a track lines up with the flashes
  as an aligned one does (e.g. onto the silent twin's), so it is no
  negative. (The same draw as without them when none is left out.)"""
  n, t, k_lo, k_hi = frames
  ks = np.arange(k_lo, k_hi + 1)
  if timing is not None and len(timing[0]):
    onsets, flashes = timing
    moved = (onsets[None, :] + ks[:, None]) % t          # [shifts, onsets]
    keep = ~np.isin(moved, flashes).all(axis=1)
    ks = ks[keep] if keep.any() else ks
  k = int(ks[rng.integers(len(ks))])
  return int(round(k * n / t))


def mirror(out: dict, flips, perm) -> dict:
  """Rows where `flips` mirrored left <-> right in place: the video, the
  boxes, the direction ids (right 0 <-> left 1) and the label (class j of
  a mirrored clip = perm[j]; multi-hot labels are left as they are: no
  AudioSet / VGGSound class depends on the side). The audio is mono."""
  flips = np.asarray(flips, bool)
  if not flips.any():
    return out
  out["video"] = out["video"].copy()
  out["video"][flips] = out["video"][flips][:, :, :, ::-1]
  if "boxes" in out:
    b = out["boxes"][flips]
    out["boxes"] = out["boxes"].copy()
    out["boxes"][flips] = np.stack([1 - b[..., 2], b[..., 1], 1 - b[..., 0],
                                    b[..., 3]], -1)
  if "direction" in out:
    d = out["direction"].copy()
    d[flips] = np.array([1, 0, 2, 3])[d[flips]]
    out["direction"] = d
  if perm is not None and "labels" not in out:
    label = out["label"].copy()
    label[flips] = np.asarray(perm)[label[flips]]
    out["label"] = label
  return out
