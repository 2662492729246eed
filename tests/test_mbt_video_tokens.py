"""What MBT's video tokens see on synthetic_av `which` (issue #22; Nagrani
et al., NeurIPS 2021, MBT: ViViT tubelets, a linear embedding of each
t x h x w x 3 pixel block). The objects are ~6 px on a 32^2 frame, so one
2x16x16 tubelet (MBT-B's shape; configs/mbt.py now uses 4x8x8) holds one
object on ~10% of its pixels over a random dark background.

The frames go through the task's own path (`steps.normalize` with the
task's mean / std, then `TubeletEmbedding` with an identity kernel, so each
token is its raw normalised pixels in the model's order). Pinned:
* the token holding an object's centre tells its colour class linearly
  (a linear ridge readout, test clips unseen): the default tubelets do not
  wash the object out, and the smaller (8, 4, 4) ones keep it too;
* but only through position-specific weights: the token's channel means
  (what a position-blind readout gets) are near chance on 16x16 tubelets,
  the background's colour swamps the object's. A ViT stream must learn
  where in its patch to look before it can read a look.
"""
import functools

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from configs import mbt
from vidjax import steps
from vidjax.data import av_render
from vidjax.layers.embedding import TubeletEmbedding


def _clips(split, n):
  plans = [av_render.plan(0, split, i, kind="which") for i in range(n)]
  video = np.stack([av_render.render_video(p, 0, split, i)
                    for i, p in enumerate(plans)])
  return video, plans


def _tokens(video, plans, patch):
  """(tokens of each object's centre at time step 0 [2n, t h w 3], the
  objects' colour classes [2n])."""
  t, h, w = patch
  width = t * h * w * 3
  emb = TubeletEmbedding(width, patch)
  kernel = jnp.eye(width).reshape(t, h, w, 3, width)
  x = steps.normalize(jnp.asarray(video[:, :t]), (0.5,) * 3, (0.25,) * 3)
  grid = np.asarray(emb.apply({"params": {"kernel": kernel,
                                          "bias": jnp.zeros(width)}}, x))
  rows, colours = [], []
  for g, p in zip(grid, plans):
    for o in p["objects"]:
      r, c = int(o["cy"][0] // h), int(o["cx"][0] // w)
      rows.append(g[0, r, c])
      colours.append(o["colour"])
  return np.stack(rows), np.array(colours)


@functools.lru_cache(maxsize=None)
def _data():
  return _clips("train", 256), _clips("test", 128)


def _readout(patch, means_only=False):
  train, test = _data()
  (xa, ya), (xb, yb) = _tokens(*train, patch), _tokens(*test, patch)
  if means_only:  # per-channel means: blind to where the object is
    xa, xb = xa.reshape(len(xa), -1, 3).mean(1), xb.reshape(
        len(xb), -1, 3).mean(1)
  clf = RidgeClassifier(alpha=100.0).fit(xa, ya)
  return clf.score(xb, yb)


def test_default_tubelet_is_the_configs():
  assert tuple(mbt.get_config().model.video_patch_size) == (4, 8, 8)
  assert tuple(mbt.get_config("audioset").model.video_patch_size) == (
      2, 16, 16)


# Measured (seed 0, 256 train / 128 test clips, 2 objects each; chance 0.25):
# all pixels 0.82 (2x16x16) / 0.88 (8x4x4); channel means 0.36 / 0.87.
@pytest.mark.parametrize("patch", [(2, 16, 16), (8, 4, 4)])
def test_a_tubelet_tells_its_objects_colour_linearly(patch):
  assert _readout(patch) >= 0.7


def test_only_small_tubelets_tell_the_colour_by_their_channel_means():
  assert _readout((2, 16, 16), means_only=True) <= 0.5
  assert _readout((8, 4, 4), means_only=True) >= 0.75
