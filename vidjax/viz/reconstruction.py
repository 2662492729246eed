"""VideoMAE reconstructions (Tong et al. 2022): input, masked input and
reconstruction of one clip, from a `videomae_pretrain` model.

A tube mask (`vidjax.layers.masking.tube_mask`, the model's `mask_ratio`)
hides the same spatial positions in every time slot; the model predicts the
hidden tubelets' pixels. With `norm_pix_loss` the predictions are per-tubelet
normalised pixels, so they are mapped back with each hidden tubelet's own
mean and (unbiased) std, as the MAE papers' figures do; without it they are
[0, 1] pixels. The reconstruction shows the visible tubelets as they are and
the predicted ones in the hidden places; the masked input shows hidden
tubelets grey.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vidjax.layers import masking

GREY = 0.5


@dataclasses.dataclass
class Reconstruction:
  video: np.ndarray    # (T, H, W, 3) input pixels in [0, 1]
  masked: np.ndarray   # hidden tubelets grey
  recon: np.ndarray    # visible tubelets + predictions, clipped to [0, 1]
  mask: np.ndarray     # (N,) bool, True = hidden


def unpatchify(patches, grid, patch_size):
  """Inverse of `masking.patchify`: (B, N, t*h*w, C) -> (B, T, H, W, C)."""
  b, _, _, c = patches.shape
  (steps, rows, cols), (t, h, w) = grid, patch_size
  x = patches.reshape(b, steps, rows, cols, t, h, w, c)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(b, steps * t, rows * h, cols * w, c)


def reconstruct(model, variables, clip, video01, seed: int = 0,
                eps: float = 1e-6) -> Reconstruction:
  """clip: normalised (T, H, W, 3) model input; video01: the same clip's
  pixels in [0, 1]."""
  patch = tuple(model.patch_size)
  grid = model.grid(np.shape(clip))
  mask = masking.tube_mask(jax.random.PRNGKey(seed), 1, grid,
                           model.mask_ratio)
  apply = jax.jit(lambda v, x, m: model.apply(v, x[None], train=False,
                                              mask=m))
  pred, targets = apply(variables, jnp.asarray(clip, jnp.float32), mask)
  video01 = jnp.asarray(video01, jnp.float32)[None]
  patches = masking.patchify(video01, patch)  # (1, N, thw, C)
  chosen = masking.gather_tokens(patches.reshape(1, patches.shape[1], -1),
                                 targets).reshape(
                                     (1, -1) + patches.shape[2:])
  pred = pred.reshape(chosen.shape)
  if model.norm_pix_loss:
    mean = chosen.mean(axis=-2, keepdims=True)
    std = jnp.sqrt(chosen.var(axis=-2, keepdims=True, ddof=1))
    pred = pred * (std + eps) + mean
  idx = targets[0]
  recon = patches.at[0, idx].set(pred[0])
  hidden = np.asarray(mask[0])
  masked = jnp.where(jnp.asarray(hidden)[None, :, None, None], GREY, patches)
  back = lambda p: np.asarray(unpatchify(p, grid, patch)[0])  # noqa: E731
  return Reconstruction(np.asarray(video01[0]), back(masked),
                        np.clip(back(recon), 0.0, 1.0), hidden)
