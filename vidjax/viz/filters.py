"""First-layer filters as short clips.

A 3D conv filter (kt, kh, kw, C_in) is a tiny video: its kt temporal slices
are the clip's frames (Tran et al. 2015 and Feichtenhofer et al. 2016 show
C3D's/two-stream's first-layer filters this way). `filter_clip` lays the
filters out as a grid of tiles (row-major, ceil(sqrt(n)) columns), one grid
per temporal slice; each filter is scaled to [0, 1] by its own min and max
over all its slices, so a slice's brightness is comparable across time.
RGB filters are shown in colour; other input widths (flow) as the grey mean
over the input channels. A 2D filter (kh, kw, C_in, C_out) is one frame.

The first layer is found by running the model (`first_conv`): the first
module (in call-completion order) that owns a 4D or 5D `kernel`, so it does
not depend on the parameter tree's key order.
"""
import math
from typing import Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError

GAP = 1  # pixels between tiles and around the grid


def first_conv(model, variables, clip) -> str:
  """Path ("a/b") of the first called module with a 4D/5D kernel."""
  found = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and not found:
      own = context.module.variables.get("params", {})
      kernel = own.get("kernel") if hasattr(own, "get") else None
      if kernel is not None and kernel.ndim in (4, 5):
        found.append("/".join(str(p) for p in context.module.path))
    return out

  def apply(v, x):
    with nn.intercept_methods(interceptor):
      return model.apply(v, x[None], train=False)

  jax.eval_shape(apply, variables, jnp.asarray(clip, jnp.float32))
  if not found:
    raise VidjaxError("the model has no conv/embedding layer with a 4D or 5D "
                      "kernel to show")
  return found[0]


def get_kernel(params, path: str) -> np.ndarray:
  """params' `path/kernel` as (kt, kh, kw, C_in, C_out)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  key = f"{path}/kernel" if path else "kernel"
  if key not in flat:
    raise VidjaxError(f"--layer={path}: the model has no parameter {key}")
  kernel = np.asarray(flat[key], np.float32)
  if kernel.ndim == 4:
    kernel = kernel[None]
  if kernel.ndim != 5:
    raise VidjaxError(f"{key} has shape {kernel.shape}; a conv filter bank "
                      "needs 4 or 5 dimensions")
  return kernel


def grid_shape(num_filters: int) -> Tuple[int, int]:
  cols = int(math.ceil(math.sqrt(num_filters)))
  return int(math.ceil(num_filters / cols)), cols


def filter_clip(kernel: np.ndarray, scale: int = 4,
                max_filters: Optional[int] = 64) -> np.ndarray:
  """(kt, kh, kw, C_in, C_out) -> uint8 (kt, rows*(kh*s+GAP)+GAP,
  cols*(kw*s+GAP)+GAP, 3)."""
  kt, kh, kw, cin, cout = kernel.shape
  n = cout if not max_filters else min(cout, max_filters)
  w = np.moveaxis(kernel[..., :n], -1, 0)  # (n, kt, kh, kw, cin)
  w = w[..., :3] if cin >= 3 else np.repeat(w.mean(-1, keepdims=True), 3, -1)
  lo = w.min(axis=(1, 2, 3, 4), keepdims=True)
  hi = w.max(axis=(1, 2, 3, 4), keepdims=True)
  w = (w - lo) / np.maximum(hi - lo, 1e-12)
  w = np.repeat(np.repeat(w, scale, 2), scale, 3)  # (n, kt, kh*s, kw*s, 3)
  rows, cols = grid_shape(n)
  th, tw = kh * scale, kw * scale
  out = np.full((kt, rows * (th + GAP) + GAP, cols * (tw + GAP) + GAP, 3),
                0.5, np.float32)
  for i in range(n):
    r, c = divmod(i, cols)
    y, x = GAP + r * (th + GAP), GAP + c * (tw + GAP)
    out[:, y:y + th, x:x + tw] = w[i]
  return np.round(out * 255).astype(np.uint8)
