"""Pre-norm transformer encoder (ViT, Dosovitskiy et al. 2021; used by ViViT).

Block: x + DropPath(MHSA(LN(x))), then x + DropPath(MLP(LN(x))), with dropout
after the attention output and inside the MLP. Stochastic depth (Huang et al.
2016, "Deep Networks with Stochastic Depth") drops a sample's whole residual
branch; as in ViViT/scenic the rate grows linearly from 0 at the first block to
`stochastic_depth` at the last.

`Encoder` stacks `num_layers` blocks and a final LayerNorm. Options:
* `scan_layers=True`: one `nn.scan` over the blocks; parameters are stacked on
  a leading layer axis under `layers/` (faster compiles for deep models on
  accelerators; ~17% slower steps on CPU).
* `remat=True`: `nn.remat` each block (recompute activations in backward).
Unrolled parameters live under `block_0 .. block_{L-1}`; stacking those along
a new axis 0 gives exactly the scanned `layers/` tree.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vidjax.layers.attention import MultiHeadSelfAttention


class DropPath(nn.Module):
  """Per-sample residual-branch dropout; `rate` may be a float or a scalar array."""

  @nn.compact
  def __call__(self, x, rate, *, deterministic: bool):
    if deterministic or (isinstance(rate, (int, float)) and rate == 0.0):
      return x
    keep = 1.0 - rate
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, mask_shape)
    return x * (mask / keep).astype(x.dtype)


class MlpBlock(nn.Module):
  """Dense(mlp_dim) -> GELU -> Dropout -> Dense(width) -> Dropout."""
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    width = x.shape[-1]
    dense = lambda features, name: nn.Dense(
        features, dtype=self.dtype, name=name,
        kernel_init=nn.initializers.xavier_uniform(),
        bias_init=nn.initializers.normal(stddev=1e-6))
    x = dense(self.mlp_dim, "fc1")(x)
    x = nn.gelu(x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = dense(width, "fc2")(x)
    return nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)


class EncoderBlock(nn.Module):
  """One pre-norm transformer block on (B, N, D) tokens.

  `__call__(x, drop_path_rate=None)`: the per-call rate (used by `nn.scan`,
  where each layer gets its own traced rate) overrides the attribute.
  With `scan_carry=True` it returns `(x, None)` as `nn.scan` wants.
  """
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  attention_impl: str = "einsum"
  deterministic: bool = True
  scan_carry: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, drop_path_rate=None):
    rate = self.drop_path_rate if drop_path_rate is None else drop_path_rate
    det = self.deterministic
    y = nn.LayerNorm(dtype=self.dtype, name="norm1")(x)
    y = MultiHeadSelfAttention(
        num_heads=self.num_heads, dropout_rate=self.attention_dropout_rate,
        attention_impl=self.attention_impl, dtype=self.dtype,
        name="attention")(y, deterministic=det)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=det)
    x = x + DropPath()(y, rate, deterministic=det)
    y = nn.LayerNorm(dtype=self.dtype, name="norm2")(x)
    y = MlpBlock(self.mlp_dim, self.dropout_rate, self.dtype, name="mlp")(
        y, deterministic=det)
    x = x + DropPath()(y, rate, deterministic=det)
    return (x, None) if self.scan_carry else x


class Encoder(nn.Module):
  """`num_layers` pre-norm blocks on (B, N, D) tokens, then a final LayerNorm.

  Position embeddings / CLS tokens are the caller's business.
  """
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  attention_impl: str = "einsum"
  scan_layers: bool = False
  remat: bool = False
  dtype: Any = jnp.float32
  # Any block with EncoderBlock's constructor options and a
  # `__call__(x, drop_path_rate=None)`, e.g. the factorised blocks of
  # `vidjax.layers.factorized_attention`; scanning needs `EncoderBlock`.
  block_cls: Any = None

  def _layer_rates(self):
    """Linearly increasing drop-path rates, 0 at the first block."""
    denom = max(self.num_layers - 1, 1)
    return [self.stochastic_depth * i / denom for i in range(self.num_layers)]

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    block_kwargs = dict(
        num_heads=self.num_heads, mlp_dim=self.mlp_dim,
        dropout_rate=self.dropout_rate,
        attention_dropout_rate=self.attention_dropout_rate,
        attention_impl=self.attention_impl, deterministic=not train,
        dtype=self.dtype)
    block_cls = self.block_cls or EncoderBlock
    if self.scan_layers and block_cls is not EncoderBlock:
      raise ValueError("scan_layers needs EncoderBlock blocks")
    if self.remat:
      block_cls = nn.remat(block_cls, prevent_cse=not self.scan_layers)

    if self.scan_layers and self.num_layers > 0:
      rates: Optional[jax.Array] = None
      if self.stochastic_depth > 0.0:
        rates = jnp.asarray(self._layer_rates(), jnp.float32)
      scanned = nn.scan(
          block_cls, variable_axes={"params": 0},
          split_rngs={"params": True, "dropout": True},
          in_axes=0, length=self.num_layers)
      x, _ = scanned(scan_carry=True, name="layers", **block_kwargs)(x, rates)
    else:
      for i, rate in enumerate(self._layer_rates()):
        x = block_cls(drop_path_rate=rate, name=f"block_{i}",
                      **block_kwargs)(x)
    return nn.LayerNorm(dtype=self.dtype, name="norm")(x)
