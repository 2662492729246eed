"""Attention rollout (Abnar & Zuidema, ACL 2020, "Quantifying Attention Flow
in Transformers"), per frame.

Each layer's attention A (N x N, rows sum to 1) is averaged over heads; the
residual connection is accounted for by adding the identity and
renormalising the rows, A' = (A + I) / 2; the rollout is the product
R = A'_L ... A'_1 (rows still sum to 1): R[i, j] is how much of input token j
flows into output token i. The relevance of the input tokens is R's row of
the token the classifier reads (the CLS token), or the mean of the rows when
it averages the tokens (classifier "gap", VideoMAE's mean pooling).

The weights come from `vidjax.layers.attention`: applying a model with the
collection `ATTENTION_WEIGHTS` mutable makes every attention layer sow its
softmax (..., heads, N, N); without it nothing extra is computed.

Models (`ENCODERS`): ViViT model 1 (`vivit_spatiotemporal`, T'H'W' tokens +
CLS), per-frame ViT (`vit`, H'W' tokens per frame), the VideoMAE classifier
(`videomae`, T'H'W' tokens, no CLS) and ViViT model 2 (`vivit_factorized`:
the spatial rollout of each time index times the temporal rollout's weight
of that index).
"""
import re
from typing import Dict, List

import flax
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError
from vidjax.layers.attention import ATTENTION_WEIGHTS

# Model name -> the encoders' path prefixes (outer to inner for factorised).
ENCODERS = {
    "vivit_spatiotemporal": ("spatiotemporal/encoder",),
    "vit": ("transformer/encoder",),
    "videomae": ("encoder/transformer",),
    "vivit_factorized": ("spatial/encoder", "temporal/encoder"),
}


def rollout(attentions, add_identity: bool = True) -> np.ndarray:
  """Rollout of a list of per-layer weights (..., heads, N, N), first layer
  first -> (..., N, N)."""
  result = None
  for weights in attentions:
    a = np.asarray(weights, np.float64).mean(axis=-3)
    if add_identity:
      a = a + np.eye(a.shape[-1])
      a = a / a.sum(axis=-1, keepdims=True)
    result = a if result is None else a @ result
  if result is None:
    raise ValueError("rollout needs at least one attention layer")
  return result


def attention_weights(model, variables, clip) -> Dict[str, List[np.ndarray]]:
  """{'encoder path': [layer 0 weights, layer 1, ...]} of one clip."""
  apply = jax.jit(lambda v, x: model.apply(
      v, x[None], train=False, mutable=[ATTENTION_WEIGHTS])[1])
  state = apply(variables, jnp.asarray(clip, jnp.float32))
  flat = flax.traverse_util.flatten_dict(
      flax.core.unfreeze(state.get(ATTENTION_WEIGHTS, {})), sep="/")
  layers = {}
  for key, value in flat.items():
    match = re.match(r"(.*)/block_(\d+)/", key)
    if not match:
      continue
    prefix, index = match.group(1), int(match.group(2))
    layers.setdefault(prefix, []).append((index, np.asarray(value[0])))
  return {k: [w for _, w in sorted(v)] for k, v in layers.items()}


def _relevance(weights, num_tokens: int, mean_rows: bool) -> np.ndarray:
  """Relevance of the grid tokens of S sequences of num_tokens / S grid
  tokens (+ a CLS token) each: (S, num_tokens / S)."""
  r = rollout(weights)  # (S, N, N)
  grid_tokens = num_tokens // r.shape[0]
  extra = r.shape[-1] - grid_tokens
  if extra not in (0, 1):
    raise VidjaxError(f"attention over {r.shape[-1]} tokens does not fit a "
                      f"grid of {grid_tokens} (+ CLS) tokens")
  rows = r[:, extra:].mean(axis=1) if mean_rows else r[:, 0]
  return rows[:, extra:]


def _patch(model, name):
  if name == "vit":
    p = model.patch_size
    return (1,) + ((p, p) if isinstance(p, int) else tuple(p))
  return tuple(model.patch_size)


def _registered_name(model) -> str:
  from vidjax.viz.gradcam import _registered_name as name  # noqa: PLC0415
  return name(model)


def attention_map(model, variables, clip) -> np.ndarray:
  """Rollout relevance of a (T, H, W, C) clip as a (T', H', W') token grid
  (T' = T / tubelet time; per-frame ViT: T' = T)."""
  name = _registered_name(model)
  if name not in ENCODERS:
    raise VidjaxError(
        f"attention rollout supports {', '.join(sorted(ENCODERS))}; "
        f"config.model.name={name!r} is not one of them")
  pt, ph, pw = _patch(model, name)
  frames, height, width = np.shape(clip)[:3]
  grid = (frames // pt, height // ph, width // pw)
  layers = attention_weights(model, variables, clip)
  first = ENCODERS[name][0]
  if first not in layers:
    raise VidjaxError(f"model {name!r} sowed no attention weights under "
                      f"{first!r}; found {sorted(layers) or 'none'}")
  mean_rows = (getattr(model, "classifier", "token") == "gap"
               or getattr(model, "use_mean_pooling", False))
  out = _relevance(layers[first], int(np.prod(grid)), mean_rows).reshape(grid)
  if name == "vivit_factorized" and ENCODERS[name][1] in layers:
    temporal = _relevance(layers[ENCODERS[name][1]], grid[0], mean_rows)
    out = out * temporal.reshape(grid[0], 1, 1)
  return out.astype(np.float32)


def upsample(token_map: np.ndarray, shape) -> np.ndarray:
  """(T', H', W') -> (T, H, W) by repeating each token over its tubelet."""
  frames, height, width = shape
  t, h, w = token_map.shape
  out = np.repeat(np.repeat(np.repeat(token_map, frames // t, 0),
                            height // h, 1), width // w, 2)
  pad = [(0, s - o) for s, o in zip(shape, out.shape)]
  return np.pad(out, pad, mode="edge")
