"""Inception-v1 with BatchNorm and its inflated 3D version, I3D.

* "inception2d" (`Inception2D`): Inception-v1 (Szegedy et al., CVPR 2015,
  "Going Deeper with Convolutions", Tab. 1: GoogLeNet) with BatchNorm after
  every conv (Ioffe & Szegedy, ICML 2015), applied to every frame; per-frame
  logits are averaged over the frames (as `single_frame`).
* "i3d" (`I3D`): Carreira & Zisserman, CVPR 2017, "Quo Vadis, Action
  Recognition? A New Model and the Kinetics Dataset", Fig. 3: the same network
  with every k x k conv made k x k x k.

Layout (both; I3D's temporal sizes in brackets, as in the paper's Fig. 3 and
the released deepmind/kinetics-i3d code):
conv1a 7x7 [7] stride 2 [2], 64 -> max pool 2a 3x3 [1] stride 2 [1] ->
conv2b 1x1, 64 -> conv2c 3x3 [3], 192 -> max pool 3a 3x3 [1] stride 2 [1] ->
mixed 3b, 3c -> max pool 4a 3x3 [3] stride 2 [2] -> mixed 4b-4f ->
max pool 5a 2x2 [2] stride 2 [2] -> mixed 5b, 5c -> avg pool 7x7 [2] stride 1
(valid) -> dropout -> 1x1 [1] conv with bias to the classes -> mean over the
remaining positions (for I3D: time steps, as the release averages them).
Each mixed block concatenates four branches: 1x1; 1x1 -> 3x3; 1x1 -> kxk;
3x3 [3] stride-1 max pool -> 1x1, with GoogLeNet Tab. 1's widths (`BLOCKS`);
block outputs are 256, 480, 512, 512, 512, 528, 832, 832, 1024 channels.
The third branch is 3x3 (k=3, `branch2_kernel`) in I3D's Fig. 3 and release
(inherited from TF-slim's Inception-v1, which I3D was bootstrapped from),
5x5 in GoogLeNet's Tab. 1 (branch2_kernel=5). Convs have no bias; BatchNorm
(eps 1e-3) has an offset but, as in the I3D release, no scale (`bn_scale`).
Max pools pad with -inf to TF "SAME" sizes; convs pad (k-1)//2 per side.

Sizes (costs.count_params / kernel_gmacs): I3D RGB, 400 classes:
12,689,984 params (12,697,264 with bn_scale, the count of the PyTorch port
piergiaj/pytorch-i3d); RGB + flow (2-channel) nets 25.36M, the paper's
"Two-Stream I3D 25M" (Tab. 1); 111.2 G multiply-adds per 64x224x224 clip
(the SlowFast paper's Tab. 2 lists I3D at 108 GFLOPs). Inception2D, 1000
classes, 224x224: 6,617,624 params, 1.50 G multiply-adds; with
branch2_kernel=5 (GoogLeNet) 6,998,552 and 1.58 G (Tab. 1 sums to 6.8M and
1.5 G; slim's MaxPool_5a is 2x2, GoogLeNet's 3x3/2: same map sizes).

Inflation (`vidjax.models.inflate.inflate_variables`): both models create the
same module names, so the 2D net's variables map one to one onto I3D's (2D
kernels are repeated over time and divided by Kt; BatchNorm arrays copied).
With temporal_padding="edge" a static clip through the inflated I3D gives the
2D net's logits exactly, at any clip length (max pools and the average pool
keep a static clip static, also through their temporal strides); with zero
temporal padding (the paper, TF "SAME") the first and last frames see zeros.
Small inputs: `width_multiplier` scales every width, `stem_pools` drops the
stem's max pools and the final average pool window shrinks to the feature map.
"""
import functools
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import check_temporal_padding, conv3d
from vidjax.registry import register_model

# GoogLeNet Tab. 1 / I3D Fig. 3: (name, #1x1, #3x3 reduce, #3x3, #kxk reduce,
# #kxk, pool proj). Max pool 4a comes before mixed_4b, 5a before mixed_5b.
BLOCKS = (
    ("mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("mixed_5c", (384, 192, 384, 48, 128, 128)),
)


class Unit(nn.Module):
  """conv (no bias) -> BatchNorm -> ReLU; 2D or 3D by len(kernel)."""
  features: int
  kernel: Tuple[int, ...]
  strides: Tuple[int, ...] = ()
  temporal_padding: str = "zeros"
  bn_scale: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    strides = tuple(self.strides) or (1,) * len(self.kernel)
    if len(self.kernel) == 3:
      y = conv3d(x, self.features, self.kernel, strides, name="conv",
                 temporal_padding=self.temporal_padding, dtype=self.dtype)
    else:
      y = nn.Conv(self.features, tuple(self.kernel), strides=strides,
                  padding=[((k - 1) // 2,) * 2 for k in self.kernel],
                  use_bias=False, dtype=self.dtype, name="conv",
                  kernel_init=nn.initializers.kaiming_normal())(x)
    y = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-3, use_scale=self.bn_scale, dtype=self.dtype,
                     name="bn")(y)
    return nn.relu(y)


class InceptionBlock(nn.Module):
  """Four branches, concatenated: 1x1 | 1x1->3x3 | 1x1->kxk | pool->1x1.

  widths: (#1x1, #3x3 reduce, #3x3, #kxk reduce, #kxk, pool proj);
  ndim: 2 (Inception-v1) or 3 (I3D: cubic kernels, 3x3x3 pool).
  """
  widths: Tuple[int, ...]
  ndim: int = 2
  branch2_kernel: int = 3
  temporal_padding: str = "zeros"
  bn_scale: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    cube = lambda k: (k,) * self.ndim
    unit = functools.partial(Unit, temporal_padding=self.temporal_padding,
                             bn_scale=self.bn_scale, dtype=self.dtype)
    w = self.widths
    b0 = unit(w[0], cube(1), name="branch0")(x, train=train)
    b1 = unit(w[1], cube(1), name="branch1a")(x, train=train)
    b1 = unit(w[2], cube(3), name="branch1b")(b1, train=train)
    b2 = unit(w[3], cube(1), name="branch2a")(x, train=train)
    b2 = unit(w[4], cube(self.branch2_kernel), name="branch2b")(b2,
                                                                train=train)
    b3 = nn.max_pool(x, cube(3), strides=cube(1), padding="SAME")
    b3 = unit(w[5], cube(1), name="branch3b")(b3, train=train)
    y = jnp.concatenate([b0, b1, b2, b3], axis=-1)
    self.sow("intermediates", "output", y)  # apply(..., mutable=[...]) reads
    return y


class _InceptionV1(nn.Module):
  """Shared body of `Inception2D` and `I3D` (identical parameter names).

  Attributes:
    num_classes: output classes.
    width_multiplier: scales every conv width (rounded, at least 1).
    branch2_kernel: the third branch's kernel: 3 (I3D, TF-slim) or 5
      (GoogLeNet Tab. 1).
    conv1_stride: spatial stride of conv1a (paper: 2).
    conv1_temporal_stride: I3D's temporal stride of conv1a (paper: 2).
    stem_pools: how many of the stem's max pools to keep: 2 (2a and 3a, the
      paper), 1 (3a only), 0 (none): small inputs keep a spatial map.
    final_pool: the average pool window (t, h, w) before the logits (paper
      2x7x7; Inception2D uses (h, w)); clipped to the feature map.
    temporal_padding: I3D's temporal conv padding: "zeros" (paper) or "edge"
      (exact inflation on static clips).
    bn_scale: BatchNorm with a learned scale (not in the I3D release).
    dropout_rate: dropout before the logits (GoogLeNet: 0.4).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  width_multiplier: float = 1.0
  branch2_kernel: int = 3
  conv1_stride: int = 2
  conv1_temporal_stride: int = 2
  stem_pools: int = 2
  final_pool: Tuple[int, int, int] = (2, 7, 7)
  temporal_padding: str = "zeros"
  bn_scale: bool = False
  dropout_rate: float = 0.4
  dtype: str = "float32"

  ndim = 2  # spatial(-temporal) dims of the convolutions; not a field

  def check_input(self, input_shape):
    if len(input_shape) != 4:
      raise VidjaxError(f"{type(self).__name__} expects (B, T, H, W, C) "
                        f"clips; got input shape (B,) + {tuple(input_shape)}")
    if not self.width_multiplier > 0:
      raise VidjaxError(f"config.model.width_multiplier="
                        f"{self.width_multiplier} must be > 0")
    if self.branch2_kernel not in (3, 5):
      raise VidjaxError(f"config.model.branch2_kernel={self.branch2_kernel}; "
                        "expected 3 (I3D) or 5 (GoogLeNet)")
    if self.stem_pools not in (0, 1, 2):
      raise VidjaxError(f"config.model.stem_pools={self.stem_pools}; "
                        "expected 0, 1 or 2")
    if len(self.final_pool) != 3 or min(self.final_pool) < 1:
      raise VidjaxError(f"config.model.final_pool={tuple(self.final_pool)} "
                        "must be three positive sizes (t, h, w)")
    check_temporal_padding(self.temporal_padding)

  def width(self, channels: int) -> int:
    return max(1, int(round(channels * self.width_multiplier)))

  def body(self, x, *, train: bool):
    """(N, [T,] H, W, C) -> logits at every remaining position."""
    dtype = jnp.dtype(self.dtype)
    nd = self.ndim
    k = lambda t, s: (t, s, s) if nd == 3 else (s, s)
    unit = functools.partial(Unit, temporal_padding=self.temporal_padding,
                             bn_scale=self.bn_scale, dtype=dtype)
    y = unit(self.width(64), k(7, 7),
             k(self.conv1_temporal_stride, self.conv1_stride),
             name="conv1a")(x.astype(dtype), train=train)
    if self.stem_pools >= 2:
      y = nn.max_pool(y, k(1, 3), strides=k(1, 2), padding="SAME")  # 2a
    y = unit(self.width(64), k(1, 1), name="conv2b")(y, train=train)
    y = unit(self.width(192), k(3, 3), name="conv2c")(y, train=train)
    if self.stem_pools >= 1:
      y = nn.max_pool(y, k(1, 3), strides=k(1, 2), padding="SAME")  # 3a
    for name, widths in BLOCKS:
      if name == "mixed_4b":
        y = nn.max_pool(y, k(3, 3), strides=k(2, 2), padding="SAME")  # 4a
      if name == "mixed_5b":
        y = nn.max_pool(y, k(2, 2), strides=k(2, 2), padding="SAME")  # 5a
      y = InceptionBlock(tuple(self.width(c) for c in widths), nd,
                         self.branch2_kernel, self.temporal_padding,
                         self.bn_scale, dtype, name=name)(y, train=train)
    window = tuple(min(p, s) for p, s in zip(self.final_pool[-nd:],
                                               y.shape[1:-1]))
    y = nn.avg_pool(y, window, strides=(1,) * nd, padding="VALID")
    y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    y = nn.Conv(self.num_classes, (1,) * nd, dtype=jnp.float32,
                name="logits")(y.astype(jnp.float32))
    return y


@register_model("inception2d")
class Inception2D(_InceptionV1):
  """Per-frame BN-Inception-v1, logits averaged over frames and positions.
  (B, T, H, W, C) -> (B, num_classes) float32. Fields: `_InceptionV1`;
  conv1_temporal_stride, temporal_padding and final_pool[0] are unused."""

  ndim = 2

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape[1:])
    batch, steps = x.shape[:2]
    y = self.body(x.reshape((batch * steps,) + x.shape[2:]), train=train)
    return y.reshape(batch, -1, self.num_classes).mean(axis=1)


@register_model("i3d")
class I3D(_InceptionV1):
  """Inflated Inception-v1: (B, T, H, W, C) -> (B, num_classes) float32,
  logits averaged over the remaining time steps. Fields: `_InceptionV1`."""

  ndim = 3

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape[1:])
    y = self.body(x, train=train)
    return y.reshape(y.shape[0], -1, self.num_classes).mean(axis=1)
