"""Video file -> resized JPEG frames (build), JPEG frames -> RGB (read).

Build time (`decode_to_jpegs`): PyAV (FFmpeg) decodes any container/codec it
reads; every frame is converted to 8-bit colour (grayscale and any YUV layout
become RGB), resized so its short side is `resize_short` (aspect kept; all
frames of a video get the size computed from its first frame, so a size change
mid-stream or odd dimensions are resized, not fatal), optionally subsampled to
`fps`, and JPEG-encoded once. Anything wrong with a file raises `BadVideo` whose
message is the one-line reason shown in the build report.

Read time (`LazyVideo`): decodes only the JPEGs of the frames a clip samples;
`FrameCache` decodes each frame once for the several clips of one video (the
copies of repeated sampling, the views of a test video).
"""
from __future__ import annotations

import fractions
import os
import re
from typing import Sequence

import cv2
import numpy as np

# A file is "truncated" when it decodes to fewer than this fraction of the
# frames its container declares (frame count, else duration x frame rate).
TRUNCATED_FRACTION = 0.8


class BadVideo(Exception):
  """A video file that cannot be used; str(e) is the reason for the report."""


def _one_line(e: BaseException, path: str = "") -> str:
  text = str(e).replace(f": '{path}'", "") if path else str(e)
  text = re.sub(r"^\[Errno -?\d+\] ", "", " ".join(text.split()))
  return (text or type(e).__name__)[:200]


def target_size(height: int, width: int, resize_short: int) -> tuple[int, int]:
  """(H, W) with short side `resize_short` (<= 0: unchanged), aspect kept."""
  if resize_short <= 0:
    return height, width
  scale = resize_short / min(height, width)
  return (max(1, int(round(height * scale))), max(1, int(round(width * scale))))


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """cv2 resize to (H, W): INTER_AREA to shrink, INTER_LINEAR to enlarge."""
  h, w = frame.shape[:2]
  if (h, w) == tuple(size):
    return frame
  shrink = size[0] * size[1] <= h * w
  return cv2.resize(frame, (size[1], size[0]), interpolation=(
      cv2.INTER_AREA if shrink else cv2.INTER_LINEAR))


def _declared_frames(container, stream) -> float:
  """Frames the container claims to hold (0: it does not say)."""
  if stream.frames and stream.frames > 0:
    return float(stream.frames)
  rate = stream.average_rate or stream.guessed_rate
  if not rate:
    return 0.0
  if stream.duration and stream.time_base:
    return float(stream.duration * stream.time_base * rate)
  if container.duration:  # microseconds (mkv/webm keep only this)
    return float(container.duration) / 1e6 * float(rate)
  return 0.0


class _FpsSelector:
  """Keeps the first frame at or after each multiple of 1/fps from the start."""

  def __init__(self, fps: float, native: float | None):
    self.step = None
    if fps > 0 and native and native > fps * 1.0001:
      self.step = 1 / fractions.Fraction(fps).limit_denominator(1000)
    self.t0 = None
    self.next = fractions.Fraction(0)

  def keep(self, t: fractions.Fraction) -> bool:
    if self.step is None:
      return True
    if self.t0 is None:
      self.t0 = t
    t = t - self.t0
    if t < self.next - fractions.Fraction(1, 10**6):
      return False
    self.next = (t // self.step + 1) * self.step
    return True


def decode_to_jpegs(path: str, resize_short: int = 128, fps: float = 0.0,
                    jpeg_quality: int = 90, threads: int = 0) -> dict:
  """Decodes a whole video file into JPEG-encoded, resized frames.

  `threads`: FFmpeg decoder threads (0: FFmpeg's choice, one per core). The
  build's worker processes pass 1: the cores are shared between processes.

  Returns:
    {"frames": [bytes, ...], "height": H, "width": W, "fps": stored frame
    rate (0.0 if unknown), "native_frames": frames decoded before `fps`
    subsampling, "t0": the first stored frame's time in seconds}.

  Raises:
    BadVideo: empty, unopenable (corrupt/truncated/not a video), no video
      stream, no decoder, a decode error, no frame, or truncated.
  """
  import av  # PyAV: only where videos are decoded.
  if os.path.getsize(path) == 0:
    raise BadVideo("empty file (0 bytes)")
  try:
    container = av.open(path)
  except Exception as e:  # noqa: BLE001 - any failure is reported per file
    raise BadVideo(f"cannot be opened (corrupt, truncated or not a video): "
                   f"{_one_line(e, path)}") from None
  with container:
    if not container.streams.video:
      raise BadVideo("no video stream (corrupt, truncated or audio only)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
      raise BadVideo("unsupported codec: FFmpeg has no decoder for its video "
                     "stream")
    stream.thread_type = "AUTO"
    if threads > 0:
      stream.codec_context.thread_count = int(threads)
    rate = stream.average_rate or stream.guessed_rate
    native_rate = float(rate) if rate else None
    declared = _declared_frames(container, stream)
    selector = _FpsSelector(fps, native_rate)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
    jpegs, size, n = [], None, 0
    try:
      for frame in container.decode(stream):
        t = (fractions.Fraction(frame.pts) * frame.time_base
             if frame.pts is not None and frame.time_base else
             fractions.Fraction(n) / fractions.Fraction(native_rate or 25))
        n += 1
        if not selector.keep(t):
          continue
        if not jpegs:
          t0 = float(t)  # the first stored frame's time (audio alignment)
        bgr = frame.to_ndarray(format="bgr24")
        if size is None:
          size = target_size(bgr.shape[0], bgr.shape[1], resize_short)
        ok, buf = cv2.imencode(".jpg", resize(bgr, size), params)
        if not ok:
          raise BadVideo(f"JPEG encoding failed at frame {n - 1}")
        jpegs.append(buf.tobytes())
    except BadVideo:
      raise
    except Exception as e:  # noqa: BLE001
      raise BadVideo(f"decoding failed after {n} frames: {_one_line(e, path)}"
                     ) from None
  if not jpegs:
    raise BadVideo("no decodable frame (zero-frame video)")
  if declared >= 2 and n < TRUNCATED_FRACTION * declared:
    raise BadVideo(f"truncated: decoded {n} of the {declared:.0f} frames its "
                   "container declares")
  stored_fps = (float(1 / selector.step) if selector.step is not None
                else native_rate or 0.0)
  return {"frames": jpegs, "height": size[0], "width": size[1],
          "fps": stored_fps, "native_frames": n, "t0": t0}


def decode_jpegs(jpegs: Sequence[bytes], indices, height: int,
                 width: int) -> np.ndarray:
  """RGB uint8 [len(indices), H, W, 3] from the JPEGs at `indices`."""
  out = np.empty((len(indices), height, width, 3), np.uint8)
  for k, i in enumerate(indices):
    bgr = cv2.imdecode(np.frombuffer(jpegs[int(i)], np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (height, width):
      raise ValueError(f"frame {int(i)} is not a {height}x{width} JPEG")
    cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[k])
  return out


class LazyVideo:
  """A stored video whose frames are decoded only when asked for.

  `len(v)` frames, `v.shape == (T, H, W, 3)`, `v.frames(idx)` -> uint8
  [len(idx), H, W, 3] RGB decoding only those JPEGs. Also numpy-style
  `v[idx, y0:y1, x0:x1]` (decodes the frames `idx` selects, then slices) and
  `np.asarray(v)` (every frame).
  """

  __slots__ = ("_jpegs", "shape")
  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, jpegs: Sequence[bytes], height: int, width: int):
    self._jpegs = jpegs
    self.shape = (len(jpegs), int(height), int(width), 3)

  def __len__(self) -> int:
    return self.shape[0]

  def __repr__(self) -> str:
    return f"LazyVideo(shape={self.shape})"

  def frames(self, indices) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    t = self.shape[0]
    if idx.size and (idx.min() < -t or idx.max() >= t):
      raise IndexError(f"frame index out of range for a {t}-frame video")
    return decode_jpegs(self._jpegs, idx % max(t, 1), *self.shape[1:3])

  def __getitem__(self, key):
    first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
    if isinstance(first, (int, np.integer)):
      return self.frames([first])[0][rest]
    if isinstance(first, slice):
      idx = np.arange(self.shape[0])[first]
    elif first is Ellipsis:
      idx, rest = np.arange(self.shape[0]), (Ellipsis,) + rest
    else:
      idx = np.asarray(first)
      if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    return self.frames(idx)[(slice(None),) + tuple(rest)]

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self.frames(np.arange(self.shape[0]))
    return out if dtype is None else out.astype(dtype)


class FrameCache:
  """A lazy video that decodes each frame once for all the clips of a group
  (repeated sampling, test crops): the same bytes as decoding per clip."""

  def __init__(self, video):
    self._video, self._done = video, {}
    self.shape = video.shape

  def __len__(self) -> int:
    return len(self._video)

  def frames(self, indices) -> np.ndarray:
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    missing = sorted(set(idx) - self._done.keys())
    if missing:
      self._done.update(zip(missing, np.asarray(self._video.frames(missing))))
    return np.stack([self._done[i] for i in idx])


def shared_frames(video, uses: int):
  """`video` as used by `uses` clips: a FrameCache when it is lazy."""
  return FrameCache(video) if uses > 1 and hasattr(video, "frames") else video
