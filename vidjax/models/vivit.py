"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021, arXiv:2103.15691).

Two of the paper's four variants, sharing `vidjax.layers`:

* `ViViTFactorizedEncoder` ("vivit_factorized", paper Sec. 3.3 "Model 2:
  Factorised encoder"): tubelet embedding -> for every time index a spatial
  transformer over that index's H'W' tokens (+ spatial CLS token, learned
  spatial position embedding) -> one vector per time index (the CLS output, or
  the spatial mean with classifier="gap") -> temporal transformer over the T'
  vectors (+ temporal CLS token, learned temporal position embedding) -> final
  LayerNorm (the temporal encoder's) -> linear head.
  With `temporal_layers=0` the T' vectors are averaged instead (the paper's
  Tab. 3 "0 temporal layers" baseline).
* `ViViTSpatioTemporal` ("vivit_spatiotemporal", Sec. 3.3 "Model 1:
  Spatio-temporal attention"): all T'H'W' tokens + one CLS token through one
  encoder of `num_layers` blocks.

Parameter counts at ViViT-B/16x2 (32x224x224 input, 400 classes): 115.1M and
88.9M, as in the paper (checked by tests/test_models_vivit.py).

Head initialisation: `head_init_std=0.0` (default) zero-initialises the head
kernel, as ViViT/scenic do, so initial logits are exactly 0 and the initial
loss is log(num_classes); a positive value draws the kernel from
N(0, head_init_std^2) instead (useful when a test needs non-zero logits).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.layers.embedding import AddPositionEmbedding, TubeletEmbedding
from vidjax.layers.transformer import BLOCK_VARIANTS, Encoder
from vidjax.errors import VidjaxError
from vidjax.registry import register_model

CLASSIFIERS = ("token", "gap")


def compute_dtype(name: str):
  """'float32' | 'bfloat16' | 'float16' -> jnp dtype."""
  try:
    return jnp.dtype(name)
  except TypeError as e:
    raise ValueError(f"unknown dtype {name!r}") from e


def _check_classifier(classifier: str):
  if classifier not in CLASSIFIERS:
    raise ValueError(f"classifier={classifier!r}; expected one of {CLASSIFIERS}")


def check_tubelet_input(input_shape, patch_size, hidden_size, num_heads):
  """One-line errors for clips the tubelet cannot tile (before any compile)."""
  frames, height, width = input_shape[:3]
  for size, patch, key, what in (
      (frames, patch_size[0], "dataset.num_frames", "time"),
      (height, patch_size[1], "dataset.crop_size", "height"),
      (width, patch_size[2], "dataset.crop_size", "width")):
    if size % patch:
      raise VidjaxError(
          f"config.{key}={size} is not divisible by the tubelet's {what} "
          f"{patch} (config.model.patch_size={tuple(patch_size)})")
  if hidden_size % num_heads:
    raise VidjaxError(f"config.model.hidden_size={hidden_size} is not "
                      f"divisible by config.model.num_heads={num_heads}")


class _TokenPooling(nn.Module):
  """Prepends a learned CLS token (classifier="token") and adds learned
  position embeddings + dropout, runs an `Encoder`, then returns the CLS output
  or the token mean ("gap"). Input/outputs: (B, N, D) -> (B, D)."""
  classifier: str
  encoder_kwargs: dict  # static config for `Encoder` (hashable values only)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, *, train: bool):
    if self.classifier == "token":
      cls = self.param("cls", nn.initializers.zeros, (1, 1, x.shape[-1]),
                       jnp.float32)
      cls = jnp.broadcast_to(cls.astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
      x = jnp.concatenate([cls, x], axis=1)
    x = AddPositionEmbedding(name="pos_embedding")(x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    x = Encoder(name="encoder", **self.encoder_kwargs)(x, train=train)
    return x[:, 0] if self.classifier == "token" else x.mean(axis=1)


def _encoder_kwargs(model: nn.Module, num_layers: int) -> dict:
  """The `Encoder` options shared by every ViViT variant's config."""
  return dict(
      num_layers=num_layers, num_heads=model.num_heads, mlp_dim=model.mlp_dim,
      dropout_rate=model.dropout_rate,
      attention_dropout_rate=model.attention_dropout_rate,
      stochastic_depth=model.stochastic_depth,
      attention_impl=model.attention_impl, scan_layers=model.scan_layers,
      remat=model.remat, remat_policy=model.remat_policy,
      dtype=compute_dtype(model.dtype),
      # norm / mlp / MoE block variants, where the model has those options.
      **{k: getattr(model, k) for k in BLOCK_VARIANTS if hasattr(model, k)})


def _head(num_classes: int, head_init_std: float):
  init = (nn.initializers.zeros if head_init_std <= 0.0
          else nn.initializers.normal(head_init_std))
  return nn.Dense(num_classes, kernel_init=init, dtype=jnp.float32,
                  name="head")


class ViViTOptions(nn.Module):
  """The options every ViViT variant shares (ViViT-B/16x2 defaults).

  Variants subclass it and add their own layer counts; `check_input` rejects
  clips the tubelet cannot tile before anything is compiled.
  """
  num_classes: int
  patch_size: Tuple[int, int, int] = (2, 16, 16)
  hidden_size: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  attention_impl: str = "auto"
  remat: bool = False
  remat_policy: str = "nothing_saveable"  # a jax.checkpoint_policies name
  dtype: str = "float32"
  head_init_std: float = 0.0

  def check_input(self, input_shape):
    check_tubelet_input(input_shape, self.patch_size, self.hidden_size,
                        self.num_heads)


@register_model("vivit_factorized")
class ViViTFactorizedEncoder(ViViTOptions):
  """ViViT model 2 (factorised encoder). x: (B, T, H, W, C) -> (B, classes)."""
  spatial_layers: int = 12
  temporal_layers: int = 4
  classifier: str = "token"
  scan_layers: bool = False
  norm: str = "layernorm"   # block variants: vidjax.layers.transformer
  mlp: str = "gelu"
  num_experts: int = 4
  moe_top_k: int = 1

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    _check_classifier(self.classifier)
    dtype = compute_dtype(self.dtype)
    tokens = TubeletEmbedding(self.hidden_size, self.patch_size, dtype=dtype,
                              name="embedding")(x.astype(dtype))
    batch, steps, height, width, dim = tokens.shape
    # Spatial transformer: every time index is an independent sequence.
    spatial = tokens.reshape(batch * steps, height * width, dim)
    per_step = _TokenPooling(
        self.classifier, _encoder_kwargs(self, self.spatial_layers),
        self.dropout_rate, name="spatial")(spatial, train=train)
    per_step = per_step.reshape(batch, steps, dim)
    # Temporal transformer over the T' per-step representations.
    if self.temporal_layers > 0:
      pooled = _TokenPooling(
          self.classifier, _encoder_kwargs(self, self.temporal_layers),
          self.dropout_rate, name="temporal")(per_step, train=train)
    else:
      pooled = nn.LayerNorm(dtype=dtype, name="temporal_norm")(
          per_step.mean(axis=1))
    return _head(self.num_classes, self.head_init_std)(
        pooled.astype(jnp.float32))


@register_model("vivit_spatiotemporal")
class ViViTSpatioTemporal(ViViTOptions):
  """ViViT model 1 (joint space-time attention). (B,T,H,W,C) -> (B, classes)."""
  num_layers: int = 12
  classifier: str = "token"
  scan_layers: bool = False
  norm: str = "layernorm"   # block variants: vidjax.layers.transformer
  mlp: str = "gelu"
  num_experts: int = 4
  moe_top_k: int = 1
  # transformers' ViViT (tools/convert_checkpoint): hidden_act "gelu_fast" is
  # the tanh GELU (default); "gelu" needs approximate_gelu=False.
  approximate_gelu: bool = True
  layer_norm_eps: float = 1e-6

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    _check_classifier(self.classifier)
    dtype = compute_dtype(self.dtype)
    tokens = TubeletEmbedding(self.hidden_size, self.patch_size, dtype=dtype,
                              name="embedding")(x.astype(dtype))
    tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
    encoder_kwargs = _encoder_kwargs(self, self.num_layers)
    encoder_kwargs.update(layer_norm_eps=self.layer_norm_eps, block_options=(
        ("approximate_gelu", self.approximate_gelu),
        ("layer_norm_eps", self.layer_norm_eps)))
    pooled = _TokenPooling(
        self.classifier, encoder_kwargs,
        self.dropout_rate, name="spatiotemporal")(tokens, train=train)
    return _head(self.num_classes, self.head_init_std)(
        pooled.astype(jnp.float32))
