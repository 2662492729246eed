"""Saliency maps (Simonyan, Vedaldi & Zisserman, ICLR-W 2014, "Deep Inside
Convolutional Networks: Visualising Image Classification Models and
Saliency Maps"), per frame.

The map of class k on a clip x (T, H, W, C) is |d y_k / d x| maximised over
the channels: (T, H, W). A pixel the model never reads (a frame outside its
receptive field, e.g. every frame but the centre one for a spatial stream)
has exactly zero saliency.
"""
import jax
import jax.numpy as jnp
import numpy as np


def class_score(model, variables, class_index: int):
  """x (T, H, W, C) -> the class score (logit) y_k, eval mode."""

  def score(x):
    logits = model.apply(variables, x[None], train=False)
    return logits[0, class_index].astype(jnp.float32)

  return score


def predict(model, variables, clip) -> np.ndarray:
  """Logits (num_classes,) of one (T, H, W, C) clip."""
  apply = jax.jit(lambda v, x: model.apply(v, x[None], train=False)[0])
  return np.asarray(apply(variables, jnp.asarray(clip, jnp.float32)),
                    np.float32)


def saliency(model, variables, clip, class_index: int) -> np.ndarray:
  """(T, H, W) float32: max over channels of |d y_k / d x|."""
  grad = jax.jit(jax.grad(class_score(model, variables, class_index)))(
      jnp.asarray(clip, jnp.float32))
  return np.asarray(jnp.abs(grad).max(axis=-1))
