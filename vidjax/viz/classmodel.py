"""Class-model visualisation by activation maximisation, for video models.

Simonyan, Vedaldi & Zisserman (ICLR-W 2014, "Deep Inside Convolutional
Networks") find the input that maximises a class score by gradient ascent
with an L2 penalty. Feichtenhofer, Pinz, Wildes & Zisserman (CVPR 2018,
"What have we learned from deep representations for action recognition?")
do it for the two-stream network, optimising the appearance (RGB) and the
motion (optical flow) inputs together, with spatial and temporal
regularisers; the weight of the temporal one picks out "slow" motion (large
weight: the input may change little from frame to frame) or "fast" motion
(small weight).

Here x (T, H, W, C), in the model's normalised input space, maximises

  y_k(x) - l2 * mean(x^2) - tv * mean(|grad_xy x|^2)
         - temporal * mean((x_{t+1} - x_t)^2)

with Adam from small noise, projected after every step into the range of
real inputs ((0 - mean) / std .. (1 - mean) / std per channel). For the
two-stream model (input RGB + flow, 5 channels) this optimises both streams'
inputs at once (the spatial stream reads the centre frame's RGB, the
temporal stream the stacked flow); `temporal_channels` restricts the
temporal penalty to the flow channels, as in the paper.
"""
import dataclasses
from typing import Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vidjax.viz.saliency import class_score


@dataclasses.dataclass
class ClassModel:
  clip: np.ndarray      # (T, H, W, C) optimised input, normalised space
  scores: np.ndarray    # (steps + 1,) class score before each step and after
  temporal_change: float  # mean |x_{t+1} - x_t| of the result


def penalties(x, temporal_channels: Optional[Tuple[int, int]] = None):
  """(l2, total variation, temporal) terms of a (T, H, W, C) clip."""
  l2 = jnp.mean(jnp.square(x))
  tv = (jnp.mean(jnp.square(x[:, 1:] - x[:, :-1]))
        + jnp.mean(jnp.square(x[:, :, 1:] - x[:, :, :-1])))
  xt = x if temporal_channels is None else x[..., slice(*temporal_channels)]
  temporal = (jnp.mean(jnp.square(xt[1:] - xt[:-1])) if x.shape[0] > 1
              else jnp.zeros((), x.dtype))
  return l2, tv, temporal


def temporal_change(x) -> float:
  """Mean |x_{t+1} - x_t| over a (T, H, W, C) clip."""
  x = np.asarray(x, np.float32)
  return float(np.abs(x[1:] - x[:-1]).mean()) if len(x) > 1 else 0.0


def maximize_class(model, variables, input_shape: Sequence[int],
                   class_index: int, *, steps: int = 200,
                   learning_rate: float = 0.05, l2: float = 1e-2,
                   tv: float = 1e-1,
                   temporal: Union[float, Sequence[float]] = 0.0,
                   temporal_channels: Optional[Tuple[int, int]] = None,
                   bounds: Optional[Tuple[Sequence[float],
                                          Sequence[float]]] = None,
                   init_scale: float = 0.1, seed: int = 0) -> ClassModel:
  """Gradient ascent on class `class_index` from noise (module docstring).

  input_shape: (T, H, W, C). bounds: per-channel (low, high) of the
  normalised input, or None for no projection. temporal: one weight (returns
  a ClassModel) or several (a list, one per weight, from one compilation).
  """
  score_fn = class_score(model, variables, class_index)
  x0 = init_scale * jax.random.normal(jax.random.PRNGKey(seed),
                                      tuple(input_shape), jnp.float32)
  low, high = ((-jnp.inf, jnp.inf) if bounds is None else
               (jnp.asarray(bounds[0], jnp.float32),
                jnp.asarray(bounds[1], jnp.float32)))
  tx = optax.adam(learning_rate)

  def objective(x, weights):
    score = score_fn(x)
    terms = jnp.stack(penalties(x, temporal_channels))
    return score - jnp.dot(weights, terms), score

  def step(carry, _):
    x, opt_state, weights = carry
    (_, score), grad = jax.value_and_grad(objective, has_aux=True)(x, weights)
    updates, opt_state = tx.update(-grad, opt_state, x)  # ascent
    x = jnp.clip(optax.apply_updates(x, updates), low, high)
    return (x, opt_state, weights), score

  run = _ascent(step, score_fn, tx, steps)
  results = []
  for weight in np.atleast_1d(np.asarray(temporal, np.float32)):
    x, scores = run(jnp.clip(x0, low, high),
                    jnp.asarray([l2, tv, weight], jnp.float32))
    results.append(ClassModel(np.asarray(x), np.asarray(scores),
                              temporal_change(x)))
  return results if np.ndim(temporal) else results[0]


def _ascent(step, score_fn, tx, steps):
  """The jitted ascent; the penalty weights are traced arguments, so runs
  with several temporal weights share one compilation."""

  @jax.jit
  def run(x, weights):
    (x, _, _), scores = jax.lax.scan(step, (x, tx.init(x), weights), None,
                                     length=steps)
    return x, jnp.concatenate([scores, score_fn(x)[None]])

  return run


def input_bounds(mean: Sequence[float], std: Sequence[float]):
  """Per-channel range of normalised real inputs: ((0-m)/s, (1-m)/s)."""
  m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
  return (-m / s, (1.0 - m) / s)
