"""VideoMAE (Tong et al., NeurIPS 2022, "VideoMAE: Masked Autoencoders are
Data-Efficient Learners for Self-Supervised Video Pre-Training",
arXiv:2203.12602).

Two registered models sharing one encoder (parameter tree `encoder/...`, so a
pretraining run's encoder loads into a classifier by name):

* "videomae_pretrain" (`VideoMAEPretrain`): masked autoencoder. Tube masking
  (`vidjax.layers.masking`, ratio `mask_ratio`, 0.9 in the paper) hides the
  same spatial positions in every time slot; the encoder runs on the visible
  tokens only, so its cost falls with the ratio. Decoder (asymmetric, narrow):
  `encoder_to_decoder` Linear without bias -> visible tokens + a learned
  `mask_token` for every hidden one, concatenated in the order
  [visible..., masked...] (each ascending), plus a fixed sinusoidal table of
  the decoder width gathered in the same order -> `decoder_num_layers` blocks
  -> LayerNorm -> the hidden tokens only -> `decoder_head` Linear to
  t*h*w*3 pixels per tubelet, layout (t, h, w, C). Both Linear layers
  start as the release's `_init_weights` (xavier-uniform kernel, zero bias;
  flax's lecun-normal default made the first predictions ~N(0, 1) per pixel
  and stalled the small CPU config, issue #17). Returns
  `(predictions (B, K, t*h*w*3), target token indices (B, K))`: K is the
  number of hidden tokens, or every token when `mask_ratio=0` (an
  autoencoder with the same decoder, the no-masking baseline of the speed
  comparison). The loss is in `vidjax.pretrain_step`.
* "videomae" (`VideoMAEClassifier`): the finetuning / classification model:
  encoder on all tokens -> mean over tokens -> `fc_norm` LayerNorm -> `head`
  (`use_mean_pooling=True`, the release's default); with
  `use_mean_pooling=False`, the encoder's final LayerNorm and the first token
  (the release's `x[:, 0]`; VideoMAE has no CLS token). The head kernel is
  drawn from N(0, (0.02 * head_init_scale)^2), bias 0 (release: trunc-normal
  0.02 scaled by init_scale 0.001).

Encoder (`VideoMAEEncoder`): 2x16x16 tubelet embedding (a Conv3d with kernel =
stride; tokens in time-major order t, h, w) + a fixed (not learned) 1D
sinusoidal position table over all T'H'W' tokens (`posemb.sinusoidal_1d`,
interleaved sin/cos), no CLS token, then pre-norm ViT blocks whose attention
has query and value biases but no key bias, with an exact (erf) GELU MLP.

LayerNorm epsilons: the official release uses 1e-6 everywhere (the defaults
here). HF transformers' port uses `config.layer_norm_eps` (1e-12 in its
VideoMAEConfig) in the blocks and the encoder's final norm, and PyTorch's
default 1e-5 for `fc_norm` and the decoder's final norm: set
`layer_norm_eps=1e-12, head_norm_eps=1e-5` to match it numerically.

Sizes (encoder, K400 head, 16x224^2): ViT-S 384/12 layers/6 heads 22M,
57 GFLOPs; ViT-B 768/12/12 87M, 180 GFLOPs; ViT-L 1024/24/16 305M, 597
GFLOPs (paper; checked by tests/test_models_videomae.py).
"""
from typing import Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.layers import masking
from vidjax.layers.embedding import TubeletEmbedding
from vidjax.layers.posemb import sinusoidal_1d
from vidjax.layers.transformer import Encoder
from vidjax.errors import VidjaxError
from vidjax.models.vivit import check_tubelet_input, compute_dtype
from vidjax.registry import register_model


_BLOCK_FIELDS = ("dropout_rate", "attention_dropout_rate", "stochastic_depth",
                 "layer_norm_eps", "attention_impl", "scan_layers", "remat",
                 "remat_policy", "dtype")


def _blocks(options: dict, num_layers, num_heads, mlp_dim, final_norm,
            final_eps, name):
  """An `Encoder` of VideoMAE blocks (q/v biases, exact GELU)."""
  o = options
  return Encoder(
      num_layers=num_layers, num_heads=num_heads, mlp_dim=mlp_dim,
      dropout_rate=o["dropout_rate"],
      attention_dropout_rate=o["attention_dropout_rate"],
      stochastic_depth=o["stochastic_depth"],
      attention_impl=o["attention_impl"], scan_layers=o["scan_layers"],
      remat=o["remat"], remat_policy=o["remat_policy"],
      dtype=compute_dtype(o["dtype"]),
      block_options=(("key_bias", False), ("approximate_gelu", False),
                     ("layer_norm_eps", o["layer_norm_eps"])),
      final_norm=final_norm, layer_norm_eps=final_eps, name=name)


class VideoMAEEncoder(nn.Module):
  """(B, T, H, W, C) video -> (B, N or K, D) tokens, on the `visible` token
  indices (B, K) only when given."""
  patch_size: Tuple[int, int, int]
  hidden_size: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  final_norm: bool
  options: Tuple[Tuple[str, object], ...]  # the _BLOCK_FIELDS values

  @nn.compact
  def __call__(self, x, *, train: bool, visible: Optional[jax.Array] = None):
    options = dict(self.options)
    dtype = compute_dtype(options["dtype"])
    tokens = TubeletEmbedding(self.hidden_size, self.patch_size, dtype=dtype,
                              name="embedding")(x.astype(dtype))
    tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
    table = sinusoidal_1d(tokens.shape[1], tokens.shape[-1])
    tokens = tokens + jnp.asarray(table, dtype)[None]
    if visible is not None:
      tokens = masking.gather_tokens(tokens, visible)
    tokens = nn.Dropout(options["dropout_rate"])(tokens,
                                                 deterministic=not train)
    return _blocks(options, self.num_layers, self.num_heads, self.mlp_dim,
                   self.final_norm, options["layer_norm_eps"],
                   "transformer")(tokens, train=train)


class VideoMAEOptions(nn.Module):
  """Encoder options shared by both models (ViT-B defaults)."""
  num_classes: int
  patch_size: Tuple[int, int, int] = (2, 16, 16)
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  layer_norm_eps: float = 1e-6
  head_norm_eps: float = 1e-6
  attention_impl: str = "auto"
  scan_layers: bool = False
  remat: bool = False
  remat_policy: str = "nothing_saveable"  # a jax.checkpoint_policies name
  dtype: str = "float32"

  def check_input(self, input_shape):
    check_tubelet_input(input_shape, self.patch_size, self.hidden_size,
                        self.num_heads)

  def block_options(self) -> dict:
    return {k: getattr(self, k) for k in _BLOCK_FIELDS}

  def make_encoder(self, final_norm: bool) -> VideoMAEEncoder:
    return VideoMAEEncoder(
        tuple(self.patch_size), self.hidden_size, self.num_layers,
        self.num_heads, self.mlp_dim, final_norm,
        tuple(self.block_options().items()), name="encoder")


@register_model("videomae")
class VideoMAEClassifier(VideoMAEOptions):
  """VideoMAE finetuning model. (B, T, H, W, C) -> (B, num_classes) logits."""
  use_mean_pooling: bool = True
  head_init_scale: float = 0.001

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    tokens = self.make_encoder(not self.use_mean_pooling)(x, train=train)
    if self.use_mean_pooling:
      pooled = nn.LayerNorm(self.head_norm_eps, dtype=tokens.dtype,
                            name="fc_norm")(tokens.mean(axis=1))
    else:
      pooled = tokens[:, 0]
    return nn.Dense(
        self.num_classes, dtype=jnp.float32, name="head",
        kernel_init=nn.initializers.truncated_normal(
            0.02 * self.head_init_scale))(pooled.astype(jnp.float32))


@register_model("videomae_pretrain")
class VideoMAEPretrain(VideoMAEOptions):
  """VideoMAE masked-autoencoder pretraining model (module docstring).

  `__call__(x, train=False, mask=None)`: `mask` (B, N) bool, True = hidden,
  must hide exactly `num_masked(grid)` tokens per clip (tube masks from
  `masking.tube_mask` do); without it a `mask_type` mask is drawn from the "masking"
  rng stream (a fixed key when the stream is absent, e.g. in eval/costs).
  `norm_pix_loss` is read by the loss (`vidjax.pretrain_step`), not here.
  """
  decoder_hidden_size: int = 384
  decoder_num_layers: int = 4
  decoder_num_heads: int = 6
  decoder_mlp_dim: int = 1536
  mask_ratio: float = 0.9
  mask_type: str = "tube"   # | "random" (Tab. 1c; vidjax.layers.masking)
  norm_pix_loss: bool = True

  def check_input(self, input_shape):
    super().check_input(input_shape)
    if not 0.0 <= self.mask_ratio < 1.0:
      raise VidjaxError(f"config.model.mask_ratio={self.mask_ratio} must be "
                        "in [0, 1)")
    if self.mask_type not in masking.MASKS:
      raise VidjaxError(f"config.model.mask_type={self.mask_type!r}: one of "
                        f"{', '.join(masking.MASKS)}")
    if self.decoder_hidden_size % self.decoder_num_heads:
      raise VidjaxError(
          f"config.model.decoder_hidden_size={self.decoder_hidden_size} is "
          f"not divisible by config.model.decoder_num_heads="
          f"{self.decoder_num_heads}")

  def grid(self, input_shape) -> Tuple[int, int, int]:
    """(T', H', W') token grid of a (T, H, W, C) clip."""
    return tuple(s // p for s, p in zip(input_shape[:3], self.patch_size))

  def num_masked(self, grid) -> int:
    return grid[0] * masking.tube_mask_count(self.mask_ratio,
                                             grid[1] * grid[2])

  @nn.compact
  def __call__(self, x, *, train: bool = False,
               mask: Optional[jax.Array] = None):
    batch = x.shape[0]
    grid = self.grid(x.shape[1:])
    num_tokens = int(np.prod(grid))
    num_masked = self.num_masked(grid)
    if mask is None:
      rng = (self.make_rng("masking") if self.has_rng("masking")
             else jax.random.PRNGKey(0))
      mask = masking.draw_mask(self.mask_type, rng, batch, grid,
                               self.mask_ratio)
    elif not isinstance(mask, jax.core.Tracer):
      counts = np.asarray(mask).sum(axis=-1)
      if np.any(counts != num_masked):
        raise ValueError(f"mask hides {sorted(set(counts.tolist()))} tokens "
                         f"per clip; this model expects {num_masked}")
    visible, hidden = masking.split_indices(mask, num_masked)

    encoded = self.make_encoder(True)(x, train=train, visible=visible)
    width = self.decoder_hidden_size
    y = nn.Dense(width, use_bias=False, dtype=encoded.dtype,
                 kernel_init=nn.initializers.xavier_uniform(),
                 name="encoder_to_decoder")(encoded)
    table = jnp.asarray(sinusoidal_1d(num_tokens, width), y.dtype)
    pos = jnp.broadcast_to(table[None], (batch, num_tokens, width))
    y = y + masking.gather_tokens(pos, visible)
    if num_masked:
      token = self.param("mask_token", nn.initializers.truncated_normal(0.02),
                         (1, 1, width), jnp.float32).astype(y.dtype)
      y = jnp.concatenate(
          [y, token + masking.gather_tokens(pos, hidden)], axis=1)
      targets = hidden
    else:  # no masking: reconstruct every token (speed baseline)
      self.param("mask_token", nn.initializers.truncated_normal(0.02),
                 (1, 1, width), jnp.float32)  # same tree at every ratio
      targets = visible
    y = _blocks(self.block_options(), self.decoder_num_layers,
                self.decoder_num_heads, self.decoder_mlp_dim, True,
                self.head_norm_eps, "decoder")(y, train=train)
    y = y[:, y.shape[1] - targets.shape[1]:]
    t, h, w = self.patch_size
    pred = nn.Dense(t * h * w * x.shape[-1], dtype=y.dtype,
                    kernel_init=nn.initializers.xavier_uniform(),
                    name="decoder_head")(y)
    return pred.astype(jnp.float32), targets
