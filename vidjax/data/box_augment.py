"""Clip augmentation that moves person boxes with the pixels (AVA training).

Boxes are normalised (x1, y1, x2, y2) in [0, 1] with a top-left origin, as
in AVA's CSVs. The recipe follows PySlowFast's AVA loader
(`ava_dataset.py`: random short-side scale, random crop, random horizontal
flip, boxes transformed by the same maps and clipped to the crop) and
mmaction2's (`RandomRescale`, `RandomCrop`, `Flip`):

* `letterbox`: a frame of any aspect into a square (long side to `size`,
  the rest zero-padded, centred), so every box survives at test time;
* `crop`: the window (x0, y0, w, h) of a square clip, normalised; boxes are
  mapped into it, clipped, and kept only where at least `min_visible` of
  their area stays inside (the rest are dropped through the returned mask);
* `hflip`: x -> 1 - x for the pixels and the boxes; for direction-specific
  classes the labels are permuted too (`flip_permutation`:
  synthetic_ava swaps translate left / right and rotate cw / ccw; AVA's
  actions have no direction, identity).
"""
from __future__ import annotations

import cv2
import numpy as np


def resize_clip(frames: np.ndarray, height: int, width: int) -> np.ndarray:
  """uint8 [T, h, w, C] -> [T, height, width, C] (bilinear; no-op if equal)."""
  if frames.shape[1:3] == (height, width):
    return frames
  interp = cv2.INTER_AREA if height < frames.shape[1] else cv2.INTER_LINEAR
  return np.stack([cv2.resize(f, (width, height), interpolation=interp)
                   for f in frames])


def letterbox(frames: np.ndarray, boxes: np.ndarray, size: int):
  """A clip of any aspect as [T, size, size, C]: long side scaled to `size`,
  zero padding centred on the short one; boxes mapped alike."""
  t, h, w, c = frames.shape
  scale = size / max(h, w)
  nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
  out = np.zeros((t, size, size, c), frames.dtype)
  oy, ox = (size - nh) // 2, (size - nw) // 2
  out[:, oy:oy + nh, ox:ox + nw] = resize_clip(frames, nh, nw)
  b = np.asarray(boxes, np.float32).reshape(-1, 4)
  sx, sy = nw / size, nh / size
  mapped = b * np.array([sx, sy, sx, sy], np.float32) + np.array(
      [ox, oy, ox, oy], np.float32) / size
  return out, mapped


def crop_boxes(boxes: np.ndarray, window, min_visible: float = 0.25):
  """Boxes [n, 4] in the coordinates of `window` (x0, y0, w, h), all
  normalised to the frame: (clipped boxes [n, 4], keep [n] bool) where keep
  needs a positive width and height and >= min_visible of the area left."""
  x0, y0, w, h = window
  b = np.asarray(boxes, np.float32).reshape(-1, 4)
  moved = (b - np.array([x0, y0, x0, y0], np.float32)) / np.array(
      [w, h, w, h], np.float32)
  clipped = np.clip(moved, 0.0, 1.0)
  area = lambda z: np.clip(z[:, 2] - z[:, 0], 0, None) * np.clip(
      z[:, 3] - z[:, 1], 0, None)
  keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
  keep &= area(clipped) >= min_visible * np.maximum(area(moved), 1e-12)
  return clipped, keep


def crop(frames: np.ndarray, boxes: np.ndarray, window, out_size: int,
         min_visible: float = 0.25):
  """The pixels of `window` (x0, y0, w, h, normalised) resized to
  out_size x out_size, and the boxes mapped into it (crop_boxes)."""
  _, h, w, _ = frames.shape
  x0, y0, ww, wh = window
  px0, py0 = int(round(x0 * w)), int(round(y0 * h))
  px1, py1 = int(round((x0 + ww) * w)), int(round((y0 + wh) * h))
  # the exact pixel window, so the boxes follow the pixels to the pixel
  exact = (px0 / w, py0 / h, (px1 - px0) / w, (py1 - py0) / h)
  pixels = resize_clip(frames[:, py0:py1, px0:px1], out_size, out_size)
  return (pixels,) + crop_boxes(boxes, exact, min_visible)


def hflip(frames: np.ndarray, boxes: np.ndarray, labels=None,
          flip_permutation=None):
  """Mirrored clip, boxes (x1, x2) -> (1 - x2, 1 - x1), and labels [n, K]
  with their class axis permuted by flip_permutation (new class j = old
  class perm[j]; None: unchanged)."""
  b = np.asarray(boxes, np.float32).reshape(-1, 4)
  flipped = np.stack([1 - b[:, 2], b[:, 1], 1 - b[:, 0], b[:, 3]], 1)
  if labels is not None and flip_permutation is not None:
    labels = np.asarray(labels)[:, np.asarray(flip_permutation)]
  return frames[:, :, ::-1], flipped, labels


def random_window(rng: np.random.Generator, scale=(0.6, 1.0)):
  """A random square window (x0, y0, w, w): side uniform in `scale` of the
  frame side, position uniform (PySlowFast's scale jitter then crop)."""
  side = float(rng.uniform(*scale))
  return (float(rng.uniform(0, 1 - side)), float(rng.uniform(0, 1 - side)),
          side, side)


def augment(frames: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
            rng: np.random.Generator, out_size: int, scale=(0.6, 1.0),
            flip: bool = True, flip_permutation=None,
            min_visible: float = 0.25):
  """Training augmentation of one square clip: random window (`scale`),
  resize to out_size, horizontal flip with probability 1/2 when `flip`.

  Returns (frames [T, out, out, C], boxes [m, 4], labels [m, K], keep [n]):
  the boxes that left the window are dropped (keep marks the survivors
  among the n given, in order).
  """
  pixels, b, keep = crop(frames, boxes, random_window(rng, scale), out_size,
                         min_visible)
  b, labels = b[keep], np.asarray(labels)[keep]
  if flip and rng.uniform() < 0.5:
    pixels, b, labels = hflip(pixels, b, labels, flip_permutation)
  return np.ascontiguousarray(pixels), b, labels, keep
