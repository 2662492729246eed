"""Writing visualisations a person can open: animated GIFs (Pillow) and PNG
frame grids (matplotlib, Agg backend).

* `save_gif`: frames (T, h, w, 3) uint8, upscaled `scale` x by pixel
  repetition, with a BAR-pixel progress bar under each frame (frame t fills
  (t+1)/T of it; it also keeps frames distinct, since GIF writers merge
  identical consecutive frames). Size: (w*scale, h*scale + BAR), T frames.
* `save_grid`: rows of frames as a PNG of CELL_PX x CELL_PX cells, one row
  per entry and one column per frame: (T*CELL_PX, rows*CELL_PX) pixels.
"""
import os
from typing import Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

BAR = 3          # progress-bar height under each GIF frame, pixels
DPI = 100
CELL_PX = 128    # PNG cell size, pixels


def to_uint8_rgb(clip, mean, std) -> np.ndarray:
  """Normalised (T, H, W, C) input -> displayable uint8 (T, H, W, 3): the
  RGB channels de-normalised, or a flow colour image without RGB."""
  clip = np.asarray(clip, np.float32)
  mean = np.asarray(mean, np.float32)[:clip.shape[-1]]
  std = np.asarray(std, np.float32)[:clip.shape[-1]]
  x = clip * std + mean
  if clip.shape[-1] >= 3:
    return np.round(np.clip(x[..., :3], 0, 1) * 255).astype(np.uint8)
  return flow_to_rgb(x[..., :2] - 0.5)


def flow_to_rgb(flow) -> np.ndarray:
  """(T, H, W, 2) displacements -> uint8 (T, H, W, 3): hue = direction,
  value = magnitude (relative to the clip's largest)."""
  flow = np.asarray(flow, np.float32)
  mag = np.hypot(flow[..., 0], flow[..., 1])
  hue = (np.arctan2(flow[..., 1], flow[..., 0]) / (2 * np.pi)) % 1.0
  val = mag / max(float(mag.max()), 1e-12)
  hsv = np.stack([hue, np.ones_like(hue), val], -1)
  return np.round(matplotlib.colors.hsv_to_rgb(hsv) * 255).astype(np.uint8)


def heat_to_rgb(heat, vmax=None, cmap: str = "jet") -> np.ndarray:
  """(..., H, W) >= 0 -> uint8 (..., H, W, 3), scaled by vmax (default: max)."""
  heat = np.asarray(heat, np.float32)
  vmax = float(heat.max()) if vmax is None else float(vmax)
  rgba = matplotlib.colormaps[cmap](heat / max(vmax, 1e-12))
  return np.round(rgba[..., :3] * 255).astype(np.uint8)


def overlay(frames, heat, alpha: float = 0.5) -> np.ndarray:
  """Blend a heat map (T, H, W) over frames (T, H, W, 3) uint8, one colour
  scale for the whole clip."""
  colour = heat_to_rgb(heat).astype(np.float32)
  out = (1 - alpha) * np.asarray(frames, np.float32) + alpha * colour
  return np.round(out).astype(np.uint8)


def gif_size(height: int, width: int, scale: int) -> Tuple[int, int]:
  """(width, height) of a `save_gif` of (h, w) frames."""
  return width * scale, height * scale + BAR


def save_gif(frames, path: str, scale: int = 4, duration_ms: int = 200) -> str:
  frames = np.asarray(frames, np.uint8)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"save_gif wants (T, h, w, 3) uint8, got {frames.shape}")
  total, height, width = frames.shape[:3]
  big = np.repeat(np.repeat(frames, scale, 1), scale, 2)
  images = []
  for t in range(total):
    bar = np.zeros((BAR, width * scale, 3), np.uint8)
    bar[:, :max(1, round(width * scale * (t + 1) / total))] = 255
    images.append(Image.fromarray(np.concatenate([big[t], bar], 0)))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  images[0].save(path, save_all=True, append_images=images[1:],
                 duration=duration_ms, loop=0, disposal=1)
  return path


def save_grid(rows: Sequence[Tuple[str, np.ndarray]], path: str,
              title: str = "") -> str:
  """PNG: each row (label, frames (T, h, w, 3) uint8) in one line of cells."""
  cols = max(len(frames) for _, frames in rows)
  inch = CELL_PX / DPI
  fig, axes = plt.subplots(len(rows), cols, squeeze=False,
                           figsize=(cols * inch, len(rows) * inch), dpi=DPI)
  for r, (label, frames) in enumerate(rows):
    for t in range(cols):
      ax = axes[r, t]
      ax.axis("off")
      if t < len(frames):
        ax.imshow(frames[t], interpolation="nearest")
        ax.set_title(f"{label} t={t}" if t == 0 else f"t={t}", fontsize=6,
                     pad=2)
  if title:
    fig.suptitle(title, fontsize=7)
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86,
                      wspace=0.05, hspace=0.3)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path
