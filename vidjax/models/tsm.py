"""TSM: a 2D ResNet with temporal shifts (Lin, Gan & Han, ICCV 2019, "TSM:
Temporal Shift Module for Efficient Video Understanding", arXiv:1811.08383).

Facts the code relies on:
* Backbone: ResNet-50 (He et al. 2016) applied to every frame: conv1 7x7
  stride 2, 3x3 max pool stride 2, (3, 4, 6, 3) bottleneck blocks of inner
  widths 64..512 (`vidjax.layers.resnet_blocks.Bottleneck`, every kernel 2D:
  frames are folded into the batch by the convolutions, activations keep
  their (B, T, H, W, C) shape so the shift can move features across T).
* Every residual block shifts 1/8 of its input channels one frame backward
  and 1/8 forward, zero-padded (`vidjax.layers.temporal_shift`), inside the
  residual branch ("residual", the paper's Sec. 3.3 choice) or on the block's
  input ("inplace"); "none" is the TSN / C2D baseline with the same
  parameters. The shift has no parameters and no multiply-adds: TSM-R50 has
  ResNet-50's parameters (24.33M with 400 classes) and 8 x 4.1 = 33 G
  multiply-adds for 8 frames of 224^2.
* Initialisation: the release builds TSM on torchvision's ResNet-50, whose
  residual branches end in a BN with scale 1 (`zero_init_residual=False`)
  and starts from its ImageNet weights. Here the branch's last BN starts at
  1 too (`zero_init_last_bn=False`): with the shift inside the residual
  branch, a branch that starts at zero (Goyal et al.'s trick, right for
  I3D-R50 / SlowFast) hides every shifted feature, and from scratch the
  small TSM stayed a 2D network: 13.0% on `synthetic_motion/motion` at 200
  steps, its `shift_place=none` baseline 14.0% (issue #17; the suite's rows
  `tsm`, `tsm_none` in benchmarks/RESULTS.md).
* Head: TSN's: dropout (0.5 on Kinetics), a linear layer per frame and the
  average over frames ("consensus"). The linear layer commutes with the
  average, so here frames are pooled first (same logits, T x fewer MACs).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.resnet_blocks import stem
from vidjax.layers.temporal_shift import check_shift_place
from vidjax.models.resnet_video import check_stage_lists, classify, res_stage
from vidjax.registry import register_model


@register_model("tsm")
class TSMResNet(nn.Module):
  """TSM ResNet. x: (B, T, H, W, C) -> (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    widths: inner (bottleneck) width of each stage; outputs are 4x.
    blocks_per_stage: bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3).
    stem_width: conv1 channels.
    stem_pool: the 3x3 stride-2 max pool after conv1.
    shift_place: "residual" (paper) | "inplace" | "none" (TSN baseline).
    shift_div: 1/shift_div of the channels move each way (paper: 8).
    dropout_rate: before the head (paper: 0.5).
    zero_init_last_bn: each block's last BN scale starts at 0 (Goyal et
      al.), else at 1 (torchvision's ResNet, which TSM's release uses; the
      default: see the module docstring).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (64, 128, 256, 512)
  blocks_per_stage: Tuple[int, ...] = (3, 4, 6, 3)
  stem_width: int = 64
  stem_pool: bool = True
  shift_place: str = "residual"
  shift_div: int = 8
  dropout_rate: float = 0.5
  zero_init_last_bn: bool = False
  dtype: str = "float32"

  def check_input(self, input_shape):
    check_shift_place(self.shift_place)
    check_stage_lists(self.widths, self.blocks_per_stage)
    if self.shift_div < 2:
      raise VidjaxError(f"config.model.shift_div={self.shift_div} must be "
                        ">= 2 (2 shifts every channel)")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape[1:])
    dtype = jnp.dtype(self.dtype)
    y = stem(x.astype(dtype), prefix="stem", features=self.stem_width,
             pool=self.stem_pool, train=train, dtype=dtype)
    for s, (width, depth) in enumerate(zip(self.widths,
                                           self.blocks_per_stage)):
      y = res_stage(y, prefix=f"stage{s}", features=width, depth=depth,
                    spatial_stride=2 if s > 0 else 1,
                    shift_place=self.shift_place, shift_div=self.shift_div,
                    zero_init_last_bn=self.zero_init_last_bn, train=train,
                    dtype=dtype)
    return classify(y.mean(axis=(1, 2, 3)), self.num_classes,
                    self.dropout_rate, train)
