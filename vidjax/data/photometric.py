"""Photometric clip augmentations: colour jitter, RandAugment, random erasing.

Pure numpy/cv2 functions of (uint8 clip [T, H, W, C], np.random.Generator,
`aug` = vidjax.data.augment.AugmentSpec); parameters are drawn once per clip
and the same operation is applied to every frame. Colour operations touch
the RGB channels only (C = 3, or the first 3 of C = 5); flow-only clips
(C = 2) pass through them unchanged; geometric ops move every channel and
fill with 128 (mid grey, and zero motion for flow).

* Colour jitter follows DMVR's color_default_augm (ViViT): additive
  brightness, saturation (blend with luma grey), contrast (around the
  per-channel clip mean), hue, in that order, clipped once at the end;
  grayscale ("colour drop") after. Hue is a rotation about the grey axis in
  YIQ (linear, so the four compose into one affine pass) rather than TF's
  HSV shift.
* RandAugment (Cubuk et al. 2020) with timm's "increasing" magnitudes
  (rand-mM-nN-mstdS-inc1, as VideoMAE finetuning): N ops drawn with
  replacement from the paper's 14, each applied with prob `randaugment_prob`,
  magnitude ~ N(M, S) clipped at 0, level M / 10 (levels above 1 extrapolate,
  as TF's RandAugment does for ViViT's magnitude 20). Pixel ops use PIL's
  ImageEnhance/ImageOps definitions with statistics over the whole clip.
* Random erasing (Zhong et al. 2020; timm/VideoMAE "pixel" mode): one
  rectangle with area in [0.02, 1/3] of the frame, log aspect in
  [log .3, log 1/.3], filled with per-pixel normal noise in normalised space
  (mean/std of the config), identical on every frame; flow channels get 128.
"""
import math

import cv2
import numpy as np

RANDAUGMENT_OPS = ("identity", "autocontrast", "equalize", "rotate", "solarize",
                   "color", "posterize", "contrast", "brightness", "sharpness",
                   "shear_x", "shear_y", "translate_x", "translate_y")
ERASE_AREA, ERASE_LOG_ASPECT = (0.02, 1 / 3), (math.log(0.3), -math.log(0.3))
FILL = 128


def _rgb(clip):
  """The RGB channels as a contiguous [T, H, W, 3] array (None for flow)."""
  c = clip.shape[-1]
  if c == 3:
    return np.ascontiguousarray(clip)
  if c == 5:
    return np.ascontiguousarray(clip[..., :3])
  return None


def _merge(clip, rgb):
  if clip.shape[-1] == 3:
    return rgb
  out = clip.copy()
  out[..., :3] = rgb
  return out


def _flat(x):
  return x.reshape(-1, x.shape[-2], x.shape[-1])  # [T*H, W, C]: cv2-sized


def _lut(rgb, table):
  """Per-value (256,) or per-channel (3, 256) lookup, applied to the clip."""
  table = np.clip(np.rint(np.asarray(table, np.float64)), 0, 255)
  table = table.astype(np.uint8)
  if table.ndim == 2:
    table = np.ascontiguousarray(table.T[None])  # (1, 256, 3)
  return cv2.LUT(_flat(rgb), table).reshape(rgb.shape)


def _gray(rgb):
  """ITU-R 601 luma ("L" in PIL) per pixel, as [T, H, W] uint8."""
  return cv2.cvtColor(_flat(rgb), cv2.COLOR_RGB2GRAY).reshape(rgb.shape[:-1])


def _gray3(rgb):
  return np.repeat(_gray(rgb)[..., None], 3, axis=-1)


def _blend(rgb, degenerate, factor):
  """PIL ImageEnhance: degenerate + factor * (image - degenerate), saturated."""
  out = cv2.addWeighted(_flat(rgb), float(factor), _flat(degenerate),
                        1.0 - float(factor), 0.0)
  return out.reshape(rgb.shape)


LUMA = np.array([0.299, 0.587, 0.114])
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                 [0.211, -0.523, 0.312]])


def _means(rgb) -> np.ndarray:
  return np.array(cv2.mean(_flat(rgb))[:3])


def _hist(rgb) -> np.ndarray:
  """Per-channel histograms over the whole clip, (3, 256)."""
  flat = _flat(rgb)
  return np.stack([cv2.calcHist([flat], [c], None, [256], [0, 256]).ravel()
                   for c in range(3)]).astype(np.int64)


def _affine(rgb, m, t=(0.0, 0.0, 0.0)):
  """x -> m @ x + t on every pixel (one cv2.transform pass), saturated."""
  mt = np.concatenate([np.asarray(m, np.float64),
                       np.asarray(t, np.float64)[:, None]], 1)
  return cv2.transform(_flat(rgb), mt).reshape(rgb.shape)


def saturation_matrix(f):
  """Blend with the luma grey (PIL ImageEnhance.Color)."""
  return f * np.eye(3) + (1 - f) * np.tile(LUMA, (3, 1))


def hue_matrix(turns):
  """Hue rotation by `turns` of a full turn about the grey axis, in YIQ."""
  a = 2 * math.pi * turns
  rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)],
                  [0, math.sin(a), math.cos(a)]])
  return np.linalg.inv(_YIQ) @ rot @ _YIQ


def adjust_saturation(rgb, f):
  return _affine(rgb, saturation_matrix(f))


def adjust_contrast_gray(rgb, f):
  """PIL Contrast: blend with the mean luma (over the whole clip)."""
  m = float(LUMA @ _means(rgb))
  return _lut(rgb, m + f * (np.arange(256) - m))


def color_jitter(rgb, rng, aug):
  """DMVR order: brightness (additive), saturation, contrast, hue.

  All four are affine in RGB (hue as a rotation about the grey axis in YIQ,
  a linear stand-in for TF's HSV hue shift), so they compose into one map
  applied in a single pass and clipped once at the end, as DMVR clips once.
  """
  b, s, c, h = rng.uniform(-1, 1, 4)
  m, t = np.eye(3), np.full(3, 255.0 * b * aug.color_brightness)
  sat = saturation_matrix(1 + s * aug.color_saturation)
  m, t = sat @ m, sat @ t
  mean = m @ _means(rgb) + t  # per-channel clip mean after the steps so far
  c = 1 + c * aug.color_contrast
  m, t = c * m, c * t + (1 - c) * mean
  hue = hue_matrix(h * aug.color_hue)
  return _affine(rgb, hue @ m, hue @ t)


def _autocontrast(rgb):
  hist = _hist(rgb)
  i = np.arange(256, dtype=np.float64)
  tables = []
  for ch in range(3):
    nz = np.nonzero(hist[ch])[0]
    lo, hi = nz[0], nz[-1]
    tables.append((i - lo) * (255.0 / (hi - lo)) if hi > lo else i)
  return _lut(rgb, np.stack(tables))


def _equalize(rgb):
  tables = []
  for hist in _hist(rgb):
    nz = hist[hist > 0]
    step = (hist.sum() - nz[-1]) // 255
    if step == 0:
      tables.append(np.arange(256))
      continue
    n = np.concatenate([[0], np.cumsum(hist)[:-1]])
    tables.append(np.minimum((n + step // 2) // step, 255))
  return _lut(rgb, np.stack(tables))


def _sharpness(rgb, f):
  kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13
  smooth = np.stack([cv2.filter2D(fr, -1, kernel) for fr in rgb])
  smooth[:, [0, -1]] = rgb[:, [0, -1]]  # PIL keeps the border pixels
  smooth[:, :, [0, -1]] = rgb[:, :, [0, -1]]
  return _blend(rgb, smooth, f)


def warp(clip, m, forward: bool = False):
  """Same affine map on every frame (dst->src unless `forward`), fill 128."""
  h, w, c = clip.shape[1:]
  flags = cv2.INTER_LINEAR | (0 if forward else cv2.WARP_INVERSE_MAP)
  out = np.empty_like(clip)
  for t, frame in enumerate(clip):
    out[t] = cv2.warpAffine(np.ascontiguousarray(frame), m, (w, h), flags=flags,
                            borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(FILL,) * 4).reshape(h, w, c)
  return out


def randaugment_op(clip, name: str, level: float, sign: float):
  """One RandAugment op at `level` (magnitude / 10) with direction `sign`."""
  h, w = clip.shape[1:3]
  if name == "identity":
    return clip
  if name == "rotate":
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), sign * 30 * level,
                                1.0)
    return warp(clip, m, forward=True)
  if name in ("shear_x", "shear_y", "translate_x", "translate_y"):
    m = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    if name == "shear_x":
      m[0, 1] = sign * 0.3 * level
    elif name == "shear_y":
      m[1, 0] = sign * 0.3 * level
    elif name == "translate_x":
      m[0, 2] = sign * 0.45 * level * w
    else:
      m[1, 2] = sign * 0.45 * level * h
    return warp(clip, m)
  rgb = _rgb(clip)
  if rgb is None:  # flow only: colour ops do not apply
    return clip
  f = 1.0 + sign * 0.9 * level  # timm's "increasing" enhance factor
  if name == "autocontrast":
    rgb = _autocontrast(rgb)
  elif name == "equalize":
    rgb = _equalize(rgb)
  elif name == "solarize":
    thr = 256 - int(256 * level)
    i = np.arange(256)
    rgb = _lut(rgb, np.where(i >= thr, 255 - i, i))
  elif name == "posterize":
    bits = min(max(4 - int(4 * level), 0), 8)
    rgb = _lut(rgb, np.arange(256) & (~(2 ** (8 - bits) - 1) & 255))
  elif name == "color":
    rgb = adjust_saturation(rgb, f)
  elif name == "contrast":
    rgb = adjust_contrast_gray(rgb, f)
  elif name == "brightness":
    rgb = _lut(rgb, np.arange(256) * f)
  elif name == "sharpness":
    rgb = _sharpness(rgb, f)
  else:
    raise ValueError(name)
  return _merge(clip, rgb)


def randaugment(clip, rng, aug):
  for _ in range(aug.randaugment_num_ops):
    name = RANDAUGMENT_OPS[rng.integers(len(RANDAUGMENT_OPS))]
    apply, sign = rng.random() < aug.randaugment_prob, rng.choice((-1.0, 1.0))
    mag = aug.randaugment_magnitude
    if aug.randaugment_magnitude_std > 0:
      mag = max(rng.normal(mag, aug.randaugment_magnitude_std), 0.0)
    if apply:
      clip = randaugment_op(clip, name, mag / 10, sign)
  return clip


def erase_box(rng, h: int, w: int):
  """(top, left, eh, ew) of a random-erasing rectangle, or None (10 tries)."""
  for _ in range(10):
    target = h * w * rng.uniform(*ERASE_AREA)
    aspect = math.exp(rng.uniform(*ERASE_LOG_ASPECT))
    eh = int(round(math.sqrt(target * aspect)))
    ew = int(round(math.sqrt(target / aspect)))
    if 0 < eh < h and 0 < ew < w:
      return (int(rng.integers(0, h - eh + 1)),
              int(rng.integers(0, w - ew + 1)), eh, ew)
  return None


def random_erase(clip, rng, aug):
  box = erase_box(rng, *clip.shape[1:3])
  if box is None:
    return clip
  top, left, eh, ew = box
  c = clip.shape[-1]
  fill = np.full((eh, ew, c), FILL, np.float64)
  n_rgb = 3 if c in (3, 5) else 0
  if n_rgb:
    z = rng.standard_normal((eh, ew, n_rgb))
    fill[..., :n_rgb] = 255 * (np.asarray(aug.mean[:3]) +
                               np.asarray(aug.std[:3]) * z)
  out = np.array(clip)  # writable copy
  out[:, top:top + eh, left:left + ew] = np.clip(np.rint(fill), 0, 255)
  return out


def apply(clip, rng, aug):
  """Colour jitter, grayscale, RandAugment, random erasing (each if on)."""
  if aug.color_jitter > 0 and rng.random() < aug.color_jitter:
    rgb = _rgb(clip)
    if rgb is not None:
      clip = _merge(clip, color_jitter(rgb, rng, aug))
  if aug.color_grayscale > 0 and rng.random() < aug.color_grayscale:
    rgb = _rgb(clip)
    if rgb is not None:
      clip = _merge(clip, _gray3(rgb))
  if aug.randaugment_num_ops > 0:
    clip = randaugment(clip, rng, aug)
  if aug.random_erasing_prob > 0 and rng.random() < aug.random_erasing_prob:
    clip = random_erase(clip, rng, aug)
  return clip
