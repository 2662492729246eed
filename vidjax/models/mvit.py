"""MViTv2 for video (Li et al., CVPR 2022, "MViTv2: Improved Multiscale Vision
Transformers for Classification and Detection"; MViT: Fan et al., ICCV 2021,
"Multiscale Vision Transformers").

Layout ("mvitv2"; defaults = MViTv2-S 16x4 of the paper's Kinetics table, as
in the release's MVITv2_S_16x4 config):
* stem: Conv3d(embed_dim) with kernel 3x7x7, stride 2x4x4, padding 1x3x3
  (with bias): a (T, H, W) clip becomes a T/2 x H/4 x W/4 token grid;
* a learned class token in front (`cls_token`; trunc-normal 0.02), no
  absolute position embedding (MViTv2 uses relative positions instead);
* `depth` multiscale blocks (vidjax.layers.pooling_attention): at each block
  index in `stage_starts` the width and the number of heads double (in the
  attention, "dim_mul_in_att") and Q is pooled with stride `q_stride`
  (1x2x2), so each stage halves H and W. Every block pools Q, K, V with the
  depthwise `pool_kernel` (3x3x3; stride 1 where not stated). K/V strides are
  adaptive: `kv_stride` (1x8x8) in the first block, divided by the Q stride
  at each transition (1x8x8, 1x4x4, 1x2x2, 1x1x1 for MViTv2-S), applied to
  the block's input grid, so K/V are T/2 x H/32 x W/32 except at the
  transition blocks (T/2 x H/16 x W/16: their input is not yet Q-pooled);
* stochastic depth growing linearly from 0 (first block) to
  `stochastic_depth` (last; 0.2 for MViTv2-S);
* head: LayerNorm, the class token's output (mean of the tokens without a
  class token), dropout `dropout_rate` (0.5 in the release), Dense.
Widths double exactly (the release's rounding to a multiple of the heads is
the identity for these sizes).

MViTv2-S 16x4 at 16x224x224, 400 classes: 34,537,744 parameters, 64.2 G
multiply-adds per view (paper: 34.5M, 64 GFLOPs; tests/test_models_mvit.py).

Initialisation: attention / projection kernels, pooling convs, position
tables and the class token trunc-normal(0.02) as in the release; the MLPs are
`vidjax.layers.transformer.MlpBlock` (Xavier-uniform, exact GELU); biases 0
(the release sets Linear and LayerNorm biases to 0.02); head N(0,
head_init_std^2), zeros if head_init_std <= 0.
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.pooling_attention import LN_EPS, MultiScaleBlock
from vidjax.models.vivit import compute_dtype
from vidjax.registry import register_model


def block_schedule(depth, embed_dim, num_heads, stage_starts, q_stride,
                   kv_stride):
  """Per block: (dim_out, heads, stride_q, stride_kv), the release's rules."""
  blocks = []
  dim, heads, kv = embed_dim, num_heads, tuple(kv_stride)
  for i in range(depth):
    stride_q = (1, 1, 1)
    if i in stage_starts:
      dim, heads, stride_q = dim * 2, heads * 2, tuple(q_stride)
      kv = tuple(max(k // s, 1) for k, s in zip(kv, stride_q))
    blocks.append((dim, heads, stride_q, kv))
  return blocks


@register_model("mvitv2")
class MViTv2(nn.Module):
  """MViTv2 video classifier. x: (B, T, H, W, C) -> (B, num_classes)."""
  num_classes: int
  embed_dim: int = 96
  num_heads: int = 1
  depth: int = 16
  stage_starts: Tuple[int, ...] = (1, 3, 14)
  patch_kernel: Tuple[int, int, int] = (3, 7, 7)
  patch_stride: Tuple[int, int, int] = (2, 4, 4)
  pool_kernel: Tuple[int, int, int] = (3, 3, 3)
  q_stride: Tuple[int, int, int] = (1, 2, 2)
  kv_stride: Tuple[int, int, int] = (1, 8, 8)
  mlp_ratio: float = 4.0
  cls_token: bool = True
  rel_pos: bool = True
  residual_pooling: bool = True
  stochastic_depth: float = 0.2
  dropout_rate: float = 0.5
  head_init_std: float = 0.02
  dtype: str = "float32"
  # Depthwise pooling conv: "conv" (lax grouped conv), "shifts" (einsum of
  # shifted inputs: same result, far faster gradients on XLA:CPU), "auto":
  # "shifts" on CPU, "conv" elsewhere.
  pool_impl: str = "auto"

  def check_input(self, input_shape):
    """One-line errors for bad options, before anything is compiled."""
    if self.embed_dim % self.num_heads:
      raise VidjaxError(f"config.model.embed_dim={self.embed_dim} is not "
                        f"divisible by config.model.num_heads={self.num_heads}")
    if any(not 0 < s < self.depth for s in self.stage_starts) or list(
        self.stage_starts) != sorted(set(self.stage_starts)):
      raise VidjaxError(
          f"config.model.stage_starts={tuple(self.stage_starts)} must be "
          f"increasing block indices in 1..depth-1 (depth={self.depth})")
    for key in ("patch_kernel", "patch_stride", "pool_kernel", "q_stride",
                "kv_stride"):
      value = getattr(self, key)
      if len(value) != 3 or min(value) < 1:
        raise VidjaxError(f"config.model.{key}={tuple(value)}: expected 3 "
                          "positive (t, h, w) sizes")
    if any(k % 2 == 0 for k in self.pool_kernel) or max(self.q_stride) > 2:
      raise VidjaxError(
          f"config.model.pool_kernel={tuple(self.pool_kernel)} / "
          f"config.model.q_stride={tuple(self.q_stride)}: the pooled skip "
          "path needs odd pool kernels and Q strides of 1 or 2")
    if len(input_shape) != 4:
      raise VidjaxError(f"expected (T, H, W, C) clips, got {input_shape}")

  def schedule(self):
    return block_schedule(self.depth, self.embed_dim, self.num_heads,
                          self.stage_starts, self.q_stride, self.kv_stride)

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if x.ndim != 5:
      raise ValueError(f"expected (B, T, H, W, C) video, got shape {x.shape}")
    self.check_input(x.shape[1:])
    dtype = compute_dtype(self.dtype)
    x = nn.Conv(self.embed_dim, self.patch_kernel, strides=self.patch_stride,
                padding=[(k // 2, k // 2) for k in self.patch_kernel],
                dtype=dtype, name="patch_embed")(x.astype(dtype))
    batch, thw, dim = x.shape[0], x.shape[1:4], x.shape[-1]
    x = x.reshape(batch, -1, dim)
    if self.cls_token:
      cls = self.param("cls_token", nn.initializers.truncated_normal(0.02),
                       (1, 1, dim), jnp.float32)
      x = jnp.concatenate(
          [jnp.broadcast_to(cls.astype(dtype), (batch, 1, dim)), x], axis=1)
    denom = max(self.depth - 1, 1)
    for i, (dim_out, heads, stride_q, stride_kv) in enumerate(self.schedule()):
      x, thw = MultiScaleBlock(
          dim_out, heads, stride_q, stride_kv, self.pool_kernel,
          self.cls_token, self.rel_pos, self.residual_pooling, self.mlp_ratio,
          self.stochastic_depth * i / denom, dtype, self.pool_impl,
          name=f"block_{i}")(
              x, thw, deterministic=not train)
    x = nn.LayerNorm(LN_EPS, dtype=dtype, name="norm")(x)
    x = x[:, 0] if self.cls_token else x.mean(axis=1)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    init = (nn.initializers.zeros if self.head_init_std <= 0.0
            else nn.initializers.normal(self.head_init_std))
    return nn.Dense(self.num_classes, kernel_init=init, dtype=jnp.float32,
                    name="head")(x.astype(jnp.float32))
