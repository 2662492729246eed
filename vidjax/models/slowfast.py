"""SlowFast networks (Feichtenhofer, Fan, Malik & He, ICCV 2019, "SlowFast
Networks for Video Recognition", arXiv:1812.03982), ResNet-50 instantiation.

Facts the code relies on (paper Sec. 3 and Tab. 1):
* One clip of T frames (already sampled at the fast rate tau / alpha: the
  config's dataset.frame_stride) feeds both pathways: the Fast pathway sees
  all T frames, the Slow pathway every alpha-th (T / alpha frames; tau is the
  slow pathway's stride on the raw video, 16 for "4x16", 8 for "8x8").
* Slow: ResNet-50, conv1 1x7x7 (64), pool1 1x3x3, bottleneck stages of
  (3, 4, 6, 3) blocks, inner widths 64..512; the first conv of every block is
  1x1x1 in res2-res3 and 3x1x1 in res4-res5 (non-degenerate temporal
  convolutions only late). No temporal downsampling anywhere.
* Fast: the same with beta = 1/8 of the channels (`beta_inv` = 8), conv1
  5x7x7, and 3x1x1 first convs in every stage.
* Lateral connections fast -> slow after pool1, res2, res3 and res4, the
  result concatenated to the Slow pathway's channels (Sec. 3.4): "conv"
  (time-strided convolution, the paper's default: 5x1x1 kernel, stride alpha,
  2 beta C output channels; + BN + ReLU as the authors' released code),
  "time_to_channel" (pack the alpha frames of each slow step into channels:
  alpha beta C channels) or "time_sample" (every alpha-th fast frame).
* Head: global average pool of each pathway, concatenated (2048 + 256),
  dropout 0.5, linear layer.
For AVA detection (Sec. 5.1; PySlowFast configs/AVA: SPATIAL_STRIDES
[[1, 1], [2, 2], [2, 2], [1, 1]], SPATIAL_DILATIONS [.., [2, 2]]) res5 keeps
its input's size (`res5_spatial_stride` 1) with dilation-2 3x3 convs
(`res5_dilation` 2): feature stride 16, not 32; `return_maps` returns the
pre-pool maps (slow, fast) instead of logits (no head).
With 400 classes, alpha 8, lateral kernel 5 ("4x16"): 34.5M parameters,
36.1 G multiply-adds at 32x224^2; "8x8" (alpha 4; the released config's
lateral kernel is 7): 34.6M, 65.7 G (tests/test_models_slowfast.py).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import batch_norm
from vidjax.layers.resnet_blocks import stem, video_conv
from vidjax.models.resnet_video import check_stage_lists, classify, res_stage
from vidjax.registry import register_model

LATERALS = ("conv", "time_to_channel", "time_sample")


class FastToSlow(nn.Module):
  """Fast (B, alpha T, H, W, C) -> lateral features (B, T, H, W, C').

  C' = channel_ratio C ("conv"), alpha C ("time_to_channel"), C
  ("time_sample"). "conv" params: conv (kernel x 1 x 1, stride alpha), bn.
  """
  mode: str = "conv"
  alpha: int = 8
  kernel: int = 5
  channel_ratio: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, fast, *, train: bool):
    b, t, h, w, c = fast.shape
    if self.mode == "conv":
      y = video_conv(fast, self.channel_ratio * c, (self.kernel, 1, 1),
                     (self.alpha, 1, 1), name="conv", dtype=self.dtype)
      return nn.relu(batch_norm(train, "bn", self.dtype)(y))
    if self.mode == "time_to_channel":
      y = fast.reshape(b, t // self.alpha, self.alpha, h, w, c)
      return y.transpose(0, 1, 3, 4, 2, 5).reshape(
          b, t // self.alpha, h, w, self.alpha * c)
    return fast[:, ::self.alpha]


@register_model("slowfast")
class SlowFast(nn.Module):
  """SlowFast ResNet. x: (B, T, H, W, C) -> (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    alpha: speed ratio; T must be a multiple of it.
    beta_inv: 1 / beta, the Fast pathway's channel fraction (paper: 8).
    widths: Slow pathway inner widths per stage (Fast: widths / beta_inv).
    blocks_per_stage: bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3).
    stem_width: Slow conv1 channels (Fast: stem_width / beta_inv).
    stem_pool: pool1 (1x3x3 max, stride (1, 2, 2)).
    slow_temporal_kernels, fast_temporal_kernels: per stage, the kt of every
      block's first conv.
    slow_stem_temporal_kernel, fast_stem_temporal_kernel: conv1's kt.
    lateral: "conv" | "time_to_channel" | "time_sample".
    lateral_kernel: the "conv" lateral's temporal kernel (paper: 5).
    lateral_channel_ratio: "conv" lateral out channels / fast channels (2).
    dropout_rate: before the head (paper: 0.5).
    dtype: compute dtype name; params stay float32.
    res5_spatial_stride, res5_dilation: the last stage's spatial stride (2)
      and its 3x3 convs' dilation (1); AVA detection: 1 and 2.
    return_maps: return (slow, fast) feature maps, no pooling and no head.
  """
  num_classes: int
  alpha: int = 8
  beta_inv: int = 8
  widths: Tuple[int, ...] = (64, 128, 256, 512)
  blocks_per_stage: Tuple[int, ...] = (3, 4, 6, 3)
  stem_width: int = 64
  stem_pool: bool = True
  slow_temporal_kernels: Tuple[int, ...] = (1, 1, 3, 3)
  fast_temporal_kernels: Tuple[int, ...] = (3, 3, 3, 3)
  slow_stem_temporal_kernel: int = 1
  fast_stem_temporal_kernel: int = 5
  lateral: str = "conv"
  lateral_kernel: int = 5
  lateral_channel_ratio: int = 2
  dropout_rate: float = 0.5
  dtype: str = "float32"
  res5_spatial_stride: int = 2
  res5_dilation: int = 1
  return_maps: bool = False

  def check_input(self, input_shape):
    if self.lateral not in LATERALS:
      raise VidjaxError(f"config.model.lateral={self.lateral!r}; expected "
                        f"one of {LATERALS}")
    check_stage_lists(self.widths, self.blocks_per_stage,
                      slow_temporal_kernels=self.slow_temporal_kernels,
                      fast_temporal_kernels=self.fast_temporal_kernels)
    if self.alpha < 1 or input_shape[0] % self.alpha:
      raise VidjaxError(
          f"config.dataset.num_frames={input_shape[0]} must be a multiple of "
          f"config.model.alpha={self.alpha}")
    narrow = [w for w in (self.stem_width,) + tuple(self.widths)
              if w % self.beta_inv]
    if narrow:
      raise VidjaxError(f"config.model.beta_inv={self.beta_inv} must divide "
                        f"stem_width and every width (not {narrow})")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape[1:])
    dtype = jnp.dtype(self.dtype)
    x = x.astype(dtype)
    slow, fast = x[:, ::self.alpha], x
    common = dict(pool=self.stem_pool, train=train, dtype=dtype)
    slow = stem(slow, prefix="slow_stem", features=self.stem_width,
                temporal_kernel=self.slow_stem_temporal_kernel, **common)
    fast = stem(fast, prefix="fast_stem",
                features=self.stem_width // self.beta_inv,
                temporal_kernel=self.fast_stem_temporal_kernel, **common)
    for s, (width, depth) in enumerate(zip(self.widths,
                                           self.blocks_per_stage)):
      lateral = FastToSlow(self.lateral, self.alpha, self.lateral_kernel,
                           self.lateral_channel_ratio, dtype,
                           name=f"lateral{s}")(fast, train=train)
      self.sow("intermediates", f"lateral{s}_out", lateral)
      slow = jnp.concatenate([slow, lateral], axis=-1)
      last = s == len(self.widths) - 1
      stride = (self.res5_spatial_stride if last else 2) if s > 0 else 1
      dilation = self.res5_dilation if last else 1
      slow = res_stage(slow, prefix=f"slow_stage{s}", features=width,
                       depth=depth, spatial_stride=stride,
                       temporal_kernels=(self.slow_temporal_kernels[s],),
                       train=train, dtype=dtype, dilation=dilation)
      fast = res_stage(fast, prefix=f"fast_stage{s}",
                       features=width // self.beta_inv, depth=depth,
                       spatial_stride=stride,
                       temporal_kernels=(self.fast_temporal_kernels[s],),
                       train=train, dtype=dtype, dilation=dilation)
    self.sow("intermediates", "slow", slow)
    self.sow("intermediates", "fast", fast)
    if self.return_maps:
      return slow, fast
    features = jnp.concatenate([slow.mean(axis=(1, 2, 3)),
                                fast.mean(axis=(1, 2, 3))], axis=-1)
    return classify(features, self.num_classes, self.dropout_rate, train)
