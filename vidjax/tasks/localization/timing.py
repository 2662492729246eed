"""The one definition of seconds <-> frames <-> window-feature index.

Time model: stored frame k (0-based) covers the interval [k / fps, (k+1) / fps)
seconds, so a video of T frames lasts T / fps seconds, frames [a, b) are the
seconds [a / fps, b / fps], and a continuous frame coordinate f is the time
f / fps (frame k's own centre is k + 0.5).

Window features (Lin et al. 2019, "BMN", Sec. 4.1; Zhang et al. 2022,
"ActionFormer", Sec. 4: features from sliding windows of W frames every S
frames): feature i covers frames [offset + i S, offset + i S + W), where W is
the `span` of stored frames the window reaches ((frames - 1) * frame_stride + 1
for a clip of `frames` frames read `frame_stride` apart, as
tools/extract_features.py reads them). Its centre is the continuous frame
coordinate offset + i S + W / 2 -- the HALF-WINDOW OFFSET the pre-extracted
feature releases leave undocumented -- so its centre time is
(offset + i S + W / 2) / fps, and a time t sits at the fractional feature
index (t fps - offset - W / 2) / S. tools/extract_features.py writes its JSON's
times with this definition; `from_feature_meta` reads only its window
geometry (fps, span, stride, first start frame).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from vidjax.errors import VidjaxError


@dataclasses.dataclass(frozen=True)
class FeatureTiming:
  """Where the window features of one video sit in time.

  Attributes:
    fps: stored frames per second.
    span: W, stored frames one feature covers.
    stride: S, stored frames between consecutive features' first frames.
    offset: first frame of feature 0.
  """

  fps: float
  span: int = 1
  stride: int = 1
  offset: int = 0

  def __post_init__(self):
    if not (self.fps > 0 and self.span >= 1 and self.stride >= 1
            and self.offset >= 0):
      raise VidjaxError(
          f"feature timing needs fps > 0, span >= 1, stride >= 1, offset >= 0"
          f" (got fps={self.fps}, span={self.span}, stride={self.stride}, "
          f"offset={self.offset})")

  def start_frame(self, i):
    """First frame of feature i."""
    return self.offset + np.asarray(i) * self.stride

  def centre_frame(self, i):
    """Continuous frame coordinate of feature i's centre (offset + iS + W/2)."""
    return self.offset + np.asarray(i, np.float64) * self.stride + self.span / 2

  def centre_time(self, i):
    """Seconds at feature i's centre: (offset + i S + W / 2) / fps."""
    return self.centre_frame(i) / self.fps

  def index_at(self, seconds):
    """Fractional feature index whose centre is at `seconds` (inverse of
    `centre_time`)."""
    return (np.asarray(seconds, np.float64) * self.fps - self.offset
            - self.span / 2) / self.stride

  def seconds_at(self, index):
    """Seconds at a fractional feature index (same as `centre_time`)."""
    return self.centre_time(index)

  def num_features(self, num_frames: int) -> int:
    """Windows whose whole span fits in num_frames (at least one)."""
    return max(int(num_frames) - self.offset - self.span, 0) // self.stride + 1

  @classmethod
  def frames(cls, fps: float) -> "FeatureTiming":
    """Per-frame 'features' (W = S = 1): feature i is frame i, centre i + .5."""
    return cls(fps=float(fps), span=1, stride=1)

  @classmethod
  def windows(cls, fps: float, frames: int, frame_stride: int = 1,
              stride: int | None = None, offset: int = 0) -> "FeatureTiming":
    """Clips of `frames` frames read `frame_stride` apart, one every `stride`
    frames (default: half the span, as tools/extract_features.py): span =
    (frames - 1) * frame_stride + 1."""
    span = (int(frames) - 1) * int(frame_stride) + 1
    return cls(fps=float(fps), span=span,
               stride=int(stride) if stride else max(span // 2, 1),
               offset=int(offset))

  def window_frames(self, i, frames: int, num_frames: int) -> np.ndarray:
    """Frame indices [len(i), frames] a window clip reads (frame_stride =
    (span - 1) / (frames - 1)), clamped to the video's last frame."""
    step = (self.span - 1) // max(int(frames) - 1, 1)
    idx = (np.asarray(self.start_frame(np.atleast_1d(i)))[:, None]
           + step * np.arange(int(frames))[None])
    return np.minimum(idx, int(num_frames) - 1)

  @classmethod
  def from_feature_meta(cls, meta: dict, where: str = "") -> "FeatureTiming":
    """The timing of a tools/extract_features.py JSON (its fps, span and
    stride; its rows' start frames checked against start_frame(i))."""
    try:
      timing = cls(fps=float(meta["fps"]), span=int(meta["span"]),
                   stride=int(meta["stride"]),
                   offset=int(meta.get("features", [{}])[0].get(
                       "start_frame", 0)) if meta.get("features") else 0)
    except (KeyError, TypeError, ValueError) as e:
      raise VidjaxError(f"{where or 'feature JSON'}: needs fps, span and "
                        f"stride ({type(e).__name__}: {e})") from None
    for j, row in enumerate(meta.get("features", ())):
      if int(row["start_frame"]) != int(timing.start_frame(j)):
        raise VidjaxError(
            f"{where or 'feature JSON'}: feature {j} starts at frame "
            f"{row['start_frame']}, not offset + {j} * stride = "
            f"{int(timing.start_frame(j))}: not a regular window grid")
    return timing


def frames_to_seconds(frames, fps: float):
  """Continuous frame coordinate(s) -> seconds (frame k starts at k / fps)."""
  return np.asarray(frames, np.float64) / fps


def seconds_to_frames(seconds, fps: float):
  """Seconds -> continuous frame coordinate(s) (frames_to_seconds's
  inverse)."""
  return np.asarray(seconds, np.float64) * fps
