"""Image ViT applied per frame (Dosovitskiy et al., ICLR 2021, arXiv:2010.11929,
"An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale").

Each frame is cut into non-overlapping p x p patches, linearly embedded
(`PatchEmbedding`), a learned CLS token is prepended (classifier="token"; or
none and the tokens are averaged, "gap"), learned position embeddings are
added, and a pre-norm transformer `Encoder` (the ViViT modules'
`_TokenPooling`, so the parameter tree matches ViViT's spatial encoder) gives
the pooled vector; a linear head gives per-frame logits, which are averaged
over the frames, as the single-frame baseline does (Karpathy et al. 2014). With
one frame it is the image classifier of the paper.

Parameter tree: embedding/{kernel (p, p, C, D), bias}, transformer/{cls,
pos_embedding/pos_embedding (1, 1 + N, D), encoder/...}, head. That is what
`vidjax.init_adapt` maps onto ViViT models 1 and 2.

Sizes (paper Tab. 1; 224x224, 1000 classes, no pre-logits layer): ViT-B/16
86,567,656 parameters, ViT-L/16 304,326,632, ViT-S/16 (DeiT-S, Touvron et al.
2021: D 384, 6 heads) 22.05M; ViT-B/16 17.6 G multiply-adds per image (all
checked by tests/test_models_vit.py). The block variants of
`vidjax.layers.transformer` (norm, mlp, MoE) are options too.
"""
from typing import Sequence, Union

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.embedding import PatchEmbedding
from vidjax.models.vivit import (_check_classifier, _encoder_kwargs, _head,
                                 _TokenPooling, compute_dtype)
from vidjax.registry import register_model

# Paper variants: (hidden_size, num_layers, num_heads, mlp_dim).
SIZES = {"S": (384, 12, 6, 1536), "B": (768, 12, 12, 3072),
         "L": (1024, 24, 16, 4096), "H": (1280, 32, 16, 5120)}


def patch_pair(patch_size: Union[int, Sequence[int]]):
  """16 or (16, 16) -> (16, 16)."""
  if isinstance(patch_size, int):
    return (patch_size, patch_size)
  return tuple(int(p) for p in patch_size)


@register_model("vit")
class ViT(nn.Module):
  """ViT per frame, logits averaged over time. (B,T,H,W,C) -> (B, classes).

  Attributes (config options): patch_size (int or (h, w)), hidden_size,
  num_heads, mlp_dim, num_layers, classifier ("token" | "gap"),
  dropout_rate, attention_dropout_rate, stochastic_depth, attention_impl,
  scan_layers, remat, dtype (compute dtype), head_init_std (0: zero head
  kernel, as ViT fine-tuning does), norm / mlp / num_experts / moe_top_k
  (block variants, vidjax.layers.transformer).
  """
  num_classes: int
  patch_size: Union[int, Sequence[int]] = 16
  hidden_size: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  num_layers: int = 12
  classifier: str = "token"
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  attention_impl: str = "auto"
  scan_layers: bool = False
  remat: bool = False
  remat_policy: str = "nothing_saveable"  # a jax.checkpoint_policies name
  dtype: str = "float32"
  head_init_std: float = 0.0
  norm: str = "layernorm"
  mlp: str = "gelu"
  num_experts: int = 4
  moe_top_k: int = 1
  # transformers' ViT (tools/convert_checkpoint): hidden_act "gelu" is the
  # exact erf GELU (approximate_gelu=False), layer_norm_eps 1e-12.
  approximate_gelu: bool = True
  layer_norm_eps: float = 1e-6

  def check_input(self, input_shape):
    _, height, width = input_shape[:3]
    ph, pw = patch_pair(self.patch_size)
    for size, patch in ((height, ph), (width, pw)):
      if size % patch:
        raise VidjaxError(f"config.dataset.crop_size={size} is not divisible "
                          f"by config.model.patch_size={self.patch_size}")
    if self.hidden_size % self.num_heads:
      raise VidjaxError(f"config.model.hidden_size={self.hidden_size} is not "
                        f"divisible by config.model.num_heads={self.num_heads}")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    _check_classifier(self.classifier)
    dtype = compute_dtype(self.dtype)
    batch, steps = x.shape[:2]
    frames = x.reshape((batch * steps,) + x.shape[2:]).astype(dtype)
    tokens = PatchEmbedding(self.hidden_size, patch_pair(self.patch_size),
                            dtype=dtype, name="embedding")(frames)
    tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
    encoder_kwargs = _encoder_kwargs(self, self.num_layers)
    encoder_kwargs.update(layer_norm_eps=self.layer_norm_eps, block_options=(
        ("approximate_gelu", self.approximate_gelu),
        ("layer_norm_eps", self.layer_norm_eps)))
    pooled = _TokenPooling(
        self.classifier, encoder_kwargs,
        self.dropout_rate, name="transformer")(tokens, train=train)
    logits = _head(self.num_classes, self.head_init_std)(
        pooled.astype(jnp.float32))
    return logits.reshape(batch, steps, -1).mean(axis=1)
