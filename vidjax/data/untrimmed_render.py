"""Pure-numpy renderer of the `synthetic_untrimmed` dataset (no TF, no JAX).

One long video is a pure function of (seed, split, index) and the shape
settings, like `synthetic_render.render`, whose object drawing
(`render_params` for shape, colours, texture, background and noise;
`render_from_params` for the pixels) it reuses unchanged.

A video of T frames (uniform in [min_frames, max_frames]) shows ONE object
that idles with class-neutral jitter (mean-reverting AR(1) wobble of position,
angle and size, present in every frame, actions included) and performs 1-4
non-overlapping action instances, each one of the `synthetic_motion` motion
classes (translate right/left/up/down, rotate cw/ccw, grow, shrink) at that
dataset's speeds. Durations are log-uniform in [min_duration, max_duration]
frames (several temporal scales), gaps between instances are at least
`min_gap` frames. Instance k covers frames [start_k, end_k): the object
changes pose from frame start_k to end_k - 1 (d - 1 steps for d frames) and
holds it outside; the boundaries are exact by construction. A grow or shrink
that has no room left in the size range becomes the other one, so the label
and the pixels always agree.
"""
from __future__ import annotations

import numpy as np

from vidjax.data import synthetic_render as sr

NUM_CLASSES = len(sr.MOTION_NAMES)
LOG_SIZE_RANGE = (np.log(2.5), np.log(8.0))  # half-extent, px at 32 px
GROW_RATE = (0.0075, 0.022)   # log-size per frame: synthetic_motion's range
JITTER_RHO = 0.6              # AR(1) coefficient of the idle wobble
JITTER_STD = (0.35, np.deg2rad(1.5), 0.015)  # stationary std: px, rad, log


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
  split_id = sr.SPLIT_IDS.get(split, 100 + sum(map(ord, split)))
  return np.random.default_rng(
      np.random.SeedSequence([int(seed), split_id, int(index), 20]))


def plan(seed: int, split: str, index: int, *, min_frames: int = 256,
         max_frames: int = 512, min_instances: int = 1, max_instances: int = 4,
         min_duration: int = 8, max_duration: int = 96, min_gap: int = 4):
  """The video's length and instances, cheaply (no pixels).

  Returns:
    dict(num_frames=T, segments=int [n, 2] frames [start, end), labels=int [n],
    speeds=float [n] in [0, 1], rng=the generator for the trajectory).
  """
  rng = _rng(seed, split, index)
  t = int(rng.integers(min_frames, max_frames + 1))
  n = int(rng.integers(min_instances, max_instances + 1))
  hi = min(max_duration, (t - (n + 1) * min_gap) // n)
  if hi < min_duration:
    raise ValueError(f"{n} instances of >= {min_duration} frames do not fit "
                     f"in {t} frames")
  log_d = rng.uniform(np.log(min_duration), np.log(hi + 1), n)
  durations = np.clip(np.floor(np.exp(log_d)).astype(int), min_duration, hi)
  free = t - durations.sum() - (n + 1) * min_gap
  gaps = min_gap + np.floor(rng.dirichlet(np.ones(n + 1)) * free).astype(int)
  starts = np.cumsum(gaps[:n]) + np.concatenate(
      [[0], np.cumsum(durations)[:-1]])
  segments = np.stack([starts, starts + durations], 1)
  labels = rng.integers(NUM_CLASSES, size=n)
  speeds = rng.uniform(0.0, 1.0, n)
  return dict(num_frames=t, segments=segments.astype(np.int64),
              labels=labels.astype(np.int64), speeds=speeds, rng=rng)


def _jitter(rng, t: int, std: float) -> np.ndarray:
  sigma = std * np.sqrt(1 - JITTER_RHO ** 2)
  out = np.empty(t)
  out[0] = rng.normal(0, std)
  eps = rng.normal(0, sigma, t)
  for i in range(1, t):
    out[i] = JITTER_RHO * out[i - 1] + eps[i]
  return out


def trajectory(p: dict, res: int):
  """Per-frame cx, cy, angle, size of the planned video; may turn a grow into
  a shrink (or back) in p["labels"] when the size range has no room."""
  rng, t = p["rng"], p["num_frames"]
  px = res / 32.0
  lo, hi = LOG_SIZE_RANGE[0] + np.log(px), LOG_SIZE_RANGE[1] + np.log(px)
  step = np.zeros((4, t))  # per-frame change of x, y, angle, log-size
  logs = rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo))
  for k, ((a, b), speed) in enumerate(zip(p["segments"], p["speeds"])):
    m = int(p["labels"][k])
    n_steps = b - a - 1
    if m < 4:
      v = (sr.TRANSLATE_SPEED[0] + speed * np.ptp(sr.TRANSLATE_SPEED)) * px
      axis, sign = (0, 1.0) if m == 0 else (0, -1.0) if m == 1 else \
          (1, -1.0) if m == 2 else (1, 1.0)  # image y points down
      step[axis, a + 1:b] = sign * v
    elif m < 6:
      w = np.deg2rad(sr.ROTATE_SPEED[0] + speed * np.ptp(sr.ROTATE_SPEED))
      step[2, a + 1:b] = w if m == 4 else -w
    else:
      need = min(GROW_RATE[0] * n_steps, 0.45 * (hi - lo))
      room = {6: hi - logs, 7: logs - lo}
      if room[m] < need:
        m = 13 - m  # grow <-> shrink
        p["labels"][k] = m
      rate = GROW_RATE[0] + speed * np.ptp(GROW_RATE)
      delta = min(max(rate * n_steps, need), room[m])
      step[3, a + 1:b] = (delta if m == 6 else -delta) / max(n_steps, 1)
      logs += delta if m == 6 else -delta
  start_logs = logs - step[3].sum()
  pose = np.cumsum(step, 1)
  cx = rng.uniform(0, res) + pose[0] + _jitter(rng, t, JITTER_STD[0] * px)
  cy = rng.uniform(0, res) + pose[1] + _jitter(rng, t, JITTER_STD[0] * px)
  ang = rng.uniform(0, 2 * np.pi) + pose[2] + _jitter(rng, t, JITTER_STD[1])
  size = np.exp(start_logs + pose[3] + _jitter(rng, t, JITTER_STD[2]))
  return np.mod(cx, res), np.mod(cy, res), np.mod(ang, 2 * np.pi), size


def render(seed: int, split: str, index: int, *, res: int = 32, **plan_kw):
  """-> (video uint8 [T, res, res, 3], segments int [n, 2], labels int [n])."""
  p = plan(seed, split, index, **plan_kw)
  cx, cy, ang, size = trajectory(p, res)
  t = p["num_frames"]
  params = sr.render_params(seed, f"untrimmed_{split}", index, num_frames=t,
                            res=res)
  params.update(cx=cx, cy=cy, angle=ang, size=size)
  return sr.render_from_params(params, t, res), p["segments"], p["labels"]


def annotation(seed: int, split: str, index: int, **plan_kw):
  """(num_frames, segments [n, 2], labels [n]) without drawing any pixel."""
  p = plan(seed, split, index, **plan_kw)
  trajectory(p, 32)  # settles grow/shrink swaps (labels only)
  return p["num_frames"], p["segments"], p["labels"]
