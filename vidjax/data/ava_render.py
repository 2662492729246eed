"""Pure-numpy renderer of the `synthetic_ava` dataset (no TF, no JAX).

AVA (Gu et al., CVPR 2018) labels every person in a keyframe with a box and
the atomic actions it performs over the surrounding seconds. Here a video is
a pure function of (seed, split, index) and the shape settings:

* 2-3 "actors" (`min_actors`..`max_actors`), each in its own quadrant of the
  frame (2x2 grid, cells drawn without replacement), so boxes never overlap.
  An actor is a square patch of side S in [0.30, 0.44] x res, drawn by
  `synthetic_render.render_from_params` (shape, colours, texture, patch
  background, noise from `render_params`) with the object moving on the
  patch's torus along `synthetic_render.sample_trajectory` of its motion
  class: speed 0.5-1.5 px / frame at S = 32, as synthetic_motion; log-size
  stretched x SIZE_STRETCH = 2 about its middle, then x SIZE_SCALE = 1.25,
  so the half-extent spans 2.7-10.6 px at S = 32 (a factor 4, where
  synthetic_motion's spans 2) and grow / shrink, whose log-linear ramp
  spans the whole 64-frame video, change size by 12-39% within a 16-frame
  clip, as synthetic_motion's 32-frame ramps do. The same monotone map for
  every class keeps the size marginal class-independent. The patch
  drifts slowly across its cell (linear path between two uniform
  positions, rounded to whole pixels, <= 0.25 px / frame): the box moves
  with the actor and always holds every pixel drawn for it.
* Actions: each actor performs one of the 8 `synthetic_motion` motion classes
  (translate right / left / up / down, rotate cw / ccw, grow, shrink), all
  different within a video, for the whole video. With probability
  `flash_prob` (0.4) it ALSO "flashes" (class 8, multi-label): its object's
  contrast alternates between full and 0.5x every 4 frames (period 8, random
  phase). Actors that do not flash keep full or 0.5x contrast (50 / 50) all
  video long, so one frame shows the same contrast distribution either way.
  As in synthetic_motion, every per-frame marginal (position, angle, size,
  shape, colours, contrast) is class-independent: only motion tells the
  labels, so a single-frame model is at chance.
* Keyframes every `keyframe_every` (8) frames, from frame 8 to T - 8, so a
  16-frame clip centred on any keyframe lies inside the video. The nominal
  frame rate is fps = keyframe_every, so keyframe k * 8 is at the whole
  second k, like AVA's 1 Hz keyframes (timestamp = frame / fps).
* Ground truth per keyframe per actor: its box (normalised x1, y1, x2, y2,
  exact multiples of 1 / res) and labels.
* "Detector" boxes per keyframe (seeded apart from the pixels): each actor is
  missed with probability MISS_RATE, else found with every coordinate moved
  by N(0, (JITTER x side)^2) and clipped to the frame, score U(0.8, 1);
  plus Poisson(FP_RATE) false positives per keyframe (random squares of side
  0.15-0.4, score U(0.05, 0.9), so some pass AVA's 0.8 threshold). Measured
  IoU of the found boxes with their GT (tests/test_synthetic_ava.py, 300
  videos): mean 0.86, 5th-95th percentile 0.77-0.94, all >= 0.5.
"""
from __future__ import annotations

import numpy as np

from vidjax.data import synthetic_render as sr

ACTION_NAMES = sr.MOTION_NAMES + ("flashing",)
NUM_ACTIONS = len(ACTION_NAMES)
FLASH = NUM_ACTIONS - 1
# A horizontal flip mirrors left <-> right and clockwise <-> anticlockwise.
FLIP_PERMUTATION = (1, 0, 2, 3, 5, 4, 6, 7, 8)
BOX_SIDE = (0.30, 0.44)       # patch side, fraction of the frame
SIZE_STRETCH = 2.0            # log-size range vs synthetic_motion's
SIZE_SCALE = 1.25             # object half-extent vs synthetic_motion's
MAX_DRIFT = 0.25              # px / frame (per axis, at most)
DIM = 0.5                     # contrast of a dim frame
FLASH_PERIOD = 8              # frames: 4 full, 4 dim
MISS_RATE = 0.05
JITTER = 0.05                 # std of each coordinate, fraction of the side
FP_RATE = 0.3                 # false positives per keyframe (Poisson mean)
FP_SIDE = (0.15, 0.4)
TRUE_SCORE = (0.8, 1.0)
FP_SCORE = (0.05, 0.9)


def _seq(seed: int, split: str, index: int, stream: int):
  split_id = sr.SPLIT_IDS.get(split, 100 + sum(map(ord, split)))
  return np.random.SeedSequence([int(seed), split_id, int(index), 21, stream])


def keyframes(num_frames: int, every: int) -> np.ndarray:
  """Keyframe frame indices: every, 2 * every, ..., <= num_frames - every."""
  return np.arange(every, num_frames - every + 1, every, dtype=np.int64)


def plan(seed: int, split: str, index: int, *, num_frames: int = 64,
         res: int = 64, min_actors: int = 2, max_actors: int = 3,
         flash_prob: float = 0.4) -> list[dict]:
  """The actors of one video, cheaply (no pixels): per actor its motion
  class, flashing flag, multi-hot labels [NUM_ACTIONS], side S (px) and
  per-frame top-left corner x0, y0 (int px, [T])."""
  rng = np.random.default_rng(_seq(seed, split, index, 0))
  n = int(rng.integers(min_actors, max_actors + 1))
  cells = rng.permutation(4)[:n]
  motions = rng.permutation(len(sr.MOTION_NAMES))[:n]
  cell = res // 2
  t = np.arange(num_frames) / max(num_frames - 1, 1)
  actors = []
  for k in range(n):
    side = int(rng.integers(round(BOX_SIDE[0] * res),
                            round(BOX_SIDE[1] * res) + 1))
    slack = cell - side
    reach = min(slack, int(MAX_DRIFT * (num_frames - 1)))
    corner = []
    for origin in (cell * (cells[k] % 2), cell * (cells[k] // 2)):
      a = rng.uniform(0, slack)
      b = np.clip(a + rng.uniform(-reach, reach), 0, slack)
      corner.append(origin + np.rint(a + (b - a) * t).astype(np.int64))
    flash = bool(rng.uniform() < flash_prob)
    labels = np.zeros(NUM_ACTIONS, np.uint8)
    labels[motions[k]] = 1
    labels[FLASH] = flash
    actors.append(dict(motion=int(motions[k]), flash=flash, labels=labels,
                       side=side, x0=corner[0], y0=corner[1]))
  return actors


def contrast(rng, flash: bool, num_frames: int) -> np.ndarray:
  """Per-frame object contrast [T]: a square wave for a flashing actor, a
  constant (full or DIM, 50 / 50) otherwise: the same marginal per frame."""
  if flash:
    phase = int(rng.integers(FLASH_PERIOD))
    on = ((np.arange(num_frames) + phase) % FLASH_PERIOD) < FLASH_PERIOD // 2
    return np.where(on, 1.0, DIM)
  return np.full(num_frames, 1.0 if rng.uniform() < 0.5 else DIM)


def gt_boxes(actors: list[dict], frames, res: int) -> np.ndarray:
  """Normalised x1, y1, x2, y2 [len(frames), n_actors, 4] float32."""
  f = np.asarray(frames, np.int64)
  out = np.stack([np.stack([a["x0"][f], a["y0"][f], a["x0"][f] + a["side"],
                            a["y0"][f] + a["side"]], -1) for a in actors], 1)
  return (out / res).astype(np.float32)


def render(seed: int, split: str, index: int, *, num_frames: int = 64,
           res: int = 64, **plan_kw):
  """-> (video uint8 [T, res, res, 3], actors: the `plan` list)."""
  actors = plan(seed, split, index, num_frames=num_frames, res=res, **plan_kw)
  rng = np.random.default_rng(_seq(seed, split, index, 1))
  grid = np.arange(res, dtype=np.float32) - res / 2
  ga = rng.uniform(0, 2 * np.pi)
  ramp = (np.cos(ga) * grid[None, :] + np.sin(ga) * grid[:, None]) / (res / 2)
  bg = rng.uniform(0.0, 60.0, 3) + ramp[..., None] * rng.uniform(-15, 15, 3)
  bg = bg + rng.standard_normal((res, res, 3)) * rng.uniform(0.0, 4.0)
  video = np.repeat(np.clip(np.rint(bg), 0, 255).astype(np.uint8)[None],
                    num_frames, 0)
  for k, a in enumerate(actors):
    s = a["side"]
    p = sr.render_params(seed, f"ava_{split}", index * 4 + k,
                         num_frames=num_frames, res=s)
    cx, cy, ang, size = sr.sample_trajectory(rng, a["motion"], num_frames, s)
    mid = np.log(np.sqrt(sr.SIZE_MIN * sr.SIZE_MAX) * s / 32.0)
    size = SIZE_SCALE * np.exp(mid + SIZE_STRETCH * (np.log(size) - mid))
    level = contrast(rng, a["flash"], num_frames)[:, None, None, None]
    mid = p["bg"][None, None, None, :]
    p.update(cx=cx, cy=cy, angle=ang, size=size,
             c1=mid + level * (p["c1"] - mid), c2=mid + level * (p["c2"] - mid))
    patch = sr.render_from_params(p, num_frames, s)
    for t in range(num_frames):
      y, x = a["y0"][t], a["x0"][t]
      video[t, y:y + s, x:x + s] = patch[t]
  return video, actors


def detections(seed: int, split: str, index: int, gt: np.ndarray):
  """Seeded "detector" output of one video from its GT [K, n, 4]: a list
  over keyframes of (boxes [m, 4] float32, scores [m] float32, matched actor
  [m] int64, -1 for a false positive)."""
  rng = np.random.default_rng(_seq(seed, split, index, 2))
  out = []
  for boxes in np.asarray(gt, np.float64):
    found = rng.uniform(size=len(boxes)) >= MISS_RATE
    side = (boxes[:, 2:] - boxes[:, :2]).repeat(2, 1)[:, [0, 2, 1, 3]]
    moved = boxes + rng.normal(0, JITTER, boxes.shape) * side
    moved = np.clip(moved, 0, 1)
    scores = rng.uniform(*TRUE_SCORE, len(boxes))
    n_fp = int(rng.poisson(FP_RATE))
    fs = rng.uniform(*FP_SIDE, n_fp)
    fx, fy = rng.uniform(0, 1 - fs), rng.uniform(0, 1 - fs)
    fp = np.stack([fx, fy, fx + fs, fy + fs], -1).reshape(-1, 4)
    out.append((np.concatenate([moved[found], fp]).astype(np.float32),
                np.concatenate([scores[found],
                                rng.uniform(*FP_SCORE, n_fp)]).astype(
                                    np.float32),
                np.concatenate([np.flatnonzero(found),
                                np.full(n_fp, -1)]).astype(np.int64)))
  return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of boxes a [..., 4] and b [..., 4] (x1, y1, x2, y2), elementwise."""
  lo = np.maximum(a[..., :2], b[..., :2])
  hi = np.minimum(a[..., 2:], b[..., 2:])
  inter = np.prod(np.clip(hi - lo, 0, None), -1)
  area = lambda z: np.prod(np.clip(z[..., 2:] - z[..., :2], 0, None), -1)
  return inter / np.maximum(area(a) + area(b) - inter, 1e-12)
