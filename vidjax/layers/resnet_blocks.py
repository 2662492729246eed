"""Residual-network units shared by the convolutional video ResNets.

* `video_conv`: `conv3d`'s drop-in (same padding, (B, T, H, W, C) in and
  out) that runs a kernel with kt = 1 and temporal stride 1 as a per-frame 2D
  convolution (flax folds T into the batch; the kernel is (kh, kw, Cin, Cout),
  as a 2D ResNet's), and other kernels with `conv3d`'s `VideoConv`.
  `vidjax.models.inflate.inflate_params` inflates such 4D kernels into the 5D
  kernels of a network that has kt > 1 at the same place.
* `residual_sum`: ReLU(shortcut(x) + branch) with He et al.'s projection
  shortcut (option B: 1x1x1 conv with the block's strides + BN) when the shape
  changes; used by R3D's basic block (`vidjax.models.resnet3d`) and by
  `Bottleneck`.
* `Bottleneck`: the bottleneck block of He et al., CVPR 2016, "Deep Residual
  Learning for Image Recognition" (Fig. 5 right): 1x1 conv to `features`,
  3x3 conv, 1x1 conv to 4 x `features`, each followed by BN (ReLU after the
  first two); the spatial stride sits on the 3x3 conv (as in the released
  code of the video papers below and torchvision; 4.1 G multiply-adds for
  ResNet-50 at 224^2). For video the first conv may be kt x 1 x 1: the "3x1x1"
  inflation of Wang et al., CVPR 2018, "Non-local Neural Networks" (I3D-R50)
  and of Feichtenhofer et al., ICCV 2019, "SlowFast Networks for Video
  Recognition" (their "res" blocks). `shift_place` inserts TSM's temporal
  shift (`vidjax.layers.temporal_shift`). The last BN's scale starts at zero
  (Goyal et al. 2017; PySlowFast does the same), so a block starts as the
  identity on its shortcut; `zero_init_last_bn=False` starts it at one
  (torchvision's default, which TSM's release builds on: with a residual
  shift, a zero branch would hide the shifted features at the start).
* `stem`: conv (kt x 7 x 7, stride (st, 2, 2)) -> BN -> ReLU -> max pool
  (pt x 3 x 3, stride (pt, 2, 2), spatial padding 1): ResNet's conv1 + pool1.
"""
from typing import Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.layers.conv3d import VideoConv, batch_norm
from vidjax.layers.temporal_shift import temporal_shift


def video_conv(x, features: int, kernel: Sequence[int],
               strides: Sequence[int] = (1, 1, 1), *, name: str,
               use_bias: bool = False, temporal_padding: str = "zeros",
               dtype=jnp.float32, dilation: int = 1):
  """`conv3d`'s drop-in: a 2D `nn.Conv` per frame (4D kernel) when kt == 1
  and stride_t == 1, else `VideoConv` (5D kernel). Inside a compact method.
  `dilation` (spatial, per-frame convs only) keeps the output size: padding
  dilation * (k - 1) / 2 per side."""
  if kernel[0] != 1 or strides[0] != 1:
    if dilation != 1:
      raise ValueError("video_conv: dilation needs a 1 x k x k kernel")
    return VideoConv(features, tuple(kernel), tuple(strides), use_bias,
                     temporal_padding, dtype=dtype, name=name)(x)
  pads = [(dilation * (k - 1) // 2, dilation * (k - 1) // 2)
          for k in kernel[1:]]
  extra = {} if dilation == 1 else {"kernel_dilation": (dilation, dilation)}
  return nn.Conv(features, tuple(kernel[1:]), strides=tuple(strides[1:]),
                 padding=pads, use_bias=use_bias, dtype=dtype, name=name,
                 kernel_init=nn.initializers.kaiming_normal(), **extra)(x)


def residual_sum(x, branch, strides: Sequence[int], *, train: bool, dtype,
                 conv=video_conv):
  """ReLU(shortcut(x) + branch); must run inside the block's compact method.

  The shortcut is x itself, or `conv` 1x1x1 with `strides` ("shortcut_conv")
  + BN ("shortcut_bn") when the strides or the channel count change.
  """
  if tuple(strides) != (1, 1, 1) or x.shape[-1] != branch.shape[-1]:
    x = conv(x, branch.shape[-1], (1, 1, 1), tuple(strides),
             name="shortcut_conv", dtype=dtype)
    x = batch_norm(train, "shortcut_bn", dtype)(x)
  return nn.relu(x + branch)


class Bottleneck(nn.Module):
  """(kt x 1 x 1) -> (1 x 3 x 3, spatial stride) -> (1 x 1 x 1, 4x) + shortcut.

  Params: conv1, bn1, conv2, bn2, conv3, bn3 (+ shortcut_conv, shortcut_bn).
  strides: (temporal stride of conv1 and the shortcut, spatial stride).
  dilation: the 3x3 conv's spatial dilation (1; 2 in the unstrided res5 of
  SlowFast's AVA detector, Feichtenhofer et al. 2019 Sec. 5.1).
  """
  features: int
  strides: Tuple[int, int] = (1, 1)
  temporal_kernel: int = 1
  expansion: int = 4
  shift_place: str = "none"    # "none" | "residual" | "inplace" (TSM)
  shift_div: int = 8
  temporal_padding: str = "zeros"
  zero_init_last_bn: bool = True
  dtype: jnp.dtype = jnp.float32
  dilation: int = 1

  @nn.compact
  def __call__(self, x, *, train: bool):
    st, ss = self.strides
    kt, pad, dtype = self.temporal_kernel, self.temporal_padding, self.dtype
    if self.shift_place == "inplace":
      x = temporal_shift(x, self.shift_div)
    y = temporal_shift(x, self.shift_div) if self.shift_place == "residual" \
        else x
    y = video_conv(y, self.features, (kt, 1, 1), (st, 1, 1), name="conv1",
                   temporal_padding=pad, dtype=dtype)
    y = nn.relu(batch_norm(train, "bn1", dtype)(y))
    y = video_conv(y, self.features, (1, 3, 3), (1, ss, ss), name="conv2",
                   dtype=dtype, dilation=self.dilation)
    y = nn.relu(batch_norm(train, "bn2", dtype)(y))
    y = video_conv(y, self.features * self.expansion, (1, 1, 1), name="conv3",
                   dtype=dtype)
    y = batch_norm(train, "bn3", dtype, nn.initializers.zeros
                   if self.zero_init_last_bn else nn.initializers.ones)(y)
    return residual_sum(x, y, (st, ss, ss), train=train, dtype=dtype)


def stem(x, *, prefix: str, features: int, temporal_kernel: int = 1,
         temporal_stride: int = 1, pool: bool = True,
         pool_temporal_stride: int = 1, temporal_padding: str = "zeros",
         train: bool, dtype=jnp.float32):
  """ResNet conv1 + pool1 (see the module docstring); params `{prefix}_conv`,
  `{prefix}_bn`. Must run inside a compact method."""
  y = video_conv(x, features, (temporal_kernel, 7, 7),
                 (temporal_stride, 2, 2), name=f"{prefix}_conv",
                 temporal_padding=temporal_padding, dtype=dtype)
  y = nn.relu(batch_norm(train, f"{prefix}_bn", dtype)(y))
  if pool:
    pt = pool_temporal_stride
    y = nn.max_pool(y, (pt, 3, 3), strides=(pt, 2, 2),
                    padding=((0, 0), (1, 1), (1, 1)))
  return y
