"""Position embeddings: fixed sinusoidal tables and resizing of learned ones.

* `sinusoidal_1d`: the table of Vaswani et al. 2017 ("Attention Is All You
  Need", Sec. 3.5) in the *interleaved* layout used by VideoMAE (Tong et al.
  2022) and HF transformers' `get_sinusoid_encoding_table`:
  angle(pos, j) = pos / 10000^(2 * (j // 2) / dim); even channels j hold
  sin(angle), odd channels cos(angle).
* `sinusoidal_3d`: a separable (t, h, w) table for a T x H x W token grid:
  the channels are split into three contiguous groups [time | rows | cols] of
  sizes (dim - 2 * (2 * (dim // 6)), 2 * (dim // 6), 2 * (dim // 6)) -- i.e.
  rows and cols get the same even share, time gets the rest (at least a third)
  -- and each group is `sinusoidal_1d` of that axis' index. Tokens are ordered
  time-major (t, then h, then w), as `TubeletEmbedding(...).reshape(B, -1, D)`
  flattens them.
* `resize_posemb`: resizes a *learned* embedding (1, cls + T*H*W, D) to a new
  token grid, for fine-tuning at another resolution / clip length or for
  initialising a video model from an image model (T = 1). The spatial grid is
  interpolated per frame ("bilinear" or "bicubic", separable, corners aligned:
  the first and last rows/cols keep their position, as scipy.ndimage.zoom --
  used by the original ViT code -- does; no anti-aliasing), then the time axis
  is interpolated linearly ("linear") or the sequence is repeated ("tile";
  a single image frame is tiled over every time slot either way). A leading
  CLS embedding is kept, dropped, or zero-filled as the target needs.
Interpolation is done in float64 numpy on the host (it runs once, at init).
"""
from typing import Sequence

import numpy as np

from vidjax.errors import VidjaxError

SPATIAL_METHODS = ("bilinear", "bicubic")
TEMPORAL_METHODS = ("linear", "tile")


def sinusoidal_1d(num_positions: int, dim: int) -> np.ndarray:
  """float32 [num_positions, dim] interleaved sin/cos table (VideoMAE layout)."""
  pos = np.arange(num_positions, dtype=np.float64)[:, None]
  j = np.arange(dim)
  angle = pos / np.power(10000.0, 2 * (j // 2) / dim)[None, :]
  table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
  return table.astype(np.float32)


def sinusoidal_3d_split(dim: int):
  """Channel counts (time, rows, cols) of `sinusoidal_3d`; they sum to dim."""
  spatial = 2 * (dim // 6)
  return dim - 2 * spatial, spatial, spatial


def sinusoidal_3d(grid: Sequence[int], dim: int) -> np.ndarray:
  """float32 [T*H*W, dim]: [sin_1d(t) | sin_1d(h) | sin_1d(w)] per token."""
  steps, rows, cols = grid
  d_t, d_h, d_w = sinusoidal_3d_split(dim)
  t, h, w = np.meshgrid(np.arange(steps), np.arange(rows), np.arange(cols),
                        indexing="ij")
  parts = [sinusoidal_1d(n, d)[idx.reshape(-1)]
           for n, d, idx in ((steps, d_t, t), (rows, d_h, h), (cols, d_w, w))]
  return np.concatenate(parts, axis=1).astype(np.float32)


def _cubic(x, a=-0.5):
  """Keys (1981) cubic convolution kernel."""
  x = np.abs(x)
  return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                  np.where(x < 2, a * (((x - 5) * x + 8) * x - 4), 0.0))


def interpolation_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
  """(n_out, n_in) weights: out = M @ in, corners aligned.

  Output i samples the input at s = i * (n_in - 1) / (n_out - 1). "bilinear"
  (= "linear") uses the two neighbours, so it reproduces any linear function
  exactly; "bicubic" uses Keys' kernel on four neighbours, edges replicated.
  Same size gives the identity for both.
  """
  if n_in < 1 or n_out < 1:
    raise ValueError(f"cannot resize {n_in} -> {n_out} positions")
  if n_out == 1:
    pos = np.array([(n_in - 1) / 2.0])
  else:
    pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
  matrix = np.zeros((n_out, n_in))
  rows = np.arange(n_out)
  base = np.floor(pos).astype(int)
  if method in ("bilinear", "linear"):
    taps = (0, 1)
    weight = lambda k: np.maximum(0.0, 1.0 - np.abs(pos - (base + k)))
  elif method == "bicubic":
    taps = (-1, 0, 1, 2)
    weight = lambda k: _cubic(pos - (base + k))
  else:
    raise ValueError(f"interpolation {method!r}; expected one of "
                     f"{SPATIAL_METHODS + ('linear',)}")
  for k in taps:
    np.add.at(matrix, (rows, np.clip(base + k, 0, n_in - 1)), weight(k))
  return matrix


def resize_grid(grid: np.ndarray, shape: Sequence[int], method: str,
                temporal: str = "linear") -> np.ndarray:
  """(T, H, W, D) -> (T', H', W', D): spatial `method`, then time."""
  steps, rows, cols, _ = grid.shape
  new_t, new_h, new_w = shape
  grid = np.asarray(grid, np.float64)
  grid = np.einsum("ih,thwd->tiwd",
                   interpolation_matrix(rows, new_h, method), grid)
  grid = np.einsum("jw,tiwd->tijd",
                   interpolation_matrix(cols, new_w, method), grid)
  if temporal == "linear" or steps == 1:
    return np.einsum("st,tijd->sijd",
                     interpolation_matrix(steps, new_t, "linear"), grid)
  if temporal != "tile":
    raise ValueError(f"temporal resize {temporal!r}; expected one of "
                     f"{TEMPORAL_METHODS}")
  if new_t % steps:
    raise ValueError(f"cannot tile {steps} time steps to {new_t}")
  return np.tile(grid, (new_t // steps, 1, 1, 1))


def resize_posemb(posemb, src_grid: Sequence[int], dst_grid: Sequence[int], *,
                  src_cls: int, dst_cls: int, method: str = "bilinear",
                  temporal: str = "linear", name: str = "pos_embedding"):
  """Resizes a learned (1, src_cls + T*H*W, D) embedding to dst_grid.

  `src_grid` / `dst_grid`: (T, H, W) token grids (T = 1 for images);
  src_cls / dst_cls: 0 or 1 leading CLS embeddings. A CLS embedding is copied
  when both have one, dropped when only the source has one and zero when only
  the target has one. Returns float32 (1, dst_cls + T'*H'*W', D).
  """
  posemb = np.asarray(posemb)
  src_grid, dst_grid = tuple(int(g) for g in src_grid), tuple(
      int(g) for g in dst_grid)
  if len(src_grid) == 2:
    src_grid = (1,) + src_grid
  if len(dst_grid) == 2:
    dst_grid = (1,) + dst_grid
  want = src_cls + int(np.prod(src_grid))
  if posemb.ndim != 3 or posemb.shape[:2] != (1, want):
    raise VidjaxError(
        f"{name}: shape {list(posemb.shape)} does not fit a {src_cls}-CLS "
        f"token grid {list(src_grid)} (expected [1, {want}, D])")
  dim = posemb.shape[-1]
  grid = posemb[0, src_cls:].reshape(src_grid + (dim,))
  grid = resize_grid(grid, dst_grid, method, temporal).reshape(-1, dim)
  if dst_cls:
    cls = posemb[0, :1] if src_cls else np.zeros((1, dim))
    grid = np.concatenate([cls, grid], axis=0)
  return grid[None].astype(np.float32)


def square_grid(num_tokens: int, name: str = "pos_embedding") -> int:
  """Side of a square grid of `num_tokens` tokens (one-line error if none)."""
  side = int(round(np.sqrt(num_tokens)))
  if side * side != num_tokens:
    raise VidjaxError(f"{name}: {num_tokens} tokens are not a square grid; "
                      "cannot infer its rows and columns")
  return side
