"""I3D and its 2D parent, BN-Inception-v1 (vidjax/models/inception.py).

Paper sizes are only traced (eval_shape / jaxpr). The inflation test builds a
narrow version of the same layout (width x0.125, every pool and stride of the
paper, 32x32 frames) and checks the I3D fixed point: a static clip through
the inflated net gives the 2D net's logits on that frame.
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import i3d as i3d_config
from configs import inception2d as inception2d_config
from vidjax import costs, optim, steps
from vidjax.errors import VidjaxError
from vidjax.models.inception import BLOCKS, I3D, Inception2D
from vidjax.models.inflate import inflate_variables

SMALL = dict(num_classes=5, width_multiplier=0.125)


def test_i3d_paper_size_params_and_macs():
  model, shape = costs.configured_model(i3d_config.get_config("k400"))
  assert shape == (64, 224, 224, 3)
  rgb = costs.count_params(model, shape)
  # BatchNorm with an offset only, as the deepmind/kinetics-i3d release.
  assert rgb == 12_689_984
  # With a BN scale too: piergiaj/pytorch-i3d's InceptionI3d count.
  assert costs.count_params(model.clone(bn_scale=True), shape) == 12_697_264
  # Paper Tab. 1: Two-Stream I3D (RGB + 2-channel flow nets) has 25M.
  flow = costs.count_params(model, (64, 224, 224, 2))
  assert flow == rgb - 7 * 7 * 7 * 64
  assert round((rgb + flow) / 1e6) == 25
  # SlowFast (Feichtenhofer et al. 2019) Tab. 2 lists I3D at 108 GFLOPs.
  assert costs.kernel_gmacs(model, shape) == pytest.approx(108, rel=0.04)


def test_inception2d_imagenet_and_googlenet_sizes():
  model, shape = costs.configured_model(
      inception2d_config.get_config("imagenet"))
  assert shape == (1, 224, 224, 3)
  assert costs.count_params(model, shape) == 6_617_624
  # GoogLeNet Tab. 1 (5x5 kernels in the third branch): 6.8M params, 1.5 G
  # multiply-adds (the table's per-layer sums).
  googlenet = model.clone(branch2_kernel=5)
  assert costs.count_params(googlenet, shape) == pytest.approx(6.8e6,
                                                               rel=0.03)
  assert costs.kernel_gmacs(googlenet, shape) == pytest.approx(1.5, rel=0.06)


def test_i3d_layout_block_widths_and_feature_map_sizes():
  model, shape = costs.configured_model(i3d_config.get_config("k400"))
  x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  logits, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  assert logits.shape == (1, 400)
  blocks = {n: v["output"] for n, v in state["intermediates"].items()}
  assert list(blocks) == [name for name, _ in BLOCKS]
  assert len(blocks) == 9
  assert [blocks[n][0].shape[-1] for n in blocks] == [
      256, 480, 512, 512, 512, 528, 832, 832, 1024]
  assert blocks["mixed_3b"][0].shape == (1, 32, 28, 28, 256)  # no t-pooling
  assert blocks["mixed_4b"][0].shape == (1, 16, 14, 14, 512)
  assert blocks["mixed_5c"][0].shape == (1, 8, 7, 7, 1024)
  p = variables["params"]
  assert p["conv1a"]["conv"]["kernel"].shape == (7, 7, 7, 3, 64)
  assert p["mixed_3b"]["branch2b"]["conv"]["kernel"].shape == (3, 3, 3, 16,
                                                                32)
  assert p["logits"]["kernel"].shape == (1, 1, 1, 1024, 400)
  assert "scale" not in p["conv2c"]["bn"]


def _randomize(tree, key):
  """Params + 0.1 N(0,1); BN means + 0.2 N(0,1), variances U(0.5, 2)."""
  flat = flax.traverse_util.flatten_dict(tree)
  keys = jax.random.split(key, len(flat))
  out = {}
  for k, (path, a) in zip(keys, flat.items()):
    if path[-1] == "var":
      out[path] = jax.random.uniform(k, a.shape, minval=0.5, maxval=2.0)
    else:
      out[path] = a + (0.2 if path[-1] == "mean" else 0.1) * (
          jax.random.normal(k, a.shape))
  return flax.traverse_util.unflatten_dict(out)


@pytest.fixture(scope="module")
def parent():
  """Narrow 2D net with random params and random BN statistics."""
  model = Inception2D(**SMALL)
  frames = jax.random.normal(jax.random.key(0), (2, 1, 32, 32, 3))
  variables = model.init(jax.random.key(1), frames)
  return model, frames, _randomize(variables, jax.random.key(2))


def _inflated_logits(variables, padding, frames, steps_=7):
  model_3d = I3D(temporal_padding=padding, **SMALL)
  clip = jnp.tile(frames, (1, steps_, 1, 1, 1))
  target = jax.eval_shape(model_3d.init, jax.random.key(0), clip)
  inflated = inflate_variables(variables, target)
  assert inflated["params"]["conv1a"]["conv"]["kernel"].shape[0] == 7
  assert inflated["params"]["mixed_4c"]["branch1b"]["conv"]["kernel"].shape[
      0] == 3
  return jax.jit(model_3d.apply)(inflated, clip)


def test_static_clip_through_inflated_i3d_equals_2d_net(parent):
  model_2d, frames, variables = parent
  expected = jax.jit(model_2d.apply)(variables, frames)
  assert np.abs(expected).max() > 0.1
  assert np.abs(expected[0] - expected[1]).max() > 1e-2
  # 7 frames: conv1a (t-stride 2) -> 4, pool 4a -> 2, pool 5a -> 1; odd
  # lengths exercise the SAME pools' uneven padding.
  got = _inflated_logits(variables, "edge", frames)
  np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_zero_temporal_padding_breaks_the_static_clip_equality(parent):
  model_2d, frames, variables = parent
  expected = jax.jit(model_2d.apply)(variables, frames)
  got = _inflated_logits(variables, "zeros", frames)
  assert np.abs(got - expected).max() > 1e-3


def test_inflate_variables_checks_collections(parent):
  _, frames, variables = parent
  target = jax.eval_shape(I3D(**SMALL).init, jax.random.key(0),
                          jnp.tile(frames, (1, 4, 1, 1, 1)))
  with pytest.raises(VidjaxError, match="batch_stats"):
    inflate_variables({"params": variables["params"]}, target)
  wide = jax.eval_shape(I3D(num_classes=5, width_multiplier=0.25).init,
                        jax.random.key(0), jnp.tile(frames, (1, 4, 1, 1, 1)))
  with pytest.raises(VidjaxError, match="conv1a"):
    inflate_variables(variables, wide)


def test_inception2d_is_per_frame():
  """Eval mode: frame order does not matter; logits = mean of frame logits."""
  model = Inception2D(**SMALL)
  clip = jax.random.normal(jax.random.key(0), (1, 3, 32, 32, 3))
  variables = model.init(jax.random.key(1), clip)
  apply = jax.jit(model.apply)
  got = apply(variables, clip)
  np.testing.assert_allclose(apply(variables, clip[:, ::-1]), got, atol=1e-5)
  frames = jnp.swapaxes(clip, 0, 1)  # (3, 1, H, W, C): one frame each
  np.testing.assert_allclose(apply(variables, frames).mean(0), got[0],
                             atol=1e-5)


@pytest.mark.parametrize("module", [i3d_config, inception2d_config])
def test_small_default_config_train_step(module):
  config = module.get_config()
  assert config.dataset.name == "synthetic_motion"
  model, shape = costs.configured_model(config)
  assert shape == (8, 32, 32, 3)
  schedule = optim.make_schedule(config.optimizer, 10, 0)
  tx = optim.make_optimizer(config.optimizer, schedule)
  state = steps.create_state(model, tx, config, jax.random.key(0))
  batch = {"video": jax.random.randint(jax.random.key(1), (4,) + shape, 0,
                                       256).astype(jnp.uint8),
           "label": jnp.array([0, 1, 2, 7])}
  new_state, metrics = jax.jit(steps.make_train_step(config, schedule))(
      state, batch)
  loss = float(metrics["train/loss"])
  assert np.isfinite(loss) and 0.5 < loss < 10
  assert int(new_state.skipped_steps) == 0
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       state.params, new_state.params)
  assert min(jax.tree.leaves(moved)) > 0  # every parameter got a gradient


def test_bad_config_raises_naming_the_key():
  x = jnp.zeros((1, 2, 32, 32, 3))
  with pytest.raises(VidjaxError, match="stem_pools"):
    I3D(num_classes=3, stem_pools=3).init(jax.random.key(0), x)
  with pytest.raises(VidjaxError, match="branch2_kernel"):
    Inception2D(num_classes=3, branch2_kernel=4).init(jax.random.key(0), x)
  with pytest.raises(VidjaxError, match="temporal_padding"):
    I3D(num_classes=3, temporal_padding="reflect").init(jax.random.key(0), x)
