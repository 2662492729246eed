"""3D ResNets of Tran et al., CVPR 2018, "A Closer Look at Spatiotemporal
Convolutions for Action Recognition" (arXiv:1711.11248), Tab. 1 (18 layers).

* "r3d" (`ResNet3D`, block="3d"): R3D-18. Stem 3x7x7 conv, stride (1,2,2), 64
  channels; four stages of two basic blocks (3x3x3 conv-BN-ReLU-3x3x3 conv-BN
  + shortcut, ReLU) of widths 64, 128, 256, 512; stages 2-4 start with stride
  2 in time and space and a 1x1x1 conv + BN projection shortcut; no max pool;
  global average pool; linear head. 33.4M parameters (16x112x112, 400
  classes), as in the paper.
* "r2plus1d" (`ResNet2Plus1D`, block="2plus1d"): R(2+1)D-18. Every 3x3x3 conv
  is a (2+1)D conv (`vidjax.layers.conv3d.Conv2Plus1D`) with the paper's M_i;
  the stem is a 1x7x7 stride (1,2,2) conv to 45 channels -> BN -> ReLU -> 3x1x1
  conv to 64. 33.4M parameters (matching R3D-18, as the paper intends) and 41.5
  G multiply-adds at 16x112x112; with mid_rule="block_input" (torchvision's
  r2plus1d_18) 31.5M and 40.5 G, the commonly quoted figures.

`temporal_kernel=1` (block="3d") gives the per-frame 2D ResNet-18 ("C2D") with
the same parameter names: `vidjax.models.inflate.inflate_params` turns its
parameters into R3D's (I3D inflation). `temporal_stride=False` keeps time.
`temporal_padding="edge"` replicates the first/last frame instead of zero
padding (exact inflation on static clips; see inflate.py). The last BN of
each residual branch starts at zero scale (Goyal et al. 2017; not in the
paper) so every block starts as the identity. The shortcut and the final
sum are `vidjax.layers.resnet_blocks.residual_sum`, shared with the
bottleneck ResNets (`vidjax.models.resnet_video`, `tsm`, `slowfast`).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import (Conv2Plus1D, batch_norm,
                                  check_temporal_padding, conv3d,
                                  mid_channels)
from vidjax.layers.resnet_blocks import residual_sum
from vidjax.registry import register_model

BLOCKS = ("3d", "2plus1d")
MID_RULES = ("paper", "block_input")


class BasicBlock3D(nn.Module):
  """Residual basic block with 3D or (2+1)D convs. strides: (t, s)."""
  features: int
  strides: Tuple[int, int] = (1, 1)
  block: str = "3d"
  temporal_kernel: int = 3
  temporal_padding: str = "zeros"
  mid_rule: str = "paper"
  dtype: jnp.dtype = jnp.float32

  def _conv(self, x, strides, name, train, mid=None):
    kernel = (self.temporal_kernel, 3, 3)
    if self.block == "2plus1d":
      return Conv2Plus1D(self.features, kernel, strides, mid,
                         temporal_padding=self.temporal_padding,
                         dtype=self.dtype, name=name)(x, train=train)
    return conv3d(x, self.features, kernel, strides, name=name,
                  temporal_padding=self.temporal_padding, dtype=self.dtype)

  @nn.compact
  def __call__(self, x, *, train: bool):
    st, ss = self.strides
    y = self._conv(x, (st, ss, ss), "conv1", train)
    y = nn.relu(batch_norm(train, "bn1", self.dtype)(y))
    # "block_input": conv2's M from the block's input width (torchvision).
    mid = (mid_channels(x.shape[-1], self.features, self.temporal_kernel)
           if self.mid_rule == "block_input" else None)
    y = self._conv(y, (1, 1, 1), "conv2", train, mid)
    y = batch_norm(train, "bn2", self.dtype, nn.initializers.zeros)(y)
    return residual_sum(x, y, (st, ss, ss), train=train, dtype=self.dtype,
                        conv=conv3d)


@register_model("r3d")
class ResNet3D(nn.Module):
  """R3D / R(2+1)D ResNet. x: (B, T, H, W, C) -> (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    block: "3d" (R3D) or "2plus1d" (R(2+1)D).
    widths: channels of each stage.
    blocks_per_stage: basic blocks in each stage.
    stem_width: channels out of the stem.
    stem_mid_width: R(2+1)D stem's spatial-conv channels (paper: 45).
    temporal_kernel: kt of every 3D conv (1: per-frame 2D ResNet).
    temporal_stride: stages 2.. halve time as well as space.
    temporal_padding: "zeros" (paper) or "edge".
    mid_rule: (2+1)D widths M_i: "paper" (each conv's own in/out widths, so
      each matches its 3D conv: 33.3M params) or "block_input" (a block's
      second conv reuses the M of its first, as torchvision's r2plus1d_18:
      31.5M params, 40.5 G multiply-adds).
    dropout_rate: dropout before the head.
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  block: str = "3d"
  widths: Tuple[int, ...] = (64, 128, 256, 512)
  blocks_per_stage: Tuple[int, ...] = (2, 2, 2, 2)
  stem_width: int = 64
  stem_mid_width: int = 45
  temporal_kernel: int = 3
  temporal_stride: bool = True
  temporal_padding: str = "zeros"
  mid_rule: str = "paper"
  dropout_rate: float = 0.0
  dtype: str = "float32"

  def check_input(self, input_shape):
    if self.block not in BLOCKS:
      raise VidjaxError(f"config.model.block={self.block!r}; expected one of "
                        f"{BLOCKS}")
    check_temporal_padding(self.temporal_padding)
    if self.mid_rule not in MID_RULES:
      raise VidjaxError(f"config.model.mid_rule={self.mid_rule!r}; expected "
                        f"one of {MID_RULES}")
    if len(self.widths) != len(self.blocks_per_stage):
      raise VidjaxError(
          f"config.model.widths={tuple(self.widths)} and "
          f"config.model.blocks_per_stage={tuple(self.blocks_per_stage)} "
          "must have the same length")
    if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
      raise VidjaxError(f"config.model.temporal_kernel={self.temporal_kernel}"
                        " must be odd and >= 1")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape[1:])
    dtype = jnp.dtype(self.dtype)
    kt, pad = self.temporal_kernel, self.temporal_padding
    y = x.astype(dtype)
    if self.block == "2plus1d":
      y = conv3d(y, self.stem_mid_width, (1, 7, 7), (1, 2, 2),
                 name="stem_spatial_conv", dtype=dtype)
      y = nn.relu(batch_norm(train, "stem_spatial_bn", dtype)(y))
      y = conv3d(y, self.stem_width, (kt, 1, 1), name="stem_temporal_conv",
                 temporal_padding=pad, dtype=dtype)
    else:
      y = conv3d(y, self.stem_width, (kt, 7, 7), (1, 2, 2), name="stem_conv",
                 temporal_padding=pad, dtype=dtype)
    y = nn.relu(batch_norm(train, "stem_bn", dtype)(y))
    for stage, (width, depth) in enumerate(zip(self.widths,
                                               self.blocks_per_stage)):
      for index in range(depth):
        down = 2 if stage > 0 and index == 0 else 1
        strides = (down if self.temporal_stride else 1, down)
        y = BasicBlock3D(width, strides, self.block, kt, pad, self.mid_rule,
                         dtype,
                         name=f"stage{stage}_block{index}")(y, train=train)
    features = y.mean(axis=(1, 2, 3)).astype(jnp.float32)
    features = nn.Dropout(self.dropout_rate)(features, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=jnp.float32, name="head")(features)


@register_model("r2plus1d")
class ResNet2Plus1D(ResNet3D):
  """R(2+1)D-18: `ResNet3D` with block="2plus1d" by default."""
  block: str = "2plus1d"
