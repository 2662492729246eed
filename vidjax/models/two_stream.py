"""Two-stream network (Simonyan & Zisserman, NeurIPS 2014, "Two-Stream
Convolutional Networks for Action Recognition in Videos").

Input: (B, T, H, W, 5), each frame's RGB then its 2 optical-flow channels
(dataset modality "rgb+flow"; the flow of frame t is the displacement from
frame t to t+1, so the last frame's flow is unused).
* Spatial stream: a 2D CNN on one RGB frame, the centre one, T // 2.
* Temporal stream: a 2D CNN on the stacked flow of frames 0..T-2, 2(T-1)
  input channels ordered as in the paper's Eq. 1 (channel 2k is frame k's
  horizontal displacement, 2k+1 its vertical one). `flow_mean_subtraction`
  (the paper's Sec. 3.1) subtracts each displacement field's spatial mean,
  a cheap camera-motion compensation.
* Fusion: `"average"` of the two streams' class probabilities (the paper's
  averaging fusion; the logits returned are log of the averaged softmax,
  so softmax of the output is that average); `"linear"`: one linear layer on
  the concatenated pooled features of both streams (the paper fuses with an
  SVM on the stacked softmax scores; a learned linear layer is the trainable
  analogue). `streams="rgb"|"flow"` runs one stream alone (its own head).

Each stream is the per-frame ResNet of `single_frame.py` (`FrameResNet`)
under `spatial/` and `temporal/`. The paper's streams are CNN-M-2048
networks at 224x224 with L=10 flow frames (20 channels); the paper gives no
parameter count for them, so the paper-size variant (`configs/
two_stream.py:ucf101`) uses ResNet-18 streams (7x7 stem + max pool, two
blocks per stage, widths 64..512) at 224x224 with L=10, stated as such.
"""
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.models.single_frame import FrameResNet
from vidjax.models.fusion import stack_frames_on_channels
from vidjax.registry import register_model

FUSIONS = ("average", "linear")
STREAMS = ("both", "rgb", "flow")


def spatial_input(x):
  """The centre frame's RGB: (B, T, H, W, >=3) -> (B, H, W, 3)."""
  return x[:, x.shape[1] // 2, :, :, :3]


def temporal_input(x, mean_subtraction: bool = False):
  """Stacked flow of frames 0..T-2: (B, T, H, W, 5) -> (B, H, W, 2(T-1))."""
  flow = x[:, :-1, :, :, 3:5]
  if mean_subtraction:
    flow = flow - flow.mean(axis=(2, 3), keepdims=True)
  return stack_frames_on_channels(flow)


def average_fusion(spatial_logits, temporal_logits):
  """log((softmax(a) + softmax(b)) / 2), computed stably."""
  return (jnp.logaddexp(jax.nn.log_softmax(spatial_logits),
                        jax.nn.log_softmax(temporal_logits)) - jnp.log(2.0))


@register_model("two_stream")
class TwoStream(nn.Module):
  """Spatial (RGB) + temporal (flow) 2D CNNs. (B,T,H,W,5) -> (B, K) f32.

  Attributes:
    num_classes: output classes.
    widths, blocks_per_stage, stem_stride, stem_kernel, stem_pool: each
      stream's 2D ResNet (see `single_frame.resnet2d_features`).
    fusion: "average" (of softmaxes) | "linear" (on concatenated features).
    streams: "both" | "rgb" | "flow".
    flow_mean_subtraction: subtract each flow field's spatial mean.
    dropout_rate: dropout on each stream's pooled features.
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  stem_kernel: int = 3
  stem_pool: bool = False
  fusion: str = "average"
  streams: str = "both"
  flow_mean_subtraction: bool = True
  dropout_rate: float = 0.0
  dtype: str = "float32"

  def check_input(self, shape):
    if self.fusion not in FUSIONS:
      raise VidjaxError(f"config.model.fusion={self.fusion!r}; expected one "
                        f"of {FUSIONS}")
    if self.streams not in STREAMS:
      raise VidjaxError(f"config.model.streams={self.streams!r}; expected "
                        f"one of {STREAMS}")
    needs_flow = self.streams != "rgb"
    if shape[-1] != 5 and (needs_flow or shape[-1] != 3):
      raise VidjaxError(
          f"two_stream (streams={self.streams!r}) needs RGB + flow input, 5 "
          f"channels per frame, got {shape[-1]}: set config.dataset.modality"
          "='rgb+flow'")
    if needs_flow and shape[1] < 2:
      raise VidjaxError("two_stream: the flow stream needs "
                        "config.dataset.num_frames >= 2")

  def _stream(self, name, image, train):
    maps = FrameResNet(self.widths, self.blocks_per_stage, self.stem_stride,
                       self.stem_kernel, self.stem_pool,
                       jnp.dtype(self.dtype), name=name)(image, train=train)
    features = maps.mean(axis=(1, 2)).astype(jnp.float32)
    return nn.Dropout(self.dropout_rate)(features, deterministic=not train)

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape)
    features = {}
    if self.streams in ("both", "rgb"):
      features["spatial"] = self._stream("spatial", spatial_input(x), train)
    if self.streams in ("both", "flow"):
      features["temporal"] = self._stream(
          "temporal", temporal_input(x, self.flow_mean_subtraction), train)
    if self.streams == "both" and self.fusion == "linear":
      both = jnp.concatenate([features["spatial"], features["temporal"]], -1)
      return nn.Dense(self.num_classes, name="fusion_head")(both)
    logits = {k: nn.Dense(self.num_classes, name=f"{k}_head")(v)
              for k, v in features.items()}
    for k, v in logits.items():
      self.sow("intermediates", f"{k}_logits", v)
    if self.streams != "both":
      return next(iter(logits.values()))
    return average_fusion(logits["spatial"], logits["temporal"])
