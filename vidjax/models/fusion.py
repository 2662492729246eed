"""Late and early fusion of a 2D CNN over time (Karpathy, Toderici, Shetty,
Leung, Sukthankar & Fei-Fei, CVPR 2014, "Large-scale Video Classification
with Convolutional Neural Networks", Sec. 3.1; CS231n lecture 10).

Both reuse the per-frame 2D ResNet of `single_frame.py` (`FrameResNet`).

* "late_fusion" (`LateFusion`): the backbone sees every frame on its own
  (time folded into the batch), so frame t's feature map depends on frame t
  only (in eval mode; in train mode BatchNorm's batch statistics couple all
  frames of the batch). Time is fused only at the end:
  - `fusion="mlp"` (Karpathy's late fusion: towers merged in the first fully
    connected layer): the per-frame features -- the spatial maps
    (`flatten_space=True`) or their spatial means -- are flattened and
    concatenated over time into an MLP (`mlp_dims`, ReLU, dropout) and a
    linear layer. Frame order matters: each frame has its own weights.
  - `fusion="pool"` (the lecture's late fusion with pooling): features are
    averaged over space and time, then one linear layer. A linear layer
    commutes with the average, so this equals the single-frame model's
    average of per-frame logits with the same parameters.
* "early_fusion" (`EarlyFusion`): the T frames are stacked on channels, a
  (B, H, W, T*C) image in which channel index t*C + c is frame t, channel c;
  the first 2D conv (the backbone's stem, T*C input channels) sees every
  frame, and after it the network is a plain 2D CNN with no time axis
  (Karpathy et al.'s early fusion: a first conv filter spanning all T
  frames). `stem_init="center"` starts that filter as a single-frame one:
  Kaiming-normal weights (fan-in of one frame) on the centre frame T // 2,
  zeros on the others (the "center" rule of vidjax/models/inflate.py, here
  over the stacked frames), so at init the net is the single-frame CNN on
  the centre frame and every frame's weights get gradients from step 1.
  With "random" (Kaiming normal over all T*C channels) each stem unit
  starts as a random mix of all frames; a moving object's T copies are
  summed into a smear, and shape must be learned through it (issue #17:
  52.1% vs the single frame's 59.4% on `synthetic_motion/appearance` at
  600 steps).

The per-frame feature maps (late fusion) are sown as
`intermediates/frame_features` (B, T, h, w, D).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.models.single_frame import FrameResNet, per_frame
from vidjax.registry import register_model

LATE_FUSIONS = ("mlp", "pool")


@register_model("late_fusion")
class LateFusion(nn.Module):
  """Per-frame 2D ResNet, fused at the end. (B,T,H,W,C) -> (B, K) float32.

  Attributes:
    num_classes: output classes.
    widths, blocks_per_stage, stem_stride: the per-frame 2D ResNet.
    fusion: "mlp" (flatten + concatenate over time, MLP) | "pool" (average
      over space and time, linear).
    flatten_space: "mlp" only: concatenate the spatial maps (True) or the
      spatially averaged vectors (False).
    mlp_dims: hidden widths of the "mlp" fusion.
    dropout_rate: dropout before each fully connected layer of the MLP.
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  fusion: str = "mlp"
  flatten_space: bool = True
  mlp_dims: Tuple[int, ...] = (128,)
  dropout_rate: float = 0.5
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.fusion not in LATE_FUSIONS:
      raise VidjaxError(f"config.model.fusion={self.fusion!r}; expected one "
                        f"of {LATE_FUSIONS}")
    dtype = jnp.dtype(self.dtype)
    maps = per_frame(FrameResNet(self.widths, self.blocks_per_stage,
                                 self.stem_stride, dtype=dtype,
                                 name="backbone"), x, train=train)
    self.sow("intermediates", "frame_features", maps)
    maps = maps.astype(jnp.float32)
    if self.fusion == "pool":
      return nn.Dense(self.num_classes, name="head")(maps.mean(axis=(1, 2, 3)))
    y = maps if self.flatten_space else maps.mean(axis=(2, 3))
    y = y.reshape(y.shape[0], -1)  # concatenation over time (and space)
    for i, dim in enumerate(self.mlp_dims):
      y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
      y = nn.relu(nn.Dense(dim, dtype=dtype, name=f"fc{i}")(y))
    y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    return nn.Dense(self.num_classes, name="head")(y.astype(jnp.float32))


STEM_INITS = ("random", "center")


def centre_frame_init(num_frames: int, channels: int):
  """Initializer of a (kh, kw, T*C, out) stem over frames stacked on
  channels: Kaiming normal for frame T // 2's C channels, zeros elsewhere."""
  base = nn.initializers.kaiming_normal()

  def init(key, shape, dtype=jnp.float32):
    kh, kw, stacked, out = shape
    if stacked != num_frames * channels:
      raise ValueError(f"stem kernel {shape} does not take {num_frames} x "
                       f"{channels} stacked channels")
    start = (num_frames // 2) * channels
    kernel = jnp.zeros(shape, dtype)
    return kernel.at[:, :, start:start + channels].set(
        base(key, (kh, kw, channels, out), dtype))
  return init


def stack_frames_on_channels(x):
  """(B, T, H, W, C) -> (B, H, W, T*C); channel t*C + c is frame t's c."""
  batch, steps, height, width, channels = x.shape
  return x.transpose(0, 2, 3, 1, 4).reshape(batch, height, width,
                                            steps * channels)


@register_model("early_fusion")
class EarlyFusion(nn.Module):
  """Frames stacked on channels into a 2D ResNet. (B,T,H,W,C) -> (B, K).

  Attributes:
    num_classes: output classes.
    widths, blocks_per_stage, stem_stride: the 2D ResNet; its stem conv has
      T*C input channels.
    stem_init: "random" (Kaiming normal over all T*C channels) | "center"
      (`centre_frame_init`: the centre frame's weights, zeros elsewhere).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  stem_init: str = "random"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.stem_init not in STEM_INITS:
      raise VidjaxError(f"config.model.stem_init={self.stem_init!r}; "
                        f"expected one of {STEM_INITS}")
    dtype = jnp.dtype(self.dtype)
    init = (centre_frame_init(x.shape[1], x.shape[-1])
            if self.stem_init == "center" else None)
    y = FrameResNet(self.widths, self.blocks_per_stage, self.stem_stride,
                    dtype=dtype, stem_init=init, name="backbone")(
                        stack_frames_on_channels(x), train=train)
    features = y.mean(axis=(1, 2)).astype(jnp.float32)
    return nn.Dense(self.num_classes, name="head")(features)
