"""Tube masking and per-tubelet pixel targets for masked video modelling.

VideoMAE (Tong et al. 2022, "VideoMAE: Masked Autoencoders are Data-Efficient
Learners for Self-Supervised Video Pre-Training", Sec. 3.3 "tube masking"):
every time slot of a clip's token grid hides the *same* spatial positions, so
a masked patch cannot be recovered by copying it from a neighbouring frame.
The release (`TubeMaskingGenerator`) hides `int(ratio * H'W')` positions per
time slot, i.e. the count is rounded *down*; so does `tube_mask_count`.

Token order everywhere is the tubelet embedding's: index = t * H'W' + h * W' + w
(time-major), the order of `TubeletEmbedding(...).reshape(B, -1, D)` and of the
release's `flatten(2)`.

* `tube_mask`: (B, N) boolean masks (True = hidden), drawn on the device from
  a PRNG key (jit-friendly: no host work).
* `random_mask`: the paper's "random" ablation arm (Tab. 1c: per-token
  masking, no tubes), hiding the same number of tokens per clip as the tube
  mask (`T' x tube_mask_count`), so the encoder's visible count is the same;
  `draw_mask(mask_type, ...)` picks one by `config.model.mask_type`.
* `split_indices`: a mask -> (visible, masked) token indices, each in
  ascending order (the order in which the release gathers `x[~mask]` and
  `x[mask]`), with static lengths so the encoder can run on the visible tokens
  only.
* `patchify` / `tubelet_targets`: the per-tubelet reconstruction targets; with
  `normalize=True` each tubelet's pixels are normalised per channel by their
  own mean and unbiased standard deviation, (x - mean) / (std + 1e-6), the
  release's `normlize_target` / HF's `norm_pix_loss`. Vector layout
  (t, h, w, C) -- the same as the tubelet embedding's kernel and the release's
  decoder head.
"""
from typing import Sequence, Tuple

import jax
import jax.numpy as jnp


def tube_mask_count(mask_ratio: float, num_spatial: int) -> int:
  """Hidden positions per time slot, counted as the release does (rounded
  down)."""
  if not 0.0 <= mask_ratio < 1.0:
    raise ValueError(f"mask_ratio={mask_ratio} must be in [0, 1)")
  return int(mask_ratio * num_spatial)


def tube_mask(rng: jax.Array, batch: int, grid: Sequence[int],
              mask_ratio: float) -> jax.Array:
  """(batch, T'*H'*W') bool; True = hidden. One spatial mask per clip, tiled
  over the T' time slots; exactly `tube_mask_count` hidden per slot."""
  steps, rows, cols = grid
  spatial = rows * cols
  per_slot = _random_subset(rng, batch, spatial,
                            tube_mask_count(mask_ratio, spatial))
  return jnp.tile(per_slot, (1, steps))


def _random_subset(rng: jax.Array, batch: int, size: int,
                   hidden: int) -> jax.Array:
  """(batch, size) bool with exactly `hidden` True per row, uniformly."""
  noise = jax.random.uniform(rng, (batch, size))
  # rank of each position in a random permutation; the `hidden` lowest hide.
  rank = jnp.argsort(jnp.argsort(noise, axis=-1), axis=-1)
  return rank < hidden


def random_mask(rng: jax.Array, batch: int, grid: Sequence[int],
                mask_ratio: float) -> jax.Array:
  """(batch, T'*H'*W') bool; True = hidden. Positions drawn independently of
  the time slot (VideoMAE Tab. 1c "random"); the same hidden count per clip
  as `tube_mask`, but not per slot."""
  steps, rows, cols = grid
  return _random_subset(rng, batch, steps * rows * cols,
                        steps * tube_mask_count(mask_ratio, rows * cols))


MASKS = {"tube": tube_mask, "random": random_mask}


def draw_mask(mask_type: str, rng: jax.Array, batch: int,
              grid: Sequence[int], mask_ratio: float) -> jax.Array:
  """`MASKS[mask_type]`; a ValueError names the choices."""
  if mask_type not in MASKS:
    raise ValueError(f"mask_type={mask_type!r}: one of {', '.join(MASKS)}")
  return MASKS[mask_type](rng, batch, grid, mask_ratio)


def split_indices(mask: jax.Array, num_masked: int) -> Tuple[jax.Array,
                                                               jax.Array]:
  """(B, N) bool mask -> visible (B, N - num_masked), masked (B, num_masked)
  token indices, each ascending. Every row must hide exactly `num_masked`."""
  order = jnp.argsort(mask.astype(jnp.int32), axis=-1, stable=True)
  split = mask.shape[-1] - num_masked
  return order[:, :split], order[:, split:]


def gather_tokens(x: jax.Array, idx: jax.Array) -> jax.Array:
  """x (B, N, D), idx (B, K) -> (B, K, D)."""
  return jnp.take_along_axis(x, idx[..., None], axis=1)


def patchify(video: jax.Array, patch_size: Sequence[int]) -> jax.Array:
  """(B, T, H, W, C) -> (B, N, t*h*w, C): the pixels of each tubelet."""
  t, h, w = patch_size
  b, frames, height, width, c = video.shape
  steps, rows, cols = frames // t, height // h, width // w
  x = video[:, :steps * t, :rows * h, :cols * w]
  x = x.reshape(b, steps, t, rows, h, cols, w, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return x.reshape(b, steps * rows * cols, t * h * w, c)


def tubelet_targets(video: jax.Array, patch_size: Sequence[int],
                    normalize: bool = True, eps: float = 1e-6) -> jax.Array:
  """(B, T, H, W, C) pixels in [0, 1] -> (B, N, t*h*w*C) float32 targets."""
  x = patchify(video.astype(jnp.float32), patch_size)
  if normalize:
    mean = x.mean(axis=-2, keepdims=True)
    var = x.var(axis=-2, keepdims=True, ddof=1)  # unbiased, as the release
    x = (x - mean) / (jnp.sqrt(var) + eps)
  return x.reshape(x.shape[0], x.shape[1], -1)
