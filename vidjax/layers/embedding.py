"""Token embeddings for video transformers.

* `TubeletEmbedding`: ViViT's "tubelet embedding" (Arnab et al. 2021, Sec. 3.2,
  Fig. 3): non-overlapping t x h x w spatio-temporal patches, each linearly
  projected to the model width -- a 3D convolution with kernel = stride =
  patch size and VALID padding. The 2D ViT patch embedding (Dosovitskiy et al.
  2021; ViViT's "uniform frame sampling") is the t = 1 case.
* `AddPositionEmbedding`: learned absolute position embedding (ViT), one
  vector per token position, initialised N(0, 0.02^2).
"""
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


class TubeletEmbedding(nn.Module):
  """(B, T, H, W, C) video -> (B, T/t, H/h, W/w, hidden_size) tokens.

  Trailing frames/pixels that do not fill a whole tubelet are dropped (VALID).

  Attributes:
    hidden_size: token width D.
    patch_size: (t, h, w) tubelet size; t = 1 gives per-frame 2D patches.
    dtype: compute dtype (parameters float32).
    kernel_init: initialiser of the (t, h, w, C, D) kernel.
  """
  hidden_size: int
  patch_size: Sequence[int] = (2, 16, 16)
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    if x.ndim != 5:
      raise ValueError(f"expected (B, T, H, W, C) video, got shape {x.shape}")
    t, h, w = self.patch_size
    batch, frames, height, width, channels = x.shape
    steps, rows, cols = frames // t, height // h, width // w
    if not (steps and rows and cols):
      raise ValueError(f"video {x.shape} smaller than one tubelet {(t, h, w)}")
    kernel = self.param("kernel", self.kernel_init,
                        (t, h, w, channels, self.hidden_size), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.hidden_size,),
                      jnp.float32)
    x = x[:, :steps * t, :rows * h, :cols * w]  # VALID: drop the remainder
    x = x.reshape(batch, steps, t, rows, h, cols, w, channels)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(
        batch, steps, rows, cols, t * h * w * channels)
    kernel = kernel.reshape(-1, self.hidden_size).astype(self.dtype)
    return x.astype(self.dtype) @ kernel + bias.astype(self.dtype)


class AddPositionEmbedding(nn.Module):
  """Adds a learned embedding of shape (1, *x.shape[1:]) to x (B, ..., D)."""
  stddev: float = 0.02

  @nn.compact
  def __call__(self, x):
    pos = self.param("pos_embedding", nn.initializers.normal(self.stddev),
                     (1,) + x.shape[1:], jnp.float32)
    return x + pos.astype(x.dtype)
