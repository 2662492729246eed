"""ActionFormer-style one-stage temporal action detector (Flax linen).

Zhang, Wu and Li 2022, "ActionFormer: Localizing Moments of Actions with
Transformers" (ECCV, arXiv:2202.07925), Sec. 3.2 and Fig. 2:

1. Projection: `embed_layers` 1D convolutions (kernel 3) + LayerNorm + ReLU
   over the feature sequence [B, L, D_in], masked (padded steps are zero
   before and after every layer).
2. Encoder: `stem_layers` transformer blocks at full resolution, then one
   block per further pyramid level after a 2x downsampling (max-pool of
   kernel 3, stride 2: level l has L / 2^l points, point j centred on step
   j 2^l, `targets.py`). Self-attention is LOCAL: each step attends to the
   `window_size` steps around it (the paper's windowed attention, size 19 on
   THUMOS14), masked; it is computed exactly on a [B, L, window] band (shifted
   copies of the keys), so cost is linear in L.
3. Heads shared by every level (LayerNorm per level first): classification
   (`head_layers` conv + LN + ReLU, then a conv to K logits, bias initialised
   to the prior -log((1 - 0.01) / 0.01) as in focal-loss detectors) and
   regression (same trunk, 2 outputs = distances to start and end, passed
   through a learnable per-level scale and a ReLU, so they are non-negative,
   in units of the level's stride).

`dtype` is the compute dtype (e.g. "bfloat16"); parameters stay float32 and
the outputs are float32, as in the video models of vidjax/models.
Outputs: {"cls_logits" [B, P, K], "offsets" [B, P, 2], "point_mask" [B, P],
"features" [B, L, E] (level 0, for the two-stage mode)} with the P points of
all levels concatenated level by level.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from vidjax.tasks.localization import targets as targets_lib

_NEG = -1e9


def _masked(x, mask):
  return x * mask[..., None].astype(x.dtype)


class MaskedConv(nn.Module):
  """1D conv (SAME padding) of the masked sequence, output masked."""

  features: int
  kernel: int = 3
  dtype: str = "float32"
  bias_init: callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x, mask):
    y = nn.Conv(self.features, (self.kernel,), padding="SAME",
                dtype=jnp.dtype(self.dtype), bias_init=self.bias_init)(
                    _masked(x, mask))
    return _masked(y, mask)


class LocalAttention(nn.Module):
  """Multi-head self-attention of each step over the `window` steps centred
  on it (window odd), padded steps excluded as keys."""

  num_heads: int
  window: int = 19
  dropout_rate: float = 0.0
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    b, length, dim = x.shape
    h = self.num_heads
    dtype = jnp.dtype(self.dtype)
    qkv = nn.DenseGeneral((3, h, dim // h), dtype=dtype, name="qkv")(x)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]   # [B, L, H, Dh]
    half = self.window // 2
    pad = ((0, 0), (half, half), (0, 0), (0, 0))
    kp, vp = jnp.pad(k, pad), jnp.pad(v, pad)
    mp = jnp.pad(mask, ((0, 0), (half, half)))
    # band[b, i, o] = position i - half + o (one gather per tensor)
    idx = jnp.arange(length)[:, None] + jnp.arange(self.window)[None]
    kb, vb, mb = kp[:, idx], vp[:, idx], mp[:, idx]
    scale = 1.0 / math.sqrt(dim // h)
    logits = jnp.einsum("blhd,blwhd->blhw", q * scale, kb).astype(jnp.float32)
    logits = jnp.where(mb[:, :, None, :], logits, _NEG)
    weights = nn.softmax(logits, axis=-1)
    weights = nn.Dropout(self.dropout_rate)(weights, deterministic=not train)
    out = jnp.einsum("blhw,blwhd->blhd", weights.astype(dtype), vb)
    out = nn.DenseGeneral(dim, axis=(-2, -1), dtype=dtype, name="out")(out)
    return _masked(out, mask)


class Block(nn.Module):
  """Pre-LN transformer block with local attention, masked."""

  num_heads: int
  window: int
  mlp_ratio: int = 4
  dropout_rate: float = 0.0
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    dtype = jnp.dtype(self.dtype)
    drop = lambda y: nn.Dropout(self.dropout_rate)(  # noqa: E731
        y, deterministic=not train)
    y = nn.LayerNorm(dtype=dtype)(x)
    x = x + drop(LocalAttention(self.num_heads, self.window,
                                self.dropout_rate, self.dtype)(y, mask, train))
    y = nn.LayerNorm(dtype=dtype)(x)
    y = nn.Dense(x.shape[-1] * self.mlp_ratio, dtype=dtype)(y)
    y = nn.Dense(x.shape[-1], dtype=dtype)(nn.gelu(y))
    return _masked(x + drop(y), mask)


def downsample(x, mask):
  """2x: max-pool (kernel 3, stride 2, SAME) of the masked sequence; point j
  is centred on step 2j; its mask is mask[:, ::2]."""
  y = jnp.where(mask[..., None], x, jnp.asarray(_NEG, x.dtype))
  y = nn.max_pool(y, (3,), strides=(2,), padding=((1, 1),))
  sub = mask[:, ::2]
  return _masked(jnp.where(sub[..., None], y, 0), sub), sub


class Head(nn.Module):
  """Shared head: `layers` x (conv, LN, ReLU), then a conv to `outputs`."""

  outputs: int
  layers: int = 2
  kernel: int = 3
  bias_init: callable = nn.initializers.zeros
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask):
    for _ in range(self.layers):
      x = MaskedConv(x.shape[-1], self.kernel, self.dtype)(x, mask)
      x = _masked(nn.relu(nn.LayerNorm(dtype=jnp.dtype(self.dtype))(x)), mask)
    return MaskedConv(self.outputs, self.kernel, self.dtype,
                      bias_init=self.bias_init, name="out")(x, mask)


class ActionFormer(nn.Module):
  """The detector (module docstring). Inputs x [B, L, D_in], mask [B, L];
  L a multiple of 2^(num_levels - 1)."""

  num_classes: int
  embed_dim: int = 128
  num_levels: int = 6
  num_heads: int = 4
  window_size: int = 19
  mlp_ratio: int = 4
  embed_layers: int = 2
  stem_layers: int = 1
  head_layers: int = 2
  head_kernel: int = 3
  prior_prob: float = 0.01
  dropout_rate: float = 0.0
  input_norm: bool = True
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, train: bool = False):
    targets_lib.check_length(x.shape[1], self.num_levels)
    dtype = jnp.dtype(self.dtype)
    mask = mask.astype(bool)
    x = x.astype(dtype)
    if self.input_norm:  # per-step LayerNorm of the backbone features
      x = nn.LayerNorm(dtype=dtype, name="input_norm")(x)
    for i in range(self.embed_layers):
      x = MaskedConv(self.embed_dim, 3, self.dtype, name=f"embed_{i}")(x, mask)
      x = _masked(nn.relu(nn.LayerNorm(dtype=dtype)(x)), mask)
    block = lambda name: Block(self.num_heads, self.window_size,  # noqa
                               self.mlp_ratio, self.dropout_rate, self.dtype,
                               name=name)
    for i in range(self.stem_layers):
      x = block(f"stem_{i}")(x, mask, train)
    levels, masks = [x], [mask]
    for lvl in range(1, self.num_levels):
      x, mask = downsample(x, mask)
      x = block(f"level_{lvl}")(x, mask, train)
      levels.append(x)
      masks.append(mask)
    prior = -math.log((1 - self.prior_prob) / self.prior_prob)
    cls_head = Head(self.num_classes, self.head_layers, self.head_kernel,
                    nn.initializers.constant(prior), self.dtype, name="cls")
    reg_head = Head(2, self.head_layers, self.head_kernel, dtype=self.dtype,
                    name="reg")
    logits, offsets = [], []
    for lvl, (feat, m) in enumerate(zip(levels, masks)):
      feat = _masked(nn.LayerNorm(dtype=dtype, name=f"neck_{lvl}")(feat), m)
      logits.append(cls_head(feat, m).astype(jnp.float32))
      scale = self.param(f"scale_{lvl}", nn.initializers.ones, ())
      offsets.append(nn.relu(scale * reg_head(feat, m).astype(jnp.float32)))
    return {"cls_logits": jnp.concatenate(logits, 1),
            "offsets": jnp.concatenate(offsets, 1),
            "point_mask": jnp.concatenate(masks, 1),
            "features": levels[0].astype(jnp.float32)}

