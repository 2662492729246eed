"""Token embeddings for video transformers.

* `TubeletEmbedding`: ViViT's "tubelet embedding" (Arnab et al. 2021, Sec. 3.2,
  Fig. 3): non-overlapping t x h x w spatio-temporal patches, each linearly
  projected to the model width -- a 3D convolution with kernel = stride =
  patch size and VALID padding. The 2D ViT patch embedding (Dosovitskiy et al.
  2021; ViViT's "uniform frame sampling") is the t = 1 case.
* `AddPositionEmbedding`: learned absolute position embedding (ViT), one
  vector per token position, initialised N(0, 0.02^2).
* `PatchEmbedding`: the ViT image patch embedding (Dosovitskiy et al. 2021,
  "An Image is Worth 16x16 Words", Eq. 1): (B, H, W, C) -> (B, H/h, W/w, D),
  a 2D convolution with kernel = stride = patch and VALID padding; its kernel
  has the usual (h, w, C, D) layout.
* `inflate_patch_kernel`: a 3D tubelet kernel (t, h, w, C, D) from a 2D patch
  kernel (ViViT, Arnab et al. 2021, Sec. 3.4 "Initialisation by leveraging
  pretrained models"): "central_frame" puts the 2D kernel in the central
  temporal slot t // 2 and zeros elsewhere; "average" ("filter inflation",
  Carreira & Zisserman 2017) repeats it over t and divides by t; "repeat"
  repeats it without dividing. On a static clip (one frame repeated t times)
  the first two give exactly the 2D embedding of that frame, "repeat" t times
  its kernel part (the bias is copied unchanged).
"""
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

TUBELET_INITS = ("central_frame", "average", "repeat")


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


class PatchEmbedding(nn.Module):
  """(B, H, W, C) image -> (B, H/h, W/w, hidden_size) patch tokens (ViT).

  Trailing pixels that do not fill a whole patch are dropped (VALID).
  Parameters: `kernel` (h, w, C, D), `bias` (D,).
  """
  hidden_size: int
  patch_size: Sequence[int] = (16, 16)
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4:
      raise ValueError(f"expected (B, H, W, C) images, got shape {x.shape}")
    h, w = self.patch_size
    batch, height, width, channels = x.shape
    rows, cols = height // h, width // w
    if not (rows and cols):
      raise ValueError(f"image {x.shape} smaller than one patch {(h, w)}")
    kernel = self.param("kernel", self.kernel_init,
                        (h, w, channels, self.hidden_size), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.hidden_size,),
                      jnp.float32)
    x = x[:, :rows * h, :cols * w].reshape(batch, rows, h, cols, w, channels)
    x = x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, rows, cols,
                                              h * w * channels)
    kernel = kernel.reshape(-1, self.hidden_size).astype(self.dtype)
    return x.astype(self.dtype) @ kernel + bias.astype(self.dtype)


def inflate_patch_kernel(kernel, frames: int, method: str = "central_frame"):
  """2D patch kernel (h, w, C, D) -> tubelet kernel (frames, h, w, C, D).

  `method`: "central_frame" | "average" | "repeat" (module docstring).
  Returns a numpy array of the kernel's dtype.
  """
  kernel = np.asarray(kernel)
  if kernel.ndim != 4:
    raise ValueError(f"expected a (h, w, C, D) patch kernel, got "
                     f"{kernel.shape}")
  if frames < 1:
    raise ValueError(f"tubelet length {frames} < 1")
  if method == "central_frame":
    out = np.zeros((frames,) + kernel.shape, kernel.dtype)
    out[frames // 2] = kernel
    return out
  if method in ("average", "repeat"):
    out = np.repeat(kernel[None], frames, axis=0)
    return (out / frames).astype(kernel.dtype) if method == "average" else out
  raise ValueError(f"tubelet init {method!r}; expected one of {TUBELET_INITS}")
