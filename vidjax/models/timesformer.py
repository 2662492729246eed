"""TimeSformer (Bertasius, Wang & Torresani, ICML 2021, arXiv:2102.05095).

"Is Space-Time Attention All You Need for Video Understanding?": a ViT over
the 16x16 patches of every frame (Sec. 3). Each frame is cut into N = HW/P^2
patches, linearly embedded; a learned CLS token and a learned spatial position
embedding (1 + N vectors, the ViT's) are added, plus a learned temporal
embedding (one vector per frame) on the patch tokens. Then 12 blocks of one
`attention_type` (paper Tab. 1):

* "divided_space_time" (T+S, the paper's choice): temporal attention, then
  spatial attention, then the MLP (`DividedSpaceTimeBlock`); the CLS token
  joins spatial attention, repeated per frame and averaged back.
* "joint_space_time" (ST): one attention over all T*N patches + the CLS token
  (a ViT `EncoderBlock` on the flat sequence).
* "space_only" (S): spatial attention only, per frame, CLS shared as above;
  frames interact only through the CLS token.

Final LayerNorm, the CLS output, a linear head. TimeSformer (base, 8x224x224,
400 classes, divided): 121.4M parameters, 196 GFLOPs per view (multiply-adds;
paper Tab. 1 "0.59 TFLOPs" for 3 views), checked by
tests/test_models_timesformer.py.
"""
import flax.linen as nn
import jax.numpy as jnp

from vidjax.layers.embedding import TubeletEmbedding
from vidjax.layers.factorized_attention import DividedSpaceTimeBlock
from vidjax.layers.transformer import EncoderBlock, remat_block
from vidjax.models.vivit import _head, check_tubelet_input, compute_dtype
from vidjax.registry import register_model

ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")


@register_model("timesformer")
class TimeSformer(nn.Module):
  """TimeSformer. x: (B, T, H, W, C) -> (B, num_classes) float32 logits.

  Attributes (config options): patch_size (spatial, square), hidden_size,
  num_heads, mlp_dim, num_layers, attention_type (see module docstring),
  dropout_rate, attention_dropout_rate, stochastic_depth (linear 0 -> value
  over the blocks), attention_impl (vidjax.layers.attention.ATTENTION_IMPLS),
  remat (+ remat_policy), dtype (compute dtype), head_init_std (0:
  zero-initialised head kernel).
  """
  num_classes: int
  patch_size: int = 16
  hidden_size: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  num_layers: int = 12
  attention_type: str = "divided_space_time"
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  attention_impl: str = "auto"
  remat: bool = False
  remat_policy: str = "nothing_saveable"  # a jax.checkpoint_policies name
  dtype: str = "float32"
  head_init_std: float = 0.0
  # transformers/original TimeSformer use exact (erf) GELU, LayerNorm eps
  # 1e-6; tools/convert_checkpoint sets approximate_gelu=False for parity.
  approximate_gelu: bool = True
  layer_norm_eps: float = 1e-6

  def _tubelet(self):
    return (1, self.patch_size, self.patch_size)

  def check_input(self, input_shape):
    check_tubelet_input(input_shape, self._tubelet(), self.hidden_size,
                        self.num_heads)

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.attention_type not in ATTENTION_TYPES:
      raise ValueError(f"attention_type={self.attention_type!r}; expected one "
                       f"of {ATTENTION_TYPES}")
    dtype = compute_dtype(self.dtype)
    patches = TubeletEmbedding(self.hidden_size, self._tubelet(), dtype=dtype,
                               name="embedding")(x.astype(dtype))
    batch, frames, rows, cols, dim = patches.shape
    patches = patches.reshape(batch, frames, rows * cols, dim)
    init = nn.initializers.normal(0.02)
    pos = self.param("pos_embedding", init, (1, 1 + rows * cols, dim),
                     jnp.float32).astype(dtype)
    time = self.param("time_embedding", init, (1, frames, 1, dim),
                      jnp.float32).astype(dtype)
    cls = self.param("cls", nn.initializers.zeros, (1, 1, dim), jnp.float32)
    cls = jnp.broadcast_to(cls.astype(dtype) + pos[:, :1], (batch, 1, dim))
    patches = patches + pos[:, None, 1:] + time
    drop = nn.Dropout(self.dropout_rate)
    cls = drop(cls, deterministic=not train)
    patches = drop(patches, deterministic=not train)

    kwargs = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                  dropout_rate=self.dropout_rate,
                  attention_dropout_rate=self.attention_dropout_rate,
                  attention_impl=self.attention_impl,
                  deterministic=not train, dtype=dtype,
                  approximate_gelu=self.approximate_gelu,
                  layer_norm_eps=self.layer_norm_eps)
    denom = max(self.num_layers - 1, 1)
    rates = [self.stochastic_depth * i / denom for i in range(self.num_layers)]
    if self.attention_type == "joint_space_time":
      block_cls = (remat_block(EncoderBlock, self.remat_policy) if self.remat
                   else EncoderBlock)
      tokens = jnp.concatenate([cls, patches.reshape(batch, -1, dim)], axis=1)
      for i, rate in enumerate(rates):
        tokens = block_cls(drop_path_rate=rate, name=f"block_{i}",
                           **kwargs)(tokens)
      cls = tokens[:, :1]
    else:
      block_cls = (remat_block(DividedSpaceTimeBlock, self.remat_policy)
                   if self.remat else DividedSpaceTimeBlock)
      temporal = self.attention_type == "divided_space_time"
      for i, rate in enumerate(rates):
        cls, patches = block_cls(drop_path_rate=rate, temporal=temporal,
                                 name=f"block_{i}", **kwargs)(cls, patches)
    # Only the CLS output is classified; the final LayerNorm is per token.
    pooled = nn.LayerNorm(self.layer_norm_eps, dtype=dtype, name="norm")(
        cls[:, 0])
    return _head(self.num_classes, self.head_init_std)(
        pooled.astype(jnp.float32))
