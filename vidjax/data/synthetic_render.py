"""Pure-numpy renderer for the `synthetic_motion` dataset (no TF, no JAX).

One example is a pure function of (config fields, split, index): `render_example`.
Every random choice comes from `np.random.default_rng(SeedSequence([seed, split, index]))`,
so rendering is deterministic by construction and needs no dataset build.

Per-frame marginals are class-independent in the `motion` label kind, so that no
single frame tells the class:
  * position: uniform on the torus at frame 0; translation wraps modulo the frame
    size, so the position stays uniform at every frame;
  * orientation: uniform at frame 0, rotation keeps it uniform;
  * size: every video draws a log-linear size ramp (small -> large over the whole
    video). `grow` follows it, `shrink` follows it backwards (its time reverse),
    and every other class keeps the size of one uniformly random frame of it, so
    a frame from a random time has the same size distribution in every class.
    Clip starts are uniform in training and symmetric in test, so a single-frame
    model cannot tell grow from shrink either;
  * shape, colours, texture, background: drawn independently of the class. The
    background is darker than the object (random colours in both ranges), so
    motion is not hidden behind a random contrast polarity.
Classes come in time-reversed pairs (right/left, up/down, cw/ccw, grow/shrink).
"""

from __future__ import annotations

import zlib

import numpy as np

MOTION_NAMES = (
    "translate_right", "translate_left", "translate_up", "translate_down",
    "rotate_clockwise", "rotate_anticlockwise", "grow", "shrink")
APPEARANCE_NAMES = (
    "circle", "square", "triangle", "cross", "ring", "bar", "l_shape", "diamond")
# Shapes used in the `motion` kind: none is rotationally symmetric below 180 degrees,
# so a rotation of <= 30 degrees between two sampled frames (stride 2) has one sign.
MOTION_SHAPES = ("triangle", "bar", "l_shape", "diamond", "arrow", "ellipse", "t_shape")

SIZE_MIN, SIZE_MAX = 3.0, 6.0         # object half-extent in px at 32 px resolution
TRANSLATE_SPEED = (0.5, 1.5)          # px / frame at 32 px resolution
ROTATE_SPEED = (5.0, 15.0)            # degrees / frame
FRAME_NOISE_PROB = 0.2                # share of videos with per-frame noise
SPLIT_IDS = {"train": 1, "validation": 2, "test": 3}

_POLYGONS = {
    "triangle": [(0.0, -1.0), (0.65, 0.8), (-0.65, 0.8)],
    "l_shape": [(-0.75, -0.95), (-0.2, -0.95), (-0.2, 0.4), (0.75, 0.4), (0.75, 0.95),
                (-0.75, 0.95)],
    "diamond": [(0.0, -1.0), (0.65, 0.0), (0.0, 1.0), (-0.65, 0.0)],
    "arrow": [(1.0, 0.0), (0.15, 0.65), (0.15, 0.25), (-0.95, 0.25), (-0.95, -0.25),
              (0.15, -0.25), (0.15, -0.65)],
    "t_shape": [(-0.9, -0.85), (0.9, -0.85), (0.9, -0.35), (0.25, -0.35), (0.25, 0.9),
                (-0.25, 0.9), (-0.25, -0.35), (-0.9, -0.35)],
}


def _box_sdf(u, v, hx, hy):
  qx, qy = np.abs(u) - hx, np.abs(v) - hy
  outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
  return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _polygon_sdf(u, v, verts):
  """Signed distance to a simple polygon (negative inside), vectorised over points."""
  verts = np.asarray(verts, np.float32)
  d2 = (u - verts[0, 0]) ** 2 + (v - verts[0, 1]) ** 2
  sign = np.ones_like(u)
  n = len(verts)
  for i in range(n):
    (xi, yi), (xj, yj) = verts[i], verts[i - 1]
    ex, ey = xj - xi, yj - yi
    wx, wy = u - xi, v - yi
    h = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    bx, by = wx - ex * h, wy - ey * h
    d2 = np.minimum(d2, bx * bx + by * by)
    c1, c2, c3 = v >= yi, v < yj, ex * wy > ey * wx
    flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
    sign = np.where(flip, -sign, sign)
  return sign * np.sqrt(d2)


def shape_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Signed distance (object units, extent ~1) of `shape` at local coordinates (u, v)."""
  if shape in _POLYGONS:
    return _polygon_sdf(u, v, _POLYGONS[shape])
  if shape == "circle":
    return np.sqrt(u * u + v * v) - 0.9
  if shape == "ring":
    return np.abs(np.sqrt(u * u + v * v) - 0.68) - 0.24
  if shape == "square":
    return _box_sdf(u, v, 0.72, 0.72)
  if shape == "bar":
    return _box_sdf(u, v, 0.95, 0.32)
  if shape == "cross":
    return np.minimum(_box_sdf(u, v, 0.92, 0.28), _box_sdf(u, v, 0.28, 0.92))
  if shape == "ellipse":  # approximate distance, exact zero set
    a, b = 0.95, 0.5
    return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * b
  raise ValueError(f"unknown shape {shape!r}")


def _seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
  if split not in SPLIT_IDS:
    split_id = zlib.crc32(split.encode()) + 100  # any other split name: stable id
  else:
    split_id = SPLIT_IDS[split]
  return np.random.SeedSequence([int(seed), split_id, int(index)])


def _pick_colour(rng, away_from, min_dist, low=0.0):
  """A random RGB colour in [low, 255] at least `min_dist` from `away_from`."""
  cand = rng.uniform(low, 255.0, size=(64, 3))
  ok = np.ones(len(cand), bool)
  for c in away_from:
    ok &= np.linalg.norm(cand - c, axis=1) >= min_dist
  if ok.any():
    return cand[np.argmax(ok)]
  return np.where(away_from[0] < 127.5, 255.0, 0.0)  # farthest cube corner


def sample_trajectory(rng, motion: int, num_frames: int, res: int):
  """Per-frame centre x, y (px), angle (rad) and half-extent (px) for a motion class."""
  t = np.arange(num_frames, dtype=np.float64)
  px = res / 32.0
  cx = np.full_like(t, rng.uniform(0, res))
  cy = np.full_like(t, rng.uniform(0, res))
  ang = np.full_like(t, rng.uniform(0, 2 * np.pi))
  lo, hi = np.log(SIZE_MIN * px), np.log(SIZE_MAX * px)
  third = (hi - lo) / 3
  ramp = np.linspace(rng.uniform(lo, lo + third), rng.uniform(hi - third, hi),
                     num_frames)
  logs = np.full_like(t, ramp[rng.integers(num_frames)])
  speed = rng.uniform(0.0, 1.0)  # one draw, mapped into the motion's own range
  if motion < 4:
    v = (TRANSLATE_SPEED[0] + speed * np.ptp(TRANSLATE_SPEED)) * px * t
    if motion == 0:
      cx = cx + v
    elif motion == 1:
      cx = cx - v
    elif motion == 2:
      cy = cy - v  # image y points down: "up" decreases y
    else:
      cy = cy + v
  elif motion < 6:  # with y down, an increasing angle turns clockwise on screen
    w = np.deg2rad(ROTATE_SPEED[0] + speed * np.ptp(ROTATE_SPEED)) * t
    ang = ang + (w if motion == 4 else -w)
  else:
    logs = ramp if motion == 6 else ramp[::-1]
  return np.mod(cx, res), np.mod(cy, res), np.mod(ang, 2 * np.pi), np.exp(logs)


def render_params(seed: int, split: str, index: int, *, num_classes: int = 8,
                  label_kind: str = "motion", num_frames: int = 32, res: int = 32):
  """All random choices of one example, as a dict (label = index % num_classes)."""
  rng = np.random.default_rng(_seed(seed, split, index))
  label = int(index) % num_classes
  if label_kind == "motion":
    motion = label
    shape = MOTION_SHAPES[rng.integers(len(MOTION_SHAPES))]
  elif label_kind == "appearance":
    motion = int(rng.integers(len(MOTION_NAMES)))
    shape = APPEARANCE_NAMES[label]
  else:
    raise ValueError(f"label_kind must be 'motion' or 'appearance', got {label_kind!r}")
  cx, cy, ang, size = sample_trajectory(rng, motion, num_frames, res)
  bg = rng.uniform(0.0, 100.0, size=3)
  c1 = rng.uniform(150.0, 255.0, size=3)
  c2 = _pick_colour(rng, [c1], 50.0, low=150.0)
  return dict(
      label=label, motion=motion, shape=shape, cx=cx, cy=cy, angle=ang, size=size,
      bg=bg, c1=c1, c2=c2,
      texture=int(rng.integers(3)),           # 0 solid, 1 stripes, 2 checker
      tex_period=rng.uniform(0.55, 0.9),      # object units
      tex_angle=rng.uniform(0, np.pi),
      tex_phase=rng.uniform(0, 2 * np.pi, size=2),
      grad_angle=rng.uniform(0, 2 * np.pi),
      grad_amp=rng.uniform(-25.0, 25.0, size=3),
      static_noise=rng.uniform(0.0, 4.0),
      # per-frame sensor noise in a minority of videos only: noise is ~85% of the bytes
      frame_noise=rng.uniform(0.5, 1.5) * (rng.uniform() < FRAME_NOISE_PROB),
      noise_seed=int(rng.integers(2**31)))


def render_from_params(p: dict, num_frames: int, res: int) -> np.ndarray:
  """Draws the video [T, H, W, 3] uint8 described by `render_params`."""
  f32 = np.float32
  grid = np.arange(res, dtype=f32) + f32(0.5)
  # Offsets on the torus, in [-res/2, res/2): the object is drawn modulo the frame.
  dx = np.mod(grid[None, None, :] - p["cx"].astype(f32)[:, None, None] + res / 2, res)
  dy = np.mod(grid[None, :, None] - p["cy"].astype(f32)[:, None, None] + res / 2, res)
  dx, dy = dx - f32(res / 2), dy - f32(res / 2)
  cos = np.cos(p["angle"]).astype(f32)[:, None, None]
  sin = np.sin(p["angle"]).astype(f32)[:, None, None]
  size = p["size"].astype(f32)[:, None, None]
  u = (cos * dx + sin * dy) / size   # rotate by -angle into object coordinates
  v = (-sin * dx + cos * dy) / size
  alpha = np.clip(f32(0.5) - shape_sdf(p["shape"], u, v) * size, 0.0, 1.0)

  if p["texture"] == 0:
    tex = np.zeros_like(u)
  else:
    ca, sa = np.cos(p["tex_angle"]), np.sin(p["tex_angle"])
    k = f32(2 * np.pi / p["tex_period"])
    s1 = np.sin(k * (ca * u + sa * v) + f32(p["tex_phase"][0]))
    if p["texture"] == 2:
      s1 = s1 * np.sin(k * (-sa * u + ca * v) + f32(p["tex_phase"][1]))
    # soft edge about one pixel wide: slope in px is ~k * size
    tex = np.clip(f32(0.5) + s1 * (size * f32(0.35)), 0.0, 1.0)

  noise_rng = np.random.default_rng(p["noise_seed"])
  ga = p["grad_angle"]
  ramp = (np.cos(ga) * (grid[None, :] - res / 2) + np.sin(ga) * (grid[:, None] - res / 2))
  ramp = (ramp / (res / 2)).astype(f32)
  bg = p["bg"].astype(f32) + ramp[..., None] * p["grad_amp"].astype(f32)
  bg = bg + noise_rng.standard_normal((res, res, 3), dtype=f32) * f32(p["static_noise"])
  c1, c2 = p["c1"].astype(f32), p["c2"].astype(f32)
  obj = c1 + tex[..., None] * (c2 - c1)
  a = alpha[..., None]
  video = bg[None] + a * (obj - bg[None])
  if p["frame_noise"]:  # most videos have none: skip drawing it
    video += noise_rng.standard_normal(video.shape, dtype=f32) * f32(
        p["frame_noise"])
  return np.clip(np.rint(video), 0, 255).astype(np.uint8)


BACKGROUNDS = ("textured", "plain")


def render(seed: int, split: str, index: int, *, label_kind: str = "motion",
           num_frames: int = 32, res: int = 32, num_classes: int = 8,
           background: str = "textured"):
  """-> (video uint8 [num_frames, res, res, 3], label int).

  background: "textured" (the default: a colour ramp plus static and, in
  some videos, per-frame sensor noise) or "plain" (the same random draws,
  but one flat colour and no noise: every pixel that changes is the
  object's).
  """
  if background not in BACKGROUNDS:
    raise ValueError(f"background must be one of {BACKGROUNDS}, got "
                     f"{background!r}")
  p = render_params(seed, split, index, num_classes=num_classes, label_kind=label_kind,
                    num_frames=num_frames, res=res)
  return render_from_params(with_background(p, background), num_frames,
                            res), p["label"]


def with_background(p: dict, background: str) -> dict:
  """`render_params`' dict drawn on `background` ("plain": flat, no noise)."""
  if background == "plain":
    return dict(p, grad_amp=np.zeros(3), static_noise=0.0, frame_noise=0.0)
  return p
