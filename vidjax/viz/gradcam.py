"""Grad-CAM for any vidjax CNN (Selvaraju et al., ICCV 2017, "Grad-CAM:
Visual Explanations from Deep Networks via Gradient-based Localization").

For a feature map A (T', h, w, C) and class score y_k, the channel weights
are the gradients averaged over the map, alpha_c = mean_{t,i,j} dy_k/dA_c,
and the map is ReLU(sum_c alpha_c A_c) (T', h, w), upsampled (linear, in time
and space) to the clip's (T, H, W). For video the average runs over time as
well as space (one weight per channel for the whole clip).

The feature map is the output of a named module, found without touching the
model files: `flax.linen.intercept_methods` sees every module's `__call__`
with its path (`stage3_block1`, `spatial`, `conv5b`, ...). A first pass
(`module_outputs`, shapes only) lists the calls in completion order; the
second adds a zero `eps` to the chosen call's output and differentiates the
score with respect to `eps`, which is dy_k/dA. `layer` is an fnmatch pattern
over the "/"-joined path: the last call matching it is used. Without one,
`DEFAULT_LAYERS[model name]` (patterns tried in order) is used, else the last
module whose output is a spatial map. A 5D output (B, T', h, w, C) is a
spatio-temporal map; a 4D one (N, h, w, C) holds N = B T' per-frame maps (a
2D backbone with time folded into the batch) or, when N = B, one map of the
whole clip (early fusion, the temporal stream), shown on every frame.
"""
import fnmatch
from typing import List, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError

# Model name -> fnmatch patterns of the module whose output is the last
# spatio-temporal feature map before global pooling (first pattern that
# matches any module wins; its last call is used).
DEFAULT_LAYERS = {
    "single_frame": ("stage*_block*",),
    "c3d": ("conv[0-9][ab]",),
    "r3d": ("stage*_block*",),
    "r2plus1d": ("stage*_block*",),
    "late_fusion": ("backbone",),
    "early_fusion": ("backbone",),
    "two_stream": ("spatial", "temporal"),
    "slow_fusion": ("bn[0-9]*", "conv[0-9]*"),
    "i3d": ("mixed_5c", "mixed_*"),
    "inception2d": ("mixed_5c", "mixed_*"),
    "i3d_r50": ("stage*_block*",),
    "tsm": ("stage*_block*",),
    "slowfast": ("slow_stage*_block*",),
    "lrcn": ("backbone",),
    "conv_gru": ("encoder",),
}


def _path(module) -> str:
  return "/".join(str(p) for p in module.path)


def _apply(model, variables, x, interceptor):
  with nn.intercept_methods(interceptor):
    return model.apply(variables, x, train=False)


def module_outputs(model, variables, clip) -> List[Tuple[str, tuple]]:
  """(path, output shape) of every module call on a (T, H, W, C) clip, in
  completion order (array outputs only; nothing is computed)."""
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and hasattr(out, "shape"):
      calls.append((_path(context.module), tuple(out.shape)))
    return out

  jax.eval_shape(lambda v, x: _apply(model, v, x[None], interceptor),
                 variables, jnp.asarray(clip, jnp.float32))
  return calls


def _is_map(shape, frames: int) -> bool:
  return (len(shape) == 5 and shape[0] == 1) or (
      len(shape) == 4 and shape[0] in (1, frames))


def pick_layer(model, calls, frames: int,
               layer: Optional[str] = None) -> Tuple[str, int, tuple]:
  """(path, call number, shape) of the feature map Grad-CAM uses."""
  name = _registered_name(model)
  patterns = (layer,) if layer else DEFAULT_LAYERS.get(name, ()) + ("*",)
  for pattern in patterns:
    hits = [(i, p, s) for i, (p, s) in enumerate(calls)
            if p and fnmatch.fnmatchcase(p, pattern) and _is_map(s, frames)]
    if hits:
      i, path, shape = hits[-1]
      number = sum(1 for p, _ in calls[:i] if p == path)
      return path, number, shape
  known = sorted({p for p, s in calls if p and _is_map(s, frames)})
  raise VidjaxError(
      f"--layer={layer or '(default)'} matches no module with a (T', h, w, C)"
      f" feature map output in model {name!r}; modules with one: "
      f"{', '.join(known[-12:]) or 'none'}")


def _registered_name(model) -> str:
  from vidjax import registry  # noqa: PLC0415
  registry._import_all_models()  # noqa: SLF001
  for key, cls in registry._MODELS.items():  # noqa: SLF001
    if cls is type(model):
      return key
  return type(model).__name__


def _as_clip_map(a, frames: int):
  """Module output -> (T', h, w, C) for a batch of one clip."""
  return a[0] if a.ndim == 5 else a


def gradcam(model, variables, clip, class_index: int,
            layer: Optional[str] = None):
  """Grad-CAM of `class_index` on a (T, H, W, C) clip (normalised input).

  Returns (cam (T, H, W) float32 >= 0 upsampled to the clip, raw cam (T', h,
  w), the module path used).
  """
  clip = jnp.asarray(clip, jnp.float32)
  frames = clip.shape[0]
  calls = module_outputs(model, variables, clip)
  path, number, shape = pick_layer(model, calls, frames, layer)

  def score(eps):
    seen, captured = [0], []

    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if (context.method_name == "__call__"
          and _path(context.module) == path and hasattr(out, "shape")):
        if seen[0] == number:
          out = out + eps.astype(out.dtype)
          captured.append(out)
        seen[0] += 1
      return out

    logits = _apply(model, variables, clip[None], interceptor)
    return logits[0, class_index].astype(jnp.float32), captured[0]

  eps = jnp.zeros(shape, jnp.float32)
  grads, acts = jax.jit(jax.grad(score, has_aux=True))(eps)
  acts = _as_clip_map(acts.astype(jnp.float32), frames)
  grads = _as_clip_map(grads, frames)
  weights = grads.mean(axis=(0, 1, 2))
  raw = jax.nn.relu(jnp.einsum("thwc,c->thw", acts, weights))
  height, width = clip.shape[1:3]
  cam = jax.image.resize(raw, (frames, height, width), "linear")
  return np.asarray(jnp.maximum(cam, 0.0)), np.asarray(raw), path
