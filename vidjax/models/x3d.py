"""X3D (Feichtenhofer, CVPR 2020, "X3D: Expanding Architectures for
Efficient Video Recognition", Sec. 3, Tab. 1 and 3; layout and rounding as in
PySlowFast's `X3D` model and configs/Kinetics/X3D_{XS,S,M,L}.yaml).

Layout (`X3D`, channels last, (B, T, H, W, C) in, logits out):
* stem: a 1x3x3 conv, stride (1, 2, 2), 3 -> round(dim_c1 x width_factor)
  channels, then a depthwise 5x1x1 temporal conv ("channelwise", one filter
  per channel), BN, ReLU. No pooling; time is never strided.
* res2-res5: stages of ceil(depth_factor x (1, 2, 5, 3)) residual blocks;
  widths dim_c1 (res2) doubled per stage and rounded to a multiple of 8,
  then x width_factor (24, 48, 96, 192 for X3D-XS..L); each block: 1x1x1 conv
  to the inner width (bottleneck_factor x width: 54, 108, 216, 432), BN,
  ReLU -> depthwise 3x3x3 conv (spatial stride 2 in a stage's first block),
  BN, squeeze-excitation on blocks 0, 2, 4, ... of a stage (the clip-level
  `SqueezeExcite` of `vidjax.layers.causal`, causal=False: reduced width
  1/16 rounded to 8s by `make_divisible`, ReLU, sigmoid), swish -> 1x1x1 conv back to the width, BN (scale starting at 0)
  + the shortcut (`resnet_blocks.residual_sum`: a 1x1x1 conv + BN where the
  shape changes), ReLU.
* head: 1x1x1 conv to the last inner width ("conv5"), BN, ReLU, global
  average pool, a 1x1x1 conv (dense) to dim_c5 = 2048 without bias, ReLU,
  dropout, a dense classifier.

Variants (`VARIANTS`): X3D-XS, -S and -M share one network (width 2.0, depth
2.2, bottleneck 2.25: res2-5 depths 3, 5, 11, 7) and differ only in the
input; X3D-L has depth 5.0 (5, 10, 25, 15). PySlowFast's model zoo, per
view (params, G "FLOPs"): XS 4x160^2 3.8M 0.60, S 13x160^2 3.8M 1.96,
M 16x224^2 3.8M 4.73, L 16x312^2 6.2M 18.37. Those FLOPs are fvcore's
counts of 2020, which count one multiply-add as one FLOP and only
convolutions and linear layers (a depthwise conv: output size x kernel
volume; batch-norm counting came to fvcore in 2021): what
`vidjax.costs.kernel_gmacs` counts. vidjax at those inputs, 400 classes:
3.79 / 3.79 / 3.79 / 6.15 M params and 0.605 / 1.963 / 4.733 / 18.37 G
multiply-adds (tests/test_x3d.py).

Depthwise convs (`DepthwiseConv3D`) run as `depthwise_conv3d` of
`vidjax.layers.pooling_attention`: `depthwise_impl="auto"` takes "shifts"
(a loop over the 27 taps; XLA:CPU differentiates grouped convolutions
slowly) on CPU and the grouped `lax.conv_general_dilated`
(feature_group_count = C) elsewhere. `vidjax.costs` counts the "conv" form.

Initialisation: convs He-normal (fan in), BN scale 1 (0 for each block's
last with zero_init_last_bn, PySlowFast's ZERO_INIT_FINAL_BN), the classifier N(0, 0.01^2) with zero bias (PySlowFast's
FC_INIT_STD). Test views larger than the training crop are pooled globally
(PySlowFast averages the softmax of 5x5-pooled windows there).
"""
import math
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import batch_norm
from vidjax.layers.pooling_attention import (POOL_IMPLS, depthwise_conv3d,
                                             resolve_pool_impl)
from vidjax.layers.resnet_blocks import residual_sum, video_conv
from vidjax.layers.causal import SqueezeExcite, make_divisible
from vidjax.registry import register_model

# Name -> (model fields, (frames, sampling stride, train crop, test crop)),
# PySlowFast configs/Kinetics/X3D_*.yaml.
VARIANTS = {
    "xs": (dict(depth_factor=2.2), (4, 12, 160, 182)),
    "s": (dict(depth_factor=2.2), (13, 6, 160, 182)),
    "m": (dict(depth_factor=2.2), (16, 5, 224, 256)),
    "l": (dict(depth_factor=5.0), (16, 5, 312, 356)),
}
BASE_DEPTHS = (1, 2, 5, 3)


def round_width(width: float, multiplier: float, divisor: int = 1) -> int:
  """width x multiplier to the nearest multiple of `divisor`, one more
  `divisor` if that lost over 10% (PySlowFast's `round_width`)."""
  return make_divisible(width * multiplier, divisor)


def stage_specs(dim_c1: int, width_factor: float, depth_factor: float,
                bottleneck_factor: float, base_depths=BASE_DEPTHS):
  """[(blocks, width, inner width)] of res2..res5."""
  specs, base = [], dim_c1
  for i, blocks in enumerate(base_depths):
    if i:
      base = round_width(base, 2.0, divisor=8)
    width = round_width(base, width_factor)
    specs.append((int(math.ceil(depth_factor * blocks)), width,
                  int(bottleneck_factor * width)))
  return specs


class DepthwiseConv3D(nn.Module):
  """Depthwise conv, padding k // 2, no bias. Param kernel (kt, kh, kw, 1, C)."""
  kernel: Tuple[int, int, int]
  strides: Tuple[int, int, int] = (1, 1, 1)
  impl: str = "auto"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.kaiming_normal(),
                        tuple(self.kernel) + (1, x.shape[-1]))
    return depthwise_conv3d(x.astype(self.dtype), kernel.astype(self.dtype),
                            self.strides, resolve_pool_impl(self.impl))


class X3DBlock(nn.Module):
  """1x1x1 -> BN-ReLU -> depthwise 3x3x3 -> BN (-> SE) -> swish -> 1x1x1 ->
  BN, + shortcut, ReLU. Params conv_a, bn_a, conv_b, bn_b, se, conv_c, bn_c
  (+ shortcut_conv, shortcut_bn)."""
  features: int
  inner: int
  stride: int = 1
  use_se: bool = True
  se_ratio: float = 1 / 16
  impl: str = "auto"
  zero_init_last_bn: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    dtype, s = self.dtype, self.stride
    y = video_conv(x, self.inner, (1, 1, 1), name="conv_a", dtype=dtype)
    y = nn.relu(batch_norm(train, "bn_a", dtype)(y))
    y = DepthwiseConv3D((3, 3, 3), (1, s, s), self.impl, dtype,
                        name="conv_b")(y)
    y = batch_norm(train, "bn_b", dtype)(y)
    if self.use_se and self.se_ratio > 0:
      y, _ = SqueezeExcite(make_divisible(self.inner * self.se_ratio),
                           causal=False, activation="relu", gating="sigmoid",
                           dtype=dtype, name="se")(y)
    y = nn.swish(y)
    y = video_conv(y, self.features, (1, 1, 1), name="conv_c", dtype=dtype)
    y = batch_norm(train, "bn_c", dtype, nn.initializers.zeros
                   if self.zero_init_last_bn else nn.initializers.ones)(y)
    return residual_sum(x, y, (1, s, s), train=train, dtype=dtype)


@register_model("x3d")
class X3D(nn.Module):
  """X3D (module docstring). x: (B, T, H, W, C) -> (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    dim_c1: base width (stem = dim_c1 x width_factor; res2 = dim_c1).
    width_factor, depth_factor, bottleneck_factor: X3D's gamma_w, gamma_d,
      gamma_b (PySlowFast WIDTH_FACTOR, DEPTH_FACTOR, BOTTLENECK_FACTOR).
    dim_c5: width of the head's last layer before the classifier.
    base_depths: blocks per stage before depth_factor.
    se_ratio: squeeze-excitation width ratio; 0: no SE.
    stem_temporal_kernel: the stem's depthwise temporal conv.
    stem_stride: the stem conv's spatial stride (2; 1 keeps small inputs'
      maps larger).
    dropout_rate: dropout before the classifier.
    zero_init_last_bn: each block's last BN scale starts at 0 (PySlowFast's
      ZERO_INIT_FINAL_BN: blocks start as the identity) or 1.
    depthwise_impl: "auto" | "conv" | "shifts" (module docstring).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  dim_c1: int = 12
  width_factor: float = 2.0
  depth_factor: float = 2.2
  bottleneck_factor: float = 2.25
  dim_c5: int = 2048
  base_depths: Tuple[int, ...] = BASE_DEPTHS
  se_ratio: float = 1 / 16
  stem_temporal_kernel: int = 5
  stem_stride: int = 2
  dropout_rate: float = 0.5
  zero_init_last_bn: bool = True
  depthwise_impl: str = "auto"
  dtype: str = "float32"

  def check_input(self, input_shape=None):
    """One-line errors before anything is built (vidjax.preflight)."""
    del input_shape
    if self.depthwise_impl not in POOL_IMPLS:
      raise VidjaxError(f"config.model.depthwise_impl={self.depthwise_impl!r}"
                        f"; expected one of {POOL_IMPLS}")
    for key in ("dim_c1", "dim_c5", "stem_stride"):
      if getattr(self, key) < 1:
        raise VidjaxError(f"config.model.{key}={getattr(self, key)} must be "
                          ">= 1")
    if not self.base_depths or min(self.base_depths) < 1:
      raise VidjaxError(f"config.model.base_depths={tuple(self.base_depths)}"
                        " needs at least one stage of >= 1 block")
    if self.stem_temporal_kernel < 1 or self.stem_temporal_kernel % 2 == 0:
      raise VidjaxError("config.model.stem_temporal_kernel="
                        f"{self.stem_temporal_kernel} must be odd and >= 1")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input()
    dtype, impl = jnp.dtype(self.dtype), self.depthwise_impl
    stem_width = round_width(self.dim_c1, self.width_factor)
    s = self.stem_stride
    y = video_conv(x.astype(dtype), stem_width, (1, 3, 3), (1, s, s),
                   name="stem_conv_xy", dtype=dtype)
    y = DepthwiseConv3D((self.stem_temporal_kernel, 1, 1), (1, 1, 1), impl,
                        dtype, name="stem_conv_t")(y)
    y = nn.relu(batch_norm(train, "stem_bn", dtype)(y))
    specs = stage_specs(self.dim_c1, self.width_factor, self.depth_factor,
                        self.bottleneck_factor, self.base_depths)
    for stage, (blocks, width, inner) in enumerate(specs):
      for index in range(blocks):
        y = X3DBlock(width, inner, 2 if index == 0 else 1, index % 2 == 0,
                     self.se_ratio, impl, self.zero_init_last_bn, dtype,
                     name=f"res{stage + 2}_block{index}")(y, train=train)
    y = video_conv(y, specs[-1][2], (1, 1, 1), name="conv5", dtype=dtype)
    y = nn.relu(batch_norm(train, "bn5", dtype)(y))
    y = y.mean(axis=(1, 2, 3))
    y = nn.relu(nn.Dense(self.dim_c5, use_bias=False, dtype=dtype,
                         kernel_init=nn.initializers.kaiming_normal(),
                         name="lin5")(y)).astype(jnp.float32)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=jnp.float32,
                    kernel_init=nn.initializers.normal(0.01),
                    name="head")(y)
