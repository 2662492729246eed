"""Target assignment of ground-truth segments to the points of the pyramid.

ActionFormer (Zhang et al. 2022, Sec. 3.3 "Center sampling" and Sec. 3.2,
following FCOS, Tian et al. 2019): every level l of the temporal pyramid
(stride 2^l steps; its point j sits at step j * 2^l, the centre of the
max-pool window that made it) predicts, at each point t, class scores and the
distances (left, right) from t to the action's start and end, in units of the
level's stride. A point is a positive of a segment [a, b] (step coordinates:
step i's centre is i, `data.pad_batch`'s `segments`) when

* it lies strictly inside the centre region [c - r s, c + r s] clipped to
  [a, b] (c the centre, s the level's stride, r = `radius`, 1.5 in the
  paper), and
* its largest distance max(t - a, b - t) falls in the level's regression
  range [lo, hi) (the paper's THUMOS14 ranges, in feature steps: [0, 4),
  [4, 8), [8, 16), [16, 32), [32, 64), [64, inf); `default_ranges`).

A point inside several such segments takes the shortest one. Everything is
fixed-shape numpy geometry (static per (length, levels)) plus jnp over
[B, P, M], so it runs inside the jitted step. Segments are first clipped to
the video, [-0.5, num_steps - 0.5] (annotation ends may run past it).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError


def default_ranges(num_levels: int) -> tuple:
  """ActionFormer's regression ranges (in steps) for `num_levels` levels:
  [0, 4), [4, 8), ..., the last one open-ended."""
  out = []
  for level in range(num_levels):
    lo = 0.0 if level == 0 else float(2 ** (level + 1))
    hi = math.inf if level == num_levels - 1 else float(2 ** (level + 2))
    out.append((lo, hi))
  return tuple(out)


def check_length(length: int, num_levels: int, key: str = "max_len"):
  """A pyramid of num_levels 2x levels needs length % 2^(levels-1) == 0."""
  unit = 2 ** (num_levels - 1)
  if length % unit or length < unit:
    raise VidjaxError(f"config.dataset.{key}={length} must be a positive "
                      f"multiple of 2^(num_levels-1) = {unit} "
                      f"(num_levels={num_levels})")


def level_lengths(length: int, num_levels: int) -> list:
  check_length(length, num_levels)
  return [length >> level for level in range(num_levels)]


def points(length: int, num_levels: int, ranges=None) -> dict:
  """Static numpy geometry of the concatenated pyramid points [P]:
  position (steps), stride, level, range lo / hi."""
  ranges = tuple(ranges) if ranges else default_ranges(num_levels)
  if len(ranges) != num_levels:
    raise VidjaxError(f"config.model.regression_ranges has {len(ranges)} "
                      f"ranges for {num_levels} levels")
  pos, stride, level, lo, hi = [], [], [], [], []
  for lvl, n in enumerate(level_lengths(length, num_levels)):
    s = 2 ** lvl
    pos.append(np.arange(n, dtype=np.float32) * s)
    stride.append(np.full(n, s, np.float32))
    level.append(np.full(n, lvl, np.int32))
    lo.append(np.full(n, ranges[lvl][0], np.float32))
    hi.append(np.full(n, ranges[lvl][1], np.float32))
  cat = np.concatenate
  return {"position": cat(pos), "stride": cat(stride), "level": cat(level),
          "lo": cat(lo), "hi": cat(hi)}


def point_mask(mask, num_levels: int):
  """[B, L] step mask -> [B, P]: point j of level l is real iff step j 2^l
  is."""
  return jnp.concatenate([mask[:, ::2 ** lvl] for lvl in range(num_levels)],
                         axis=1)


def assign(segments, labels, segment_mask, mask, num_steps, num_classes: int,
           num_levels: int, ranges=None, radius: float = 1.5,
           class_agnostic: bool = False) -> dict:
  """Targets of a padded batch (data.pad_batch's keys).

  Args:
    segments: [B, M, 2] start/end in step coordinates.
    labels: [B, M] int class ids; segment_mask: [B, M] bool.
    mask: [B, L] bool real steps; num_steps: [B] int.
    num_classes: K of the classification targets (1 with class_agnostic).
  Returns:
    {"cls": [B, P, K] float {0, 1}, "reg": [B, P, 2] (left, right) / stride,
     "positive": [B, P] bool, "point_mask": [B, P] bool,
     "segment": [B, P] int index of the assigned segment (-1: none)}.
  """
  geo = points(mask.shape[1], num_levels, ranges)
  pos = jnp.asarray(geo["position"])[None, :, None]
  stride = jnp.asarray(geo["stride"])[None, :, None]
  lo = jnp.asarray(geo["lo"])[None, :, None]
  hi = jnp.asarray(geo["hi"])[None, :, None]
  n = num_steps.astype(jnp.float32)[:, None]
  a = jnp.clip(segments[..., 0], -0.5, n - 0.5)[:, None, :]   # [B, 1, M]
  b = jnp.clip(segments[..., 1], -0.5, n - 0.5)[:, None, :]
  left, right = pos - a, b - pos                              # [B, P, M]
  c = 0.5 * (a + b)
  c_lo = jnp.maximum(c - radius * stride, a)
  c_hi = jnp.minimum(c + radius * stride, b)
  in_centre = (pos - c_lo > 0) & (c_hi - pos > 0)
  far = jnp.maximum(left, right)
  in_range = (far >= lo) & (far < hi)
  pmask = point_mask(mask, num_levels)
  ok = (in_centre & in_range & segment_mask[:, None, :] & pmask[..., None])
  length = jnp.where(ok, b - a, jnp.inf)
  best = jnp.argmin(length, axis=-1)                          # [B, P]
  positive = jnp.any(ok, axis=-1)
  take = lambda x: jnp.take_along_axis(x, best[..., None], -1)[..., 0]  # noqa
  reg = jnp.stack([take(left), take(right)], -1) / stride[..., 0][..., None]
  reg = jnp.where(positive[..., None], reg, 0.0)
  lab = jnp.take_along_axis(labels, best, axis=1)
  if class_agnostic:
    lab = jnp.zeros_like(lab)
  cls = jax.nn.one_hot(lab, num_classes) * positive[..., None]
  return {"cls": cls, "reg": reg.astype(jnp.float32), "positive": positive,
          "point_mask": pmask,
          "segment": jnp.where(positive, best, -1).astype(jnp.int32)}
