"""I3D inflation (Carreira & Zisserman 2017): a static clip through the
inflated 3D ResNet gives the 2D ResNet's output.

Design: the 2D parent is `ResNet3D(temporal_kernel=1, temporal_stride=False)`
(a per-frame 2D ResNet with the 3D net's parameter names); the 3D child uses
`temporal_padding="edge"`, which makes the equality exact at every frame and
through temporal strides. With zero temporal padding it does not hold.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.models.inflate import inflate_kernel, inflate_params
from vidjax.models.resnet3d import ResNet3D

# One xdist worker runs this module: its module fixture is built once.
# Small nets run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 28 -> 14 CPU-s), same tolerances.
pytestmark = [pytest.mark.xdist_group("inflate"), pytest.mark.fast_compile]

KW = dict(num_classes=5, widths=(8, 16), blocks_per_stage=(1, 1),
          stem_width=8)


@pytest.fixture(scope="module")
def parent():
  """2D net variables with random (non-trivial) params and BN statistics."""
  model = ResNet3D(temporal_kernel=1, temporal_stride=False, **KW)
  frames = jax.random.normal(jax.random.key(0), (2, 1, 16, 16, 3))
  variables = model.init(jax.random.key(1), frames)
  leaves, treedef = jax.tree.flatten(variables["params"])
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = treedef.unflatten([a + 0.1 * jax.random.normal(k, a.shape)
                              for a, k in zip(leaves, keys)])
  _, stats = model.apply({"params": params, **variables},
                         jnp.tile(frames, (1, 4, 1, 1, 1)), train=True,
                         mutable=["batch_stats"])
  return model, frames, {"params": params, **stats}


def _inflate(variables, model_3d, clip):
  shapes = jax.eval_shape(model_3d.init, jax.random.key(0), clip)
  return {"params": inflate_params(variables["params"], shapes["params"],
                                   time_kernel=3),
          "batch_stats": variables["batch_stats"]}


def test_static_clip_through_inflated_net_equals_2d_net(parent):
  model_2d, frames, variables = parent
  expected = model_2d.apply(variables, frames)
  assert np.abs(expected).max() > 0.1
  model_3d = ResNet3D(temporal_kernel=3, temporal_padding="edge", **KW)
  clip = jnp.tile(frames, (1, 8, 1, 1, 1))
  inflated = _inflate(variables, model_3d, clip)
  assert inflated["params"]["stem_conv"]["kernel"].shape == (3, 7, 7, 3, 8)
  got = model_3d.apply(inflated, clip)
  np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_zero_temporal_padding_breaks_the_equality(parent):
  model_2d, frames, variables = parent
  model_3d = ResNet3D(temporal_kernel=3, temporal_padding="zeros", **KW)
  clip = jnp.tile(frames, (1, 8, 1, 1, 1))
  got = model_3d.apply(_inflate(variables, model_3d, clip), clip)
  assert np.abs(got - model_2d.apply(variables, frames)).max() > 1e-3


def test_inflate_kernel_methods():
  w = jax.random.normal(jax.random.key(0), (3, 3, 2, 4))
  mean = inflate_kernel(w, 5)
  assert mean.shape == (5, 3, 3, 2, 4)
  np.testing.assert_allclose(mean.sum(0), w, atol=1e-6)
  center = inflate_kernel(w[None], 3, "center")
  np.testing.assert_array_equal(center[1], w)
  assert float(jnp.abs(center[0]).max()) == 0.0


def test_mismatched_trees_raise(parent):
  _, _, variables = parent
  target = {"head": {"kernel": jax.ShapeDtypeStruct((16, 7), jnp.float32)}}
  with pytest.raises(VidjaxError, match="head/kernel"):
    inflate_params(variables["params"], target)
  with pytest.raises(VidjaxError, match="lack"):
    inflate_params(variables["params"], {"nope": target["head"]})
