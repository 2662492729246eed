"""Reusable 3D convolution units for convolutional video models.

* `conv3d`: a 3D convolution with PyTorch-style symmetric padding (k-1)//2 per
  axis; the temporal padding is zeros (the papers) or "edge" (replicate the
  first/last frame). Edge padding makes an I3D-inflated network (see
  `vidjax.models.inflate`) give exactly its 2D parent's output on a static
  clip, also at the clip's first and last frames.
* `Conv3DBNReLU`: conv -> BatchNorm -> ReLU (each of the last two optional).
* `Conv2Plus1D` and `mid_channels`: the (2+1)D factorised convolution of Tran
  et al., CVPR 2018, "A Closer Look at Spatiotemporal Convolutions for Action
  Recognition", Sec. 3.5: a spatial 1 x d x d conv to M channels -> BN -> ReLU
  -> a temporal t x 1 x 1 conv, with
  M = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i)) so that it has as many
  parameters as the full t x d x d conv from N_{i-1} to N_i channels.
"""
from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError

TEMPORAL_PADDINGS = ("zeros", "edge")


def check_temporal_padding(value: str):
  if value not in TEMPORAL_PADDINGS:
    raise VidjaxError(f"config.model.temporal_padding={value!r}; expected one "
                      f"of {TEMPORAL_PADDINGS}")


def mid_channels(in_channels: int, out_channels: int, t: int = 3,
                 d: int = 3) -> int:
  """Tran et al. 2018's M_i: (2+1)D width matching a t x d x d conv's params."""
  return (t * d * d * in_channels * out_channels) // (
      d * d * in_channels + t * out_channels)


def conv3d(x, features: int, kernel: Sequence[int], strides: Sequence[int] = (
    1, 1, 1), *, name: str, use_bias: bool = False,
           temporal_padding: str = "zeros", dtype=jnp.float32):
  """(B,T,H,W,C) conv with padding (k-1)//2 on both sides of every axis.

  Must be called inside a compact module (creates an `nn.Conv` named `name`).
  """
  pads = [((k - 1) // 2, (k - 1) // 2) for k in kernel]
  if temporal_padding == "edge" and pads[0][0] > 0:
    x = jnp.pad(x, ((0, 0), pads[0], (0, 0), (0, 0), (0, 0)), mode="edge")
    pads[0] = (0, 0)
  return nn.Conv(features, tuple(kernel), strides=tuple(strides),
                 padding=pads, use_bias=use_bias, dtype=dtype, name=name,
                 kernel_init=nn.initializers.kaiming_normal())(x)


def batch_norm(train: bool, name: str, dtype=jnp.float32,
               scale_init=nn.initializers.ones):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, dtype=dtype, scale_init=scale_init,
                      name=name)


class Conv3DBNReLU(nn.Module):
  """Conv3D (kernel, strides) -> BatchNorm -> ReLU. Params: conv, bn."""
  features: int
  kernel: Sequence[int] = (3, 3, 3)
  strides: Sequence[int] = (1, 1, 1)
  use_batch_norm: bool = True
  relu: bool = True
  use_bias: bool = False
  temporal_padding: str = "zeros"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    y = conv3d(x, self.features, self.kernel, self.strides, name="conv",
               use_bias=self.use_bias, temporal_padding=self.temporal_padding,
               dtype=self.dtype)
    if self.use_batch_norm:
      y = batch_norm(train, "bn", self.dtype)(y)
    return nn.relu(y) if self.relu else y


class Conv2Plus1D(nn.Module):
  """(2+1)D conv: 1xdxd spatial (stride 1,s,s) to M -> BN -> ReLU -> tx1x1
  temporal (stride s_t,1,1) to `features`. No BN/ReLU after the temporal conv
  (the caller's block adds them). `mid_features=None`: Tran et al.'s M."""
  features: int
  kernel: Sequence[int] = (3, 3, 3)
  strides: Sequence[int] = (1, 1, 1)
  mid_features: Optional[int] = None
  temporal_padding: str = "zeros"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    t, h, w = self.kernel
    mid = self.mid_features or mid_channels(x.shape[-1], self.features, t, h)
    y = conv3d(x, mid, (1, h, w), (1,) + tuple(self.strides[1:]),
               name="spatial_conv", dtype=self.dtype)
    y = nn.relu(batch_norm(train, "spatial_bn", self.dtype)(y))
    return conv3d(y, self.features, (t, 1, 1), (self.strides[0], 1, 1),
                  name="temporal_conv", temporal_padding=self.temporal_padding,
                  dtype=self.dtype)
