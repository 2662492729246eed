"""ViViT models 3 and 4 (Arnab et al., ICCV 2021, arXiv:2103.15691, Sec. 3.3).

Both keep all T'H'W' tubelet tokens in one encoder of `num_layers` blocks (like
model 1, `vivit_spatiotemporal`) but factorise the attention:

* `ViViTFactorisedSelfAttention` ("vivit_factorized_self_attention", model 3,
  Eq. 4-6): every block runs spatial self-attention (within a time step), then
  temporal self-attention (same spatial position across time steps), then the
  MLP. The temporal attention starts at zero (Sec. 3.4), so the initial model
  is a per-frame ViT.
* `ViViTFactorisedDotProduct` ("vivit_factorized_dot_product", model 4,
  Eq. 7-9): in every block half of the heads attend over space and half over
  time; one output projection. Same parameters as model 1.

As the paper says for model 3 (and as is needed by both: no token belongs to
the space-time grid), there is no classification token: the final-LayerNorm
outputs are averaged over all tokens. One learned position embedding covers
the T' x H'W' grid.

ViViT-B/16x2 (32x224x224, 400 classes): 117.3M / 88.9M parameters and
372.3 / 277.1 GFLOPs (paper Tab. 2), checked by
tests/test_models_vivit_factorized_attention.py.
"""

import flax.linen as nn
import jax.numpy as jnp

from vidjax.layers.embedding import AddPositionEmbedding, TubeletEmbedding
from vidjax.layers.factorized_attention import (FactorisedDotProductBlock,
                                                FactorisedSelfAttentionBlock)
from vidjax.layers.transformer import Encoder
from vidjax.models.vivit import ViViTOptions, _head, compute_dtype
from vidjax.registry import register_model


class _FactorisedViViT(ViViTOptions):
  """Tubelets + position embedding -> `Encoder` of `block_cls` -> mean -> head."""
  num_layers: int = 12

  block_cls = None  # set by subclasses (a class attribute, not a field)

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    dtype = compute_dtype(self.dtype)
    tokens = TubeletEmbedding(self.hidden_size, self.patch_size, dtype=dtype,
                              name="embedding")(x.astype(dtype))
    batch, steps, rows, cols, dim = tokens.shape
    tokens = tokens.reshape(batch, steps, rows * cols, dim)
    tokens = AddPositionEmbedding(name="pos_embedding")(tokens)
    tokens = nn.Dropout(self.dropout_rate)(tokens, deterministic=not train)
    tokens = Encoder(
        num_layers=self.num_layers, num_heads=self.num_heads,
        mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
        attention_dropout_rate=self.attention_dropout_rate,
        stochastic_depth=self.stochastic_depth,
        attention_impl=self.attention_impl, remat=self.remat,
        remat_policy=self.remat_policy, dtype=dtype,
        block_cls=type(self).block_cls, name="encoder")(tokens, train=train)
    pooled = tokens.mean(axis=(1, 2))
    return _head(self.num_classes, self.head_init_std)(
        pooled.astype(jnp.float32))


@register_model("vivit_factorized_self_attention")
class ViViTFactorisedSelfAttention(_FactorisedViViT):
  """ViViT model 3 (factorised self-attention). (B,T,H,W,C) -> (B, classes)."""
  block_cls = FactorisedSelfAttentionBlock


@register_model("vivit_factorized_dot_product")
class ViViTFactorisedDotProduct(_FactorisedViViT):
  """ViViT model 4 (factorised dot-product attention). (B,T,H,W,C) ->
  (B, classes)."""
  block_cls = FactorisedDotProductBlock
