"""Clip augmentations: numpy/cv2 functions of (uint8 clip, np.random.Generator).

Each augmentation draws its parameters once per clip and applies the same
operation to every frame (a clip of identical frames stays identical
frame-to-frame). cv2 releases the GIL, so the loader's threads scale.

Channels: C = 3 (RGB), 2 (optical flow x, y) or 5 (RGB then flow x, y). Flow
is quantised with 128 = no motion; a horizontal flip maps x-flow q -> 256 - q;
colour operations touch the RGB channels only; geometric fills use 128.

Conventions (facts this module relies on):
* Spatial sampling is one affine map per clip from output pixels to stored
  pixels, with cv2.resize's pixel-centre convention (src = (dst + .5) / s - .5),
  so "resize the short side, jitter, crop, resize to crop_size" costs one
  bilinear warp of the output pixels only (no antialiasing, like PySlowFast's
  bilinear interpolate). A crop without resizing is an exact slice.
* "resized": Inception-style crop (Szegedy et al. 2015, "Going deeper with
  convolutions"; torchvision RandomResizedCrop): area fraction uniform in
  `crop_scale`, log-uniform aspect ratio in `crop_ratio`, 10 tries, then a
  centre crop with the ratio clamped.
* "multiscale": TSN's multi-scale crop (Wang et al. 2016, "Temporal Segment
  Networks"): width and height each one of (1, .875, .75, .66) x short side,
  at most one scale step apart, at one of 13 fixed positions (corners,
  centre, edge centres, quarter points).
* Scale jitter: independent height/width factors (DMVR scale_jitter_augm, as
  in ViViT, Arnab et al. 2021). Short-side jitter: uniform integer in
  [short, short_max] (PySlowFast random_short_side_scale_jitter).
* Colour jitter, RandAugment and random erasing: vidjax/data/photometric.py.
* Mixup (Zhang et al. 2018) / CutMix (Yun et al. 2019) per batch as timm's
  "batch" mode: one lambda (and one box, the same on every frame) per step;
  clip 2m is mixed with clip 2m+1 and vice versa (pairs never span hosts);
  the CutMix weight is the kept area fraction. Soft labels carry no label
  smoothing (the train step applies it).
"""
import dataclasses
import math
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

from vidjax.data import photometric as photometric_ops
from vidjax.errors import VidjaxError

CROP_MODES = ("random", "resized", "multiscale")
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)
# TSN positions on a 4x4 grid of steps: corners, centre, then "more fix crop".
MULTISCALE_POSITIONS = ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4),
                        (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3))


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
  """The augmentation fields of config.dataset (see configs/default.py)."""
  train_resize_short: int = 0
  train_resize_short_max: int = 0
  scale_jitter: Tuple[float, float] = (1.0, 1.0)
  crop_mode: str = "random"
  crop_scale: Tuple[float, float] = (0.08, 1.0)
  crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
  color_jitter: float = 0.0
  color_brightness: float = 32 / 255
  color_contrast: float = 0.4
  color_saturation: float = 0.4
  color_hue: float = 0.2
  color_grayscale: float = 0.0
  randaugment_num_ops: int = 0
  randaugment_magnitude: float = 9.0
  randaugment_magnitude_std: float = 0.0
  randaugment_prob: float = 0.5
  random_erasing_prob: float = 0.0
  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0
  mix_prob: float = 1.0
  mix_switch_prob: float = 0.5
  repeated_aug: int = 1
  test_resize_short: int = 0
  mean: Tuple[float, ...] = (0.5, 0.5, 0.5)   # erasing noise, normalised space
  std: Tuple[float, ...] = (0.25, 0.25, 0.25)
  num_classes: int = 0                        # soft-label width when mixing

  @property
  def mixing(self) -> bool:
    return self.mixup_alpha > 0 or self.cutmix_alpha > 0

  @property
  def photometric(self) -> bool:
    return (self.color_jitter > 0 or self.color_grayscale > 0 or
            self.randaugment_num_ops > 0 or self.random_erasing_prob > 0)

  @classmethod
  def from_config(cls, d, num_classes: int = 0) -> "AugmentSpec":
    kw = {}
    for f in dataclasses.fields(cls):
      if f.name != "num_classes" and f.name in d:
        v = d[f.name]
        kw[f.name] = tuple(float(x) for x in v) if isinstance(
            f.default, tuple) else type(f.default)(v)
    spec = cls(num_classes=num_classes, **kw)
    spec.check()
    return spec

  def check(self):
    def bad(key, why):
      return VidjaxError(f"config.dataset.{key}={getattr(self, key)!r}: {why}")
    if self.crop_mode not in CROP_MODES:
      raise bad("crop_mode", f"unknown; one of {', '.join(CROP_MODES)}")
    for key, hi in (("crop_scale", 1.0), ("crop_ratio", math.inf),
                    ("scale_jitter", math.inf)):
      lo_, hi_ = getattr(self, key)
      if not 0 < lo_ <= hi_ <= hi:
        raise bad(key, f"needs 0 < low <= high <= {hi}")
    for key in ("color_jitter", "color_grayscale", "randaugment_prob",
                "random_erasing_prob", "mix_prob", "mix_switch_prob",
                "color_brightness", "color_contrast", "color_saturation"):
      if not 0 <= getattr(self, key) <= 1:
        raise bad(key, "must be in [0, 1]")
    if not 0 <= self.color_hue <= 0.5:
      raise bad("color_hue", "must be in [0, 0.5] (turns)")
    for key in ("train_resize_short", "train_resize_short_max",
                "randaugment_num_ops", "randaugment_magnitude",
                "randaugment_magnitude_std", "mixup_alpha", "cutmix_alpha",
                "test_resize_short"):
      if getattr(self, key) < 0:
        raise bad(key, "must be >= 0")
    if self.train_resize_short_max and (
        self.train_resize_short_max < self.train_resize_short or
        not self.train_resize_short):
      raise bad("train_resize_short_max", "needs train_resize_short > 0 and "
                "max >= train_resize_short (0: no short-side jitter)")
    if self.repeated_aug < 1:
      raise bad("repeated_aug", "must be >= 1")


# ------------------------------------------------------------------ spatial


class Sampling(NamedTuple):
  """Output pixel (v, u) samples stored pixel (y, x) with

  y = y0 + (v + .5) dy - .5 and x = x0 + (u + .5) dx - .5.
  """
  y0: float
  x0: float
  dy: float
  dx: float
  out_h: int
  out_w: int

  @property
  def is_slice(self) -> bool:
    return (self.dy == self.dx == 1 and float(self.y0).is_integer() and
            float(self.x0).is_integer())

  @property
  def box(self) -> Optional[Tuple[int, int, int, int]]:
    """(y, x, h, w) when the map is "crop these whole stored pixels, resize
    to out" (integer origin and extent), else None."""
    h, w = self.dy * self.out_h, self.dx * self.out_w
    if not (float(self.y0).is_integer() and float(self.x0).is_integer()
            and abs(h - round(h)) < 1e-6 and abs(w - round(w)) < 1e-6):
      return None
    return int(self.y0), int(self.x0), int(round(h)), int(round(w))

  def snapped(self, height: int, width: int) -> "Sampling":
    """The nearest crop-then-resize map: origin rounded to a stored pixel and
    the extent to whole pixels (< 0.5 px each, inside the frame), as
    torchvision's crops do. `apply` then runs one separable cv2.resize per
    frame (~2.4x cheaper than the general warp, measured at 224 px)."""
    h = min(max(int(round(self.dy * self.out_h)), 1), height)
    w = min(max(int(round(self.dx * self.out_w)), 1), width)
    y = min(max(int(round(self.y0)), 0), height - h)
    x = min(max(int(round(self.x0)), 0), width - w)
    return Sampling(y, x, h / self.out_h, w / self.out_w, self.out_h,
                    self.out_w)

  def window(self, height: int, width: int) -> Tuple[int, int, int, int]:
    """Stored pixels (y, x, h, w) the output needs (bilinear: +1 margin)."""
    if self.is_slice:
      return int(self.y0), int(self.x0), self.out_h, self.out_w
    box = self.box
    if box is not None:
      return box
    def span(o, d, n, size):
      lo = math.floor(o + 0.5 * d - 0.5) - 1
      hi = math.ceil(o + (n - 0.5) * d - 0.5) + 2
      lo, hi = max(lo, 0), min(hi, size)
      return lo, max(hi - lo, 1)
    y, h = span(self.y0, self.dy, self.out_h, height)
    x, w = span(self.x0, self.dx, self.out_w, width)
    return y, x, h, w

  def apply(self, frames: np.ndarray, window) -> np.ndarray:
    """frames: the stored `window` of each frame -> [T, out_h, out_w, C]."""
    if self.is_slice:
      return frames
    box = self.box
    if box is not None and tuple(window) == box:
      # OpenCV's INTER_LINEAR maps output u to (u + .5) w / out_w - .5 in
      # the crop, this map's formula; the crop's edge pixels repeat.
      out = np.empty((len(frames), self.out_h, self.out_w, frames.shape[-1]),
                     np.uint8)
      for t, frame in enumerate(frames):
        r = cv2.resize(frame, (self.out_w, self.out_h),
                       interpolation=cv2.INTER_LINEAR)
        out[t] = r.reshape(out.shape[1:])
      return out
    wy, wx = window[0], window[1]
    m = np.array([[self.dx, 0, self.x0 - wx + 0.5 * self.dx - 0.5],
                  [0, self.dy, self.y0 - wy + 0.5 * self.dy - 0.5]], np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = np.empty((len(frames), self.out_h, self.out_w, frames.shape[-1]),
                   np.uint8)
    for t, frame in enumerate(frames):
      r = cv2.warpAffine(frame, m, (self.out_w, self.out_h), flags=flags,
                         borderMode=cv2.BORDER_REPLICATE)
      out[t] = r.reshape(out.shape[1:])
    return out


def resized_dims(height: int, width: int, short: int) -> Tuple[int, int]:
  """(h, w) after resizing the short side to `short` (0: unchanged)."""
  if short <= 0:
    return height, width
  s = short / min(height, width)
  return max(int(round(height * s)), 1), max(int(round(width * s)), 1)


def _sampling(height, width, rh, rw, box, out) -> Sampling:
  """Box (y, x, h, w) on the frame resized to (rh, rw) -> stored-pixel map."""
  sy, sx = rh / height, rw / width
  by, bx, bh, bw = box
  return Sampling(by / sy, bx / sx, bh / (sy * out), bw / (sx * out), out, out)


def check_crop(rh: int, rw: int, crop: int, key: str = "",
               crop_key: str = "crop_size"):
  if rh < crop or rw < crop:
    extra = f" after config.dataset.{key}" if key else ""
    raise VidjaxError(
        f"config.dataset.{crop_key}={crop} is larger than the stored frames "
        f"({rh}x{rw}{extra})")


def resized_crop_box(rng, rh, rw, scale, ratio):
  """Inception-style box (y, x, h, w): area in `scale`, aspect in `ratio`."""
  area = rh * rw
  log_r = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_r))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= rw and 0 < h <= rh:
      return (int(rng.integers(0, rh - h + 1)),
              int(rng.integers(0, rw - w + 1)), h, w)
  in_ratio = rw / rh
  h, w = rh, rw
  if in_ratio < ratio[0]:
    h = int(round(rw / ratio[0]))
  elif in_ratio > ratio[1]:
    w = int(round(rh * ratio[1]))
  return (rh - h) // 2, (rw - w) // 2, h, w


def multiscale_box(rng, rh, rw):
  """TSN multi-scale crop box (y, x, h, w) on an (rh, rw) frame."""
  sizes = [max(int(min(rh, rw) * s), 1) for s in MULTISCALE_SCALES]
  pairs = [(i, j) for i in range(4) for j in range(4) if abs(i - j) <= 1]
  i, j = pairs[rng.integers(len(pairs))]
  w, h = sizes[i], sizes[j]
  gy, gx = MULTISCALE_POSITIONS[rng.integers(len(MULTISCALE_POSITIONS))]
  return gy * ((rh - h) // 4), gx * ((rw - w) // 4), h, w


def train_sampling(rng, height: int, width: int, aug: AugmentSpec,
                   crop: int) -> Sampling:
  """Draws short-side resize, scale jitter and the crop of one training clip."""
  rh, rw = height, width
  if aug.train_resize_short:
    short = aug.train_resize_short
    if aug.train_resize_short_max > short:
      short = int(rng.integers(short, aug.train_resize_short_max + 1))
    rh, rw = resized_dims(height, width, short)
  if aug.scale_jitter != (1.0, 1.0):
    fh, fw = rng.uniform(aug.scale_jitter[0], aug.scale_jitter[1], 2)
    rh, rw = max(int(rh * fh), 1), max(int(rw * fw), 1)
  if aug.crop_mode == "random":
    check_crop(rh, rw, crop, "train_resize_short" if aug.train_resize_short
               else "")
    box = (int(rng.integers(0, rh - crop + 1)),
           int(rng.integers(0, rw - crop + 1)), crop, crop)
  elif aug.crop_mode == "resized":
    box = resized_crop_box(rng, rh, rw, aug.crop_scale, aug.crop_ratio)
  else:
    box = multiscale_box(rng, rh, rw)
  sampling = _sampling(height, width, rh, rw, box, crop)
  return sampling if sampling.is_slice else sampling.snapped(height, width)


def test_sampling(height: int, width: int, short: int, origin,
                  crop: int) -> Sampling:
  """A test crop at `origin` (on the frame resized to `short`; 0: stored)."""
  rh, rw = resized_dims(height, width, short)
  return _sampling(height, width, rh, rw, (origin[0], origin[1], crop, crop),
                   crop)


def flow_x_channel(channels: int) -> Optional[int]:
  return {2: 0, 5: 3}.get(channels)


def hflip(clip: np.ndarray) -> np.ndarray:
  """Mirror the width; x-flow q -> 256 - q (128 = no motion; 0 -> 255)."""
  out = clip[:, :, ::-1]
  c = flow_x_channel(clip.shape[-1])
  if c is None:
    return out
  out = out.copy()
  out[..., c] = np.minimum(256 - out[..., c].astype(np.int16), 255)
  return out


def photometric(clip, rng, aug: AugmentSpec):
  """Colour jitter, grayscale, RandAugment, random erasing (each if on)."""
  return photometric_ops.apply(clip, rng, aug)


# ------------------------------------------------------------------- batch


def cutmix_box(rng, h: int, w: int, lam: float):
  """Box (y0, y1, x0, x1) of side sqrt(1 - lam), centre uniform, clipped."""
  cut = math.sqrt(1.0 - lam)
  ch, cw = int(h * cut), int(w * cut)
  cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
  y0, y1 = np.clip((cy - ch // 2, cy + ch // 2), 0, h)
  x0, x1 = np.clip((cx - cw // 2, cx + cw // 2), 0, w)
  return int(y0), int(y1), int(x0), int(x1)


def mix_batch(videos: np.ndarray, labels: np.ndarray, rng,
              aug: AugmentSpec):
  """Mixup or CutMix of clip 2m with 2m+1 -> (videos, soft labels [B, K])."""
  soft = np.zeros((len(labels), aug.num_classes), np.float32)
  soft[np.arange(len(labels)), labels] = 1.0
  if rng.random() >= aug.mix_prob:
    return videos, soft
  use_cutmix = aug.cutmix_alpha > 0 and (
      aug.mixup_alpha <= 0 or rng.random() < aug.mix_switch_prob)
  partner = np.arange(len(videos)) ^ 1
  if use_cutmix:
    lam = float(rng.beta(aug.cutmix_alpha, aug.cutmix_alpha))
    h, w = videos.shape[2:4]
    y0, y1, x0, x1 = cutmix_box(rng, h, w, lam)
    out = videos.copy()
    out[:, :, y0:y1, x0:x1] = videos[partner, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
  else:
    lam = float(rng.beta(aug.mixup_alpha, aug.mixup_alpha))
    out = np.empty_like(videos)
    for j, k in enumerate(partner):
      a, b = videos[j].reshape(-1, videos[j].shape[-1]), videos[k].reshape(
          -1, videos[k].shape[-1])
      out[j] = cv2.addWeighted(a, lam, b, 1.0 - lam, 0.0).reshape(
          videos.shape[1:])
  return out, (lam * soft + (1.0 - lam) * soft[partner]).astype(np.float32)
