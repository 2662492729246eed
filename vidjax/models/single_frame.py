"""Single-frame 2D CNN baseline (Karpathy et al., CVPR 2014, "Large-scale Video
Classification with Convolutional Neural Networks": the "single frame" model).

One small ResNet-style 2D CNN (He et al. 2016 basic blocks: conv3x3-BN-ReLU-
conv3x3-BN + shortcut, ReLU) is applied to every frame independently (time is
folded into the batch), globally average-pooled, and a linear layer gives
per-frame logits, which are averaged over the frames. The model is blind to
temporal order: permuting a clip's frames leaves its logits unchanged.

Defaults suit 32x32 frames: a stride-2 stem, then stages of widths (16, 32,
64) at 16x16, 8x8, 4x4 (each later stage starts with a stride-2 block);
78k parameters (10 classes). On the 2-core CPU a train step at batch 64 x
8x32x32 took ~150 ms with these widths and ~480 ms with (32, 64, 128) (0.31M).

The per-frame backbone is reusable: `resnet2d_features` (layers created in
the caller, so this model's parameter names stay flat), `FrameResNet` (the
same as a submodule) and `per_frame` (fold time into the batch). The fusion,
two-stream and recurrent models build on them.
"""
from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.registry import register_model


class BasicResidualBlock(nn.Module):
  """conv3x3(stride)-BN-ReLU-conv3x3-BN, + (projected) shortcut, ReLU."""
  features: int
  strides: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    conv = lambda feats, kernel, strides, name: nn.Conv(
        feats, (kernel, kernel), strides=(strides, strides), padding="SAME",
        use_bias=False, dtype=self.dtype, name=name,
        kernel_init=nn.initializers.kaiming_normal())
    norm = lambda name, scale_init=nn.initializers.ones: nn.BatchNorm(
        use_running_average=not train, momentum=0.9, dtype=self.dtype,
        scale_init=scale_init, name=name)
    y = conv(self.features, 3, self.strides, "conv1")(x)
    y = nn.relu(norm("bn1")(y))
    y = conv(self.features, 3, 1, "conv2")(y)
    # Zero-init the last BN scale: each block starts as the identity (Goyal et
    # al. 2017), which trains deep-ish residual nets more smoothly.
    y = norm("bn2", nn.initializers.zeros)(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = conv(self.features, 1, self.strides, "shortcut_conv")(x)
      x = norm("shortcut_bn")(x)
    return nn.relu(x + y)


def resnet2d_features(frames, *, widths: Sequence[int], blocks_per_stage: int,
                      stem_stride: int, train: bool, dtype=jnp.float32,
                      stem_kernel: int = 3, stem_pool: bool = False,
                      stem_init=None):
  """Per-image 2D ResNet: (N, H, W, C) -> feature map (N, h, w, widths[-1]).

  Creates its layers (`stem_conv`, `stem_bn`, `stage{s}_block{b}`) in the
  calling compact module. Stem: a stem_kernel^2 conv (stride stem_stride) ->
  BN -> ReLU, then (stem_pool) a 3x3 stride-2 max pool, as ResNet-18's 7x7
  stem does; the later stages each start with a stride-2 block. `stem_init`:
  the stem kernel's initializer (None: Kaiming normal, as every conv).
  """
  y = nn.Conv(widths[0], (stem_kernel, stem_kernel),
              strides=(stem_stride,) * 2, padding="SAME", use_bias=False,
              dtype=dtype, name="stem_conv",
              kernel_init=stem_init or nn.initializers.kaiming_normal())(
                  frames.astype(dtype))
  y = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype,
                   name="stem_bn")(y)
  y = nn.relu(y)
  if stem_pool:
    y = nn.max_pool(y, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  for stage, width in enumerate(widths):
    for block in range(blocks_per_stage):
      strides = 2 if stage > 0 and block == 0 else 1
      y = BasicResidualBlock(width, strides, dtype,
                             name=f"stage{stage}_block{block}")(y, train=train)
  return y


class FrameResNet(nn.Module):
  """`resnet2d_features` as a module: the per-frame 2D feature extractor of
  the fusion, two-stream and recurrent models. (N, H, W, C) -> (N, h, w, D)."""
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  stem_kernel: int = 3
  stem_pool: bool = False
  dtype: jnp.dtype = jnp.float32
  stem_init: Optional[Callable] = None

  @nn.compact
  def __call__(self, frames, *, train: bool):
    return resnet2d_features(
        frames, widths=self.widths, blocks_per_stage=self.blocks_per_stage,
        stem_stride=self.stem_stride, train=train, dtype=self.dtype,
        stem_kernel=self.stem_kernel, stem_pool=self.stem_pool,
        stem_init=self.stem_init)


def per_frame(backbone, x, *, train: bool):
  """Applies a 2D backbone to every frame: (B, T, H, W, C) -> (B, T, h, w, D).

  Time is folded into the batch; in eval mode (BatchNorm on running stats)
  frame t's features depend on frame t only.
  """
  batch, steps = x.shape[:2]
  y = backbone(x.reshape((batch * steps,) + x.shape[2:]), train=train)
  return y.reshape((batch, steps) + y.shape[1:])


@register_model("single_frame")
class SingleFrameCNN(nn.Module):
  """Per-frame 2D ResNet, logits averaged over time. (B,T,H,W,C) -> (B, K).

  Attributes:
    num_classes: number of output classes.
    widths: channel width of each stage.
    blocks_per_stage: residual blocks per stage.
    stem_stride: stride of the 3x3 stem conv (2 halves the frame first).
    dtype: compute dtype name ("float32" | "bfloat16"); params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    dtype = jnp.dtype(self.dtype)
    batch, steps = x.shape[:2]
    frames = x.reshape((batch * steps,) + x.shape[2:])
    y = resnet2d_features(frames, widths=self.widths,
                          blocks_per_stage=self.blocks_per_stage,
                          stem_stride=self.stem_stride, train=train,
                          dtype=dtype)
    features = y.mean(axis=(1, 2)).astype(jnp.float32)
    frame_logits = nn.Dense(self.num_classes, name="head")(features)
    return frame_logits.reshape(batch, steps, -1).mean(axis=1)
