"""I3D-R50 and NL-I3D-R50: the inflated 3D ResNet-50 baseline of Wang,
Girshick, Gupta & He, CVPR 2018, "Non-local Neural Networks" (arXiv:1711.07971),
Sec. 4 and Tab. 1, with the paper's non-local blocks; plus `res_stage`, the
stage builder shared with TSM (`vidjax.models.tsm`) and SlowFast
(`vidjax.models.slowfast`).

Facts the code relies on (paper Sec. 4 and the authors' released
`resnet_video_org.py`, "the original model architectures used in the paper",
32-frame input):
* ResNet-50: stages res2..res5 of (3, 4, 6, 3) bottleneck blocks
  (`vidjax.layers.resnet_blocks.Bottleneck`) of inner widths 64, 128, 256,
  512 (outputs 4x), res3..res5 start with spatial stride 2.
* I3D_{3x1x1}: conv1 is 5x7x7 with stride (2, 2, 2); pool1 is max (2, 3, 3)
  stride (2, 2, 2); pool2, a (2, 1, 1) max pool of stride 2, follows res2. In
  residual blocks the first 1x1 conv is inflated to 3x1x1 for "one kernel for
  every 2 residual blocks": res2 all three, res3 and res4 blocks 0, 2(, 4),
  res5 block 1 (`temporal_kernels=((3,), (3, 1), (3, 1), (1, 3))`, each
  stage's tuple repeated over its blocks). 32x224^2 -> 4x7x7 at res5.
* NL I3D (Sec. 4, "Non-local network"; Tab. 2b): 5 non-local blocks, 2 in
  res3 and 3 in res4, after every other residual block (blocks 1, 3 of res3
  and 1, 3, 5 of res4: `nonlocal_blocks=((), (1, 3), (1, 3, 5), ())`), each
  the embedded-Gaussian block of `vidjax.layers.non_local` with subsampling.
  (Tab. 2b's "10-block" model puts one after every block of res3 and res4.)
* Head: global average pool, dropout 0.5, linear layer.
With 400 classes at 32x224^2: I3D-R50 28.0M parameters and 33.1 G
multiply-adds, NL I3D-R50 35.4M (published: 35.3M) and 41.3 G.

All temporal_kernels 1 and stem_temporal_kernel 1 give the paper's C2D
baseline with the same parameter names (1x1/3x3 kernels are 2D, see
`video_conv`), whose parameters `vidjax.models.inflate.inflate_params`
inflates into this network's.
"""
from typing import Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import check_temporal_padding
from vidjax.layers.non_local import NonLocalBlock, check_nonlocal_mode
from vidjax.layers.resnet_blocks import Bottleneck, stem
from vidjax.registry import register_model


def res_stage(x, *, prefix: str, features: int, depth: int,
              spatial_stride: int, temporal_kernels: Sequence[int] = (1,),
              nonlocal_blocks: Sequence[int] = (), nonlocal_mode: str = (
                  "embedded_gaussian"), nonlocal_sub_sample: bool = True,
              shift_place: str = "none", shift_div: int = 8,
              temporal_padding: str = "zeros", zero_init_last_bn: bool = True,
              train: bool, dtype=jnp.float32, dilation: int = 1):
  """`depth` bottleneck blocks named `{prefix}_block{i}`; block i's first
  conv has temporal kernel temporal_kernels[i % len]; a non-local block
  `{prefix}_nonlocal{i}` follows block i for i in nonlocal_blocks. Must run
  inside a compact method."""
  for i in range(depth):
    x = Bottleneck(features, (1, spatial_stride if i == 0 else 1),
                   temporal_kernels[i % len(temporal_kernels)],
                   shift_place=shift_place, shift_div=shift_div,
                   temporal_padding=temporal_padding,
                   zero_init_last_bn=zero_init_last_bn, dtype=dtype,
                   dilation=dilation, name=f"{prefix}_block{i}")(x,
                                                                 train=train)
    if i in nonlocal_blocks:
      x = NonLocalBlock(mode=nonlocal_mode, sub_sample=nonlocal_sub_sample,
                        dtype=dtype, name=f"{prefix}_nonlocal{i}")(
                            x, train=train)
  return x


def classify(features, num_classes: int, dropout_rate: float, train: bool):
  """Dropout + linear head ("head") on pooled float32 features."""
  features = nn.Dropout(dropout_rate)(features.astype(jnp.float32),
                                      deterministic=not train)
  return nn.Dense(num_classes, dtype=jnp.float32, name="head")(features)


def nested_tuple(value) -> Tuple[Tuple[int, ...], ...]:
  """((3,), (3, 1)) from a config value (ml_collections may give lists)."""
  return tuple(tuple(int(k) for k in stage) for stage in value)


def check_stage_lists(widths, blocks_per_stage, **per_stage):
  for key, value in per_stage.items():
    if len(value) != len(widths):
      raise VidjaxError(
          f"config.model.{key} has {len(value)} entries but "
          f"config.model.widths has {len(widths)} stages")
  if len(blocks_per_stage) != len(widths):
    raise VidjaxError(
        f"config.model.blocks_per_stage={tuple(blocks_per_stage)} and "
        f"config.model.widths={tuple(widths)} must have the same length")


@register_model("i3d_r50")
class I3DResNet(nn.Module):
  """I3D / NL-I3D ResNet. x: (B, T, H, W, C) -> (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    widths: inner (bottleneck) width of each stage; stage outputs are 4x.
    blocks_per_stage: bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3).
    stem_width: conv1 channels.
    stem_temporal_kernel, stem_temporal_stride: conv1's kt and time stride.
    stem_pool: pool1 (3x3 spatial max pool, stride 2) after conv1.
    pool1_temporal_stride: pool1's temporal kernel and stride.
    pool2_temporal_stride: temporal max pool (kernel = stride) after the
      first stage; 1: none.
    temporal_kernels: per stage, the first conv's kt of its blocks, cycled.
    nonlocal_blocks: per stage, indices of the blocks followed by a non-local
      block; () for none anywhere.
    nonlocal_mode: "embedded_gaussian" | "dot_product".
    nonlocal_sub_sample: 1x2x2 max pool before phi and g.
    temporal_padding: "zeros" (paper) or "edge" (exact inflation).
    dropout_rate: before the head (paper: 0.5).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (64, 128, 256, 512)
  blocks_per_stage: Tuple[int, ...] = (3, 4, 6, 3)
  stem_width: int = 64
  stem_temporal_kernel: int = 5
  stem_temporal_stride: int = 2
  stem_pool: bool = True
  pool1_temporal_stride: int = 2
  pool2_temporal_stride: int = 2
  temporal_kernels: Tuple[Tuple[int, ...], ...] = ((3,), (3, 1), (3, 1),
                                                   (1, 3))
  nonlocal_blocks: Tuple[Tuple[int, ...], ...] = ()
  nonlocal_mode: str = "embedded_gaussian"
  nonlocal_sub_sample: bool = True
  temporal_padding: str = "zeros"
  dropout_rate: float = 0.5
  dtype: str = "float32"

  def check_input(self, input_shape):
    kernels = nested_tuple(self.temporal_kernels)
    nonlocal_blocks = nested_tuple(self.nonlocal_blocks) or ((),) * len(
        self.widths)
    check_stage_lists(self.widths, self.blocks_per_stage,
                      temporal_kernels=kernels,
                      nonlocal_blocks=nonlocal_blocks)
    if any(k < 1 or k % 2 == 0 for stage in kernels for k in stage) or any(
        not stage for stage in kernels):
      raise VidjaxError(f"config.model.temporal_kernels={kernels}: every "
                        "stage needs odd kernels >= 1")
    check_nonlocal_mode(self.nonlocal_mode)
    check_temporal_padding(self.temporal_padding)
    frames = input_shape[0]
    stride = self.stem_temporal_stride * self.pool2_temporal_stride * (
        self.pool1_temporal_stride if self.stem_pool else 1)
    if frames < stride:
      raise VidjaxError(
          f"config.dataset.num_frames={frames} is fewer than the model's "
          f"temporal stride {stride} (stem x pool1 x pool2)")
    return kernels, nonlocal_blocks

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    kernels, nonlocal_blocks = self.check_input(x.shape[1:])
    dtype = jnp.dtype(self.dtype)
    pad = self.temporal_padding
    y = stem(x.astype(dtype), prefix="stem", features=self.stem_width,
             temporal_kernel=self.stem_temporal_kernel,
             temporal_stride=self.stem_temporal_stride,
             pool=self.stem_pool,
             pool_temporal_stride=self.pool1_temporal_stride,
             temporal_padding=pad, train=train, dtype=dtype)
    for s, (width, depth) in enumerate(zip(self.widths,
                                           self.blocks_per_stage)):
      if s == 1 and self.pool2_temporal_stride > 1:
        pt = self.pool2_temporal_stride
        y = nn.max_pool(y, (pt, 1, 1), strides=(pt, 1, 1))
      y = res_stage(y, prefix=f"stage{s}", features=width, depth=depth,
                    spatial_stride=2 if s > 0 else 1,
                    temporal_kernels=kernels[s],
                    nonlocal_blocks=nonlocal_blocks[s],
                    nonlocal_mode=self.nonlocal_mode,
                    nonlocal_sub_sample=self.nonlocal_sub_sample,
                    temporal_padding=pad, train=train, dtype=dtype)
    return classify(y.mean(axis=(1, 2, 3)), self.num_classes,
                    self.dropout_rate, train)
