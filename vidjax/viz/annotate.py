"""A video with its predicted labels drawn over every frame (tools/predict.py
`--annotate`).

The source file is decoded again with PyAV (FFmpeg) at a display size (short
side `DISPLAY_SHORT` at most; tiny videos are enlarged by pixel repetition so
that the text fits), the top classes with their probabilities are drawn on a
dark band at the top with Pillow, and the frames are written as an animated
GIF (Pillow, one frame per decoded frame at the source's rate) or an H.264
MP4 (PyAV, yuv420p, even dimensions).
"""
import itertools
import math
import os
from typing import Sequence

import numpy as np

from vidjax.errors import VidjaxError

DISPLAY_SHORT = 360
MIN_SHORT = 192
FORMATS = (".gif", ".mp4")


def label_lines(top: Sequence[dict], count: int = 3) -> list:
  """["translate_right 93.1%", ...] from predict's top-k entries."""
  return [f"{t['class']} {100 * t['probability']:.1f}%" for t in top[:count]]


def _font(size: int):
  from PIL import ImageFont  # noqa: PLC0415
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow without FreeType: the fixed bitmap font
    return ImageFont.load_default()


def _display_size(height: int, width: int) -> tuple:
  short = min(height, width)
  scale = min(1.0, DISPLAY_SHORT / short)
  h, w = int(round(height * scale)), int(round(width * scale))
  return h - h % 2, w - w % 2  # even: yuv420p


def overlay(frame: np.ndarray, lines: Sequence[str], font) -> np.ndarray:
  """The RGB frame with `lines` on a dark band at its top."""
  from PIL import Image, ImageDraw  # noqa: PLC0415
  image = Image.fromarray(frame).convert("RGBA")
  band = Image.new("RGBA", image.size, (0, 0, 0, 0))
  draw = ImageDraw.Draw(band)
  size = getattr(font, "size", 11)
  height = int(len(lines) * size * 1.25 + size * 0.5)
  draw.rectangle([0, 0, image.size[0], height], fill=(0, 0, 0, 150))
  for i, line in enumerate(lines):
    draw.text((size * 0.4, size * 0.25 + i * size * 1.25), line,
              fill=(255, 255, 255, 255) if i == 0 else (200, 200, 200, 255),
              font=font)
  return np.asarray(Image.alpha_composite(image, band).convert("RGB"))


def _frames(path: str):
  """(RGB frames iterator, fps) of the source file."""
  import av  # noqa: PLC0415
  container = av.open(path)
  stream = container.streams.video[0]
  rate = stream.average_rate or stream.guessed_rate
  fps = float(rate) if rate else 25.0

  def generate():
    with container:
      for frame in container.decode(stream):
        yield frame.to_ndarray(format="rgb24")
  return generate(), fps


def _fit(frame: np.ndarray, size: tuple) -> np.ndarray:
  import cv2  # noqa: PLC0415
  h, w = frame.shape[:2]
  if min(h, w) < MIN_SHORT:  # enlarge tiny frames by pixel repetition
    k = math.ceil(MIN_SHORT / min(h, w))
    frame = frame.repeat(k, 0).repeat(k, 1)
    h, w = frame.shape[:2]
    size = (h - h % 2, w - w % 2)
  if (h, w) != tuple(size):
    frame = cv2.resize(frame, (size[1], size[0]),
                       interpolation=cv2.INTER_AREA)
  return frame


def annotate(path: str, top: Sequence[dict], out: str) -> dict:
  """Writes `out` (.gif or .mp4): `path`'s frames with the top classes
  drawn on them. Returns {"out", "frames", "fps", "size"}."""
  ext = os.path.splitext(out)[1].lower()
  if ext not in FORMATS:
    raise VidjaxError(f"--annotate={out}: write a .gif or .mp4 file")
  frames, fps = _frames(path)
  lines = label_lines(top)
  first = next(frames)
  size = _display_size(*first.shape[:2])
  shown = _fit(first, size)
  font = _font(max(10, min(shown.shape[:2]) // 14))
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  count = 0
  if ext == ".gif":
    from PIL import Image  # noqa: PLC0415
    images = [Image.fromarray(overlay(shown, lines, font))]
    images += [Image.fromarray(overlay(_fit(f, size), lines, font))
               for f in frames]
    images[0].save(out, save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, int(round(1000 / fps))))
    count = len(images)
  else:
    import av  # noqa: PLC0415
    from fractions import Fraction  # noqa: PLC0415
    with av.open(out, "w") as container:
      stream = container.add_stream(
          "libx264", rate=Fraction(fps).limit_denominator(1001))
      stream.height, stream.width = shown.shape[:2]
      stream.pix_fmt = "yuv420p"
      for frame in itertools.chain([shown], (_fit(f, size) for f in frames)):
        picture = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(overlay(frame, lines, font)), format="rgb24")
        for packet in stream.encode(picture):
          container.mux(packet)
        count += 1
      for packet in stream.encode():
        container.mux(packet)
  return {"out": os.path.abspath(out), "frames": count, "fps": fps,
          "size": list(shown.shape[:2])}
