"""The cheap clip-saliency sampler of SCSampler (Korbar et al., ICCV 2019).

SCSampler's visual samplers read signals far cheaper than the clip
classifier's input -- compressed-video motion vectors and residuals, or
low-resolution frames (paper Sec. 3.2) -- and a small network turns them
into a saliency score per clip. Here the signal is frame-difference
statistics of the clip at low resolution:

  g[t] = the clip's frame t in grey, average-pooled to res x res;
  m[t] = frame t's mean intensity;
  for every lag l = 1 .. F-1:  log(mean |g[t+l] - g[t]| + 1e-3) (how far
  things moved: translation, rotation) and log(mean |m[t+l] - m[t]| + 1e-4)
  (how much the bright area changed: grow / shrink);

those 2 (F - 1) values, and the same minus their median over the video's
candidate clips (the video's idle level: a clip is salient when it moves
more than the rest of its video), are the sampler's input (4 (F - 1)
features); `SaliencyMLP` maps them to one logit. Its target is the clip's
usefulness from the ground truth: at least half of the clip's frames lie
inside the action (not SCSampler's "the classifier is right" label, which
needs the classifier on every training clip; the ground-truth label is what
the ROC-AUC bar scores).

Cost per clip (`feature_macs`, additions counted as multiply-adds): the
grey pooling reads every pixel of the F frames once (F H W C), the
differences cost (F - l)(res^2 + 1) per lag; the MLP's multiply-adds are
vidjax.costs.kernel_gmacs of the module.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError

MODEL_NAMES = ("saliency_mlp",)


def num_features(frames: int) -> int:
  return 4 * (int(frames) - 1)


def video_features(clips: np.ndarray, res: int = 8) -> np.ndarray:
  """[n, F, H, W, C] uint8 candidate clips of ONE video -> [n, 4 (F - 1)]
  float32 sampler inputs (module docstring)."""
  clips = np.asarray(clips, np.float32)
  n, f, h, w, _ = clips.shape
  if h % res or w % res:
    raise VidjaxError(f"config.long_video.sampler_res={res} must divide the "
                      f"frame size {h}x{w}")
  g = clips.mean(-1).reshape(n, f, res, h // res, res, w // res).mean((3, 5))
  m = g.mean((2, 3))
  out = []
  for lag in range(1, f):
    out.append(np.log(np.abs(g[:, lag:] - g[:, :-lag]).mean((1, 2, 3)) +
                      1e-3))
    out.append(np.log(np.abs(m[:, lag:] - m[:, :-lag]).mean(1) + 1e-4))
  x = np.stack(out, -1)
  return np.concatenate([x, x - np.median(x, 0, keepdims=True)],
                        -1).astype(np.float32)


def feature_macs(frames: int, height: int, width: int, channels: int = 3,
                 res: int = 8) -> int:
  """Multiply-adds of `video_features` per clip (additions counted)."""
  pooled = frames * height * width * channels
  diffs = sum((frames - lag) * (res * res + 1) for lag in range(1, frames))
  return int(pooled + diffs)


class SaliencyMLP(nn.Module):
  """Standardised sampler features [B, D] -> saliency logits [B]."""

  hidden: int = 32
  num_layers: int = 1
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    for _ in range(self.num_layers):
      x = jnp.tanh(nn.Dense(self.hidden)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(1)(x)[..., 0]


def build_model(model_config) -> SaliencyMLP:
  """config.model -> the sampler (one-line VidjaxError on unknown fields)."""
  fields = dict(model_config)
  name = fields.pop("name", "")
  if name not in MODEL_NAMES:
    raise VidjaxError(f"config.model.name={name!r}: the long_video task's "
                      f"sampler is one of {', '.join(MODEL_NAMES)}")
  known = ("hidden", "num_layers", "dropout")
  for key, value in fields.items():
    if key not in known:
      raise VidjaxError(f"config.model.{key} is not an option of "
                        f"{name!r}; options: {', '.join(known)}")
  for key in ("hidden", "num_layers"):
    if key in fields and int(fields[key]) < 1:
      raise VidjaxError(f"config.model.{key} must be >= 1, got "
                        f"{fields[key]}")
  return SaliencyMLP(**fields)
