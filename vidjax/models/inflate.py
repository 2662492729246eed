"""I3D filter inflation (Carreira & Zisserman, CVPR 2017, "Quo Vadis, Action
Recognition? A New Model and the Kinetics Dataset", Sec. 2.3 "Inflating 2D
ConvNets into 3D" / "Bootstrapping 3D filters from 2D filters").

A 2D kernel (kh, kw, cin, cout) -- or a 3D one with kt=1 -- becomes a 3D kernel
(Kt, kh, kw, cin, cout) by repeating it Kt times along time and dividing by Kt
("mean", the paper's rescaling), or by putting it at the central time tap and
zeros elsewhere ("center"). Every other array (BatchNorm scale/bias and
statistics, Dense head, biases, kernels whose shape already matches) is copied.

Why the "boring video" fixed point is exact here: on a static clip (one frame
repeated) a "mean"-inflated conv sums Kt copies of w/Kt times the same frame,
i.e. gives the 2D conv's output, provided every tap sees a real frame. Zero
temporal padding breaks this at the first and last (Kt-1)/2 frames, so the
exact property needs the 3D network built with `temporal_padding="edge"`
(replicate padding; `vidjax.models.resnet3d`). With edge padding every
activation stays static through any temporal stride, so the globally pooled
logits of the inflated R3D equal the per-frame 2D ResNet's (`ResNet3D` with
`temporal_kernel=1`, same parameter names) exactly (tests/test_inflate.py).
`inflate_variables` also carries the BatchNorm statistics; it turns the 2D
Inception-v1 ("inception2d") into I3D ("i3d"), kernels of Kt 7, 3 and 1 at
once (vidjax/models/inception.py, tests/test_models_i3d.py).
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError

METHODS = ("mean", "center")


def inflate_kernel(kernel, time_kernel: int, method: str = "mean"):
  """(kh,kw,ci,co) or (1,kh,kw,ci,co) -> (time_kernel,kh,kw,ci,co)."""
  kernel = jnp.asarray(kernel)
  if kernel.ndim == 5:
    if kernel.shape[0] != 1:
      raise ValueError(f"cannot inflate a kernel of shape {kernel.shape}: "
                       "time extent must be 1")
    kernel = kernel[0]
  if method == "mean":
    return jnp.repeat(kernel[None], time_kernel, axis=0) / time_kernel
  if method == "center":
    out = jnp.zeros((time_kernel,) + kernel.shape, kernel.dtype)
    return out.at[time_kernel // 2].set(kernel)
  raise ValueError(f"method={method!r}; expected one of {METHODS}")


def inflate_params(params_2d: Any, target: Any, time_kernel: int = 0,
                   method: str = "mean") -> Any:
  """The 3D network's parameters from its 2D parent's.

  Args:
    params_2d: the 2D (or kt=1) network's parameter tree.
    target: the 3D network's parameter tree, or its shapes (e.g. from
      `jax.eval_shape`); only shapes are read. The result has its structure.
    time_kernel: if > 0, every inflated kernel must have this time extent
      (a check); 0 takes each kernel's Kt from `target`.
    method: "mean" (I3D: repeat Kt times, divide by Kt) or "center".
  """
  flat_src = dict(_flatten(params_2d))
  flat_dst = _flatten(target)
  missing = [k for k, _ in flat_dst if k not in flat_src]
  if missing:
    raise VidjaxError("cannot inflate: the 2D parameters lack "
                      f"{', '.join('/'.join(k) for k in missing[:5])}")
  out = {}
  for key, leaf in flat_dst:
    src, shape = flat_src[key], tuple(leaf.shape)
    if tuple(src.shape) == shape:
      out[key] = jnp.asarray(src)
    elif len(shape) == 5 and tuple(np.shape(src))[-4:] == shape[1:] and (
        np.ndim(src) == 4 or np.shape(src)[0] == 1):
      if time_kernel and shape[0] != time_kernel:
        raise VidjaxError(f"cannot inflate {'/'.join(key)}: target time "
                          f"kernel {shape[0]} != time_kernel={time_kernel}")
      out[key] = inflate_kernel(src, shape[0], method)
    else:
      raise VidjaxError(f"cannot inflate {'/'.join(key)}: shape "
                        f"{tuple(np.shape(src))} -> {shape}")
  return _unflatten(out)


def inflate_variables(variables_2d: Any, target: Any, time_kernel: int = 0,
                      method: str = "mean") -> Any:
  """All variable collections of the 3D network from its 2D parent's.

  "params" go through `inflate_params`; every other collection of `target`
  (BatchNorm's "batch_stats": per-channel, so the same shapes in 2D and 3D)
  is copied, and must exist in `variables_2d` with the same shapes.
  `target`: the 3D network's variables or their shapes (`jax.eval_shape`).
  """
  out = {}
  for collection, tree in target.items():
    if collection not in variables_2d:
      raise VidjaxError(f"cannot inflate: the 2D variables lack the "
                        f"{collection!r} collection")
    if collection == "params":
      out[collection] = inflate_params(variables_2d[collection], tree,
                                       time_kernel, method)
      continue
    flat_src = dict(_flatten(variables_2d[collection]))
    copied = {}
    for key, leaf in _flatten(tree):
      src = flat_src.get(key)
      if src is None or tuple(np.shape(src)) != tuple(leaf.shape):
        found = "missing" if src is None else tuple(np.shape(src))
        raise VidjaxError(f"cannot inflate {collection}/{'/'.join(key)}: "
                          f"2D {found} vs 3D {tuple(leaf.shape)}")
      copied[key] = jnp.asarray(src)
    out[collection] = _unflatten(copied)
  return out


def _flatten(tree, prefix=()):
  if isinstance(tree, dict) or hasattr(tree, "items"):
    items = []
    for k, v in tree.items():
      items.extend(_flatten(v, prefix + (k,)))
    return items
  return [(prefix, tree)]


def _unflatten(flat):
  tree = {}
  for key, value in flat.items():
    node = tree
    for k in key[:-1]:
      node = node.setdefault(k, {})
    node[key[-1]] = value
  return tree
