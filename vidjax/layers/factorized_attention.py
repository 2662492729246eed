"""Factorised space-time attention blocks for video transformers.

Tokens live on a (B, T, S, D) grid: T time steps, S = H*W spatial positions.

* `DividedSpaceTimeBlock` -- TimeSformer's "divided space-time attention"
  (Bertasius et al., ICML 2021, "Is Space-Time Attention All You Need for
  Video Understanding?", Sec. 3, Eq. 6-8, Fig. 1): temporal attention among
  the tokens at the same spatial location in every frame, then spatial
  attention among the tokens of one frame, then the MLP; each a pre-norm
  residual branch. The CLS token takes no part in temporal attention; for
  spatial attention it is prepended to every frame and its T outputs are
  averaged back into one token. The temporal branch has an extra linear layer
  after its attention (`temporal_fc`), as in the authors' release: without it
  the model has 115.7M parameters, with it the paper's 121.4M (Tab. 1).
  `temporal=False` drops the temporal branch: the "space-only" model.
* `FactorisedSelfAttentionBlock` -- ViViT model 3 (Arnab et al., ICCV 2021,
  "ViViT: A Video Vision Transformer", Sec. 3.3, Eq. 4-6): spatial
  self-attention, then temporal self-attention, then the MLP. The temporal
  attention's output projection is zero-initialised ("we initialise the
  temporal attention weights to zero", Sec. 3.4), so at initialisation every
  block is a spatial ViT block and the model a per-frame ViT.
* `FactorisedDotProductAttention` -- ViViT model 4 (Sec. 3.3, Eq. 7-9): one
  multi-head self-attention whose heads are split, `spatial_heads` attending
  over space and the rest over time; the head outputs are concatenated and
  go through one output projection. `spatial_heads=num_heads` (or 0) is plain
  spatial (temporal) attention on the grid. Parameter names match
  `MultiHeadSelfAttention`, so weights are interchangeable.
* `FactorisedDotProductBlock` -- a pre-norm transformer block around it.

The attention cores are `vidjax.layers.attention`'s; MLP and stochastic depth
are `vidjax.layers.transformer`'s.
"""
from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from vidjax.layers.attention import (ATTENTION_IMPLS, MultiHeadSelfAttention,
                                     attend)
from vidjax.layers.transformer import DropPath, MlpBlock


_attend = attend  # attention over axis -3 of (..., N, heads, head_dim) q/k/v


class FactorisedDotProductAttention(nn.Module):
  """Multi-head self-attention on a (..., T, S, D) token grid, each head over
  one axis: the first `spatial_heads` heads over S (within a frame), the
  others over T (same spatial position across frames). ViViT model 4.

  Attributes:
    num_heads: total number of heads.
    spatial_heads: heads attending over space; None: half of `num_heads`.
    dropout_rate: dropout on the attention weights (train only).
    attention_impl: one of ATTENTION_IMPLS (vidjax.layers.attention).
    dtype: compute dtype (parameters float32).
    kernel_init: initialiser of the q/k/v kernels.
    out_kernel_init: initialiser of the output projection's kernel.
  """
  num_heads: int
  spatial_heads: Optional[int] = None
  dropout_rate: float = 0.0
  attention_impl: str = "auto"
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.xavier_uniform()
  out_kernel_init: Callable = nn.initializers.xavier_uniform()

  @nn.compact
  def __call__(self, x, *, deterministic: bool = True):
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={self.attention_impl!r}; "
                       f"expected one of {ATTENTION_IMPLS}")
    if x.ndim < 3:
      raise ValueError(f"expected a (..., T, S, D) token grid, got {x.shape}")
    width = x.shape[-1]
    if width % self.num_heads:
      raise ValueError(f"width {width} not divisible by {self.num_heads} heads")
    n_space = (self.num_heads // 2 if self.spatial_heads is None
               else self.spatial_heads)
    if not 0 <= n_space <= self.num_heads:
      raise ValueError(f"spatial_heads={n_space} not in [0, {self.num_heads}]")
    head_dim = width // self.num_heads
    project = lambda name: nn.DenseGeneral(
        features=(self.num_heads, head_dim), dtype=self.dtype,
        kernel_init=self.kernel_init, name=name)
    qkv = [project(n)(x) for n in ("query", "key", "value")]  # (.,T,S,h,d)

    dropout_fn = None
    if self.dropout_rate > 0.0 and not deterministic:
      dropout_fn = lambda w: nn.Dropout(self.dropout_rate)(
          w, deterministic=False)
    outs = []
    if n_space:  # attend over S, the sequence axis of (..., T, S, h, d)
      outs.append(_attend(*(t[..., :n_space, :] for t in qkv),
                          self.attention_impl, dropout_fn))
    if n_space < self.num_heads:  # attend over T: swap T and S
      swap = lambda t: jnp.swapaxes(t[..., n_space:, :], -4, -3)
      out = _attend(*(swap(t) for t in qkv), self.attention_impl, dropout_fn)
      outs.append(jnp.swapaxes(out, -4, -3))
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-2)
    return nn.DenseGeneral(
        features=width, axis=(-2, -1), dtype=self.dtype,
        kernel_init=self.out_kernel_init, name="out")(out)


class _Residual(nn.Module):
  """Dropout then stochastic depth on a residual branch's output."""
  dropout_rate: float

  @nn.compact
  def __call__(self, y, rate, *, deterministic: bool):
    y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    return DropPath()(y, rate, deterministic=deterministic)


class _GridBlockBase(nn.Module):
  """Options shared by the blocks below."""
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  attention_impl: str = "auto"
  deterministic: bool = True
  dtype: Any = jnp.float32
  layer_norm_eps: float = 1e-6    # as EncoderBlock (transformers parity)
  approximate_gelu: bool = True   # False: exact erf GELU in the MLP

  def _mhsa(self, name, **kwargs):
    return MultiHeadSelfAttention(
        num_heads=self.num_heads, dropout_rate=self.attention_dropout_rate,
        attention_impl=self.attention_impl, dtype=self.dtype, name=name,
        **kwargs)

  def _grid_attention(self, name, spatial_heads, **kwargs):
    return FactorisedDotProductAttention(
        num_heads=self.num_heads, spatial_heads=spatial_heads,
        dropout_rate=self.attention_dropout_rate,
        attention_impl=self.attention_impl, dtype=self.dtype, name=name,
        **kwargs)

  def _norm(self, name):
    return nn.LayerNorm(self.layer_norm_eps, dtype=self.dtype, name=name)

  def _mlp(self, x, rate):
    y = MlpBlock(self.mlp_dim, self.dropout_rate, self.dtype,
                 self.approximate_gelu, name="mlp")(
        self._norm("norm2")(x), deterministic=self.deterministic)
    return x + DropPath()(y, rate, deterministic=self.deterministic)


class DividedSpaceTimeBlock(_GridBlockBase):
  """TimeSformer block on (cls (B, 1, D), patches (B, T, S, D)).

  Returns the updated (cls, patches). `temporal=False`: space-only block.
  Parameters: `temporal_norm`, `temporal_attention`, `temporal_fc` (temporal
  branch), `norm1`, `attention` (spatial), `norm2`, `mlp`.
  """
  temporal: bool = True

  @nn.compact
  def __call__(self, cls, patches, drop_path_rate=None):
    rate = self.drop_path_rate if drop_path_rate is None else drop_path_rate
    det = self.deterministic
    if self.temporal:  # same spatial position across frames; CLS excluded
      y = self._norm("temporal_norm")(patches)
      y = self._grid_attention("temporal_attention", spatial_heads=0)(
          y, deterministic=det)
      y = nn.Dense(patches.shape[-1], dtype=self.dtype, name="temporal_fc")(y)
      patches = patches + _Residual(self.dropout_rate)(y, rate,
                                                       deterministic=det)
    # Spatial: within each frame, with the CLS token repeated per frame.
    batch, frames, _, dim = patches.shape
    tokens = jnp.concatenate(
        [jnp.broadcast_to(cls[:, None], (batch, frames, 1, dim)), patches],
        axis=2)  # (B, T, 1 + S, D)
    y = self._mhsa("attention")(self._norm("norm1")(tokens),
                                deterministic=det)
    y = _Residual(self.dropout_rate)(y, rate, deterministic=det)
    cls = cls + y[:, :, 0].mean(axis=1, keepdims=True)  # average the T copies
    patches = patches + y[:, :, 1:]
    # MLP on every token.
    x = jnp.concatenate([cls, patches.reshape(batch, -1, dim)], axis=1)
    x = self._mlp(x, rate)
    return x[:, :1], x[:, 1:].reshape(patches.shape)


class FactorisedSelfAttentionBlock(_GridBlockBase):
  """ViViT model-3 block on (B, T, S, D) tokens: spatial MHSA, temporal MHSA
  (output projection zero-initialised), MLP; pre-norm residuals.

  Parameters: `norm1`, `attention` (spatial), `temporal_norm`,
  `temporal_attention`, `norm2`, `mlp`; without the temporal ones they are
  exactly an `EncoderBlock`'s.
  """

  @nn.compact
  def __call__(self, x, drop_path_rate=None):
    rate = self.drop_path_rate if drop_path_rate is None else drop_path_rate
    det = self.deterministic
    y = self._mhsa("attention")(self._norm("norm1")(x), deterministic=det)
    x = x + _Residual(self.dropout_rate)(y, rate, deterministic=det)
    y = self._grid_attention(
        "temporal_attention", spatial_heads=0,
        out_kernel_init=nn.initializers.zeros)(
            self._norm("temporal_norm")(x), deterministic=det)
    x = x + _Residual(self.dropout_rate)(y, rate, deterministic=det)
    return self._mlp(x, rate)


class FactorisedDotProductBlock(_GridBlockBase):
  """ViViT model-4 block on (B, T, S, D) tokens: pre-norm residual
  `FactorisedDotProductAttention` (half the heads spatial), then the MLP.
  Parameter names are an `EncoderBlock`'s."""
  spatial_heads: Optional[int] = None

  @nn.compact
  def __call__(self, x, drop_path_rate=None):
    rate = self.drop_path_rate if drop_path_rate is None else drop_path_rate
    det = self.deterministic
    y = self._grid_attention("attention", spatial_heads=self.spatial_heads)(
        self._norm("norm1")(x), deterministic=det)
    x = x + _Residual(self.dropout_rate)(y, rate, deterministic=det)
    return self._mlp(x, rate)
