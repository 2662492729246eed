"""I3D and its 2D parent, BN-Inception-v1 (vidjax/models/inception.py).

Paper sizes are only traced (eval_shape / jaxpr). The inflation test builds a
narrow version of the same layout (width x0.125, every pool and stride of the
paper, 32x32 frames) and checks the I3D fixed point: a static clip through
the inflated net gives the 2D net's logits on that frame.
"""
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
# One xdist worker runs this module: its module fixture runs once (pytest.ini).
pytestmark = pytest.mark.xdist_group("models_i3d")


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


def _variables(model, x, seed=0):
  """Random variables without model.init (threefry init of ~60 kernels takes
  ~1 CPU-s per kernel to compile here): He-normal kernels, 0.1 N(0,1) biases
  and BN offsets, BN means 0.2 N(0,1) and variances U(0.5, 2)."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name, shape = path[-1].key, leaf.shape
    if name == "kernel":
      value = rng.normal(0, np.sqrt(2 / np.prod(shape[:-1])), shape)
    elif name == "var":
      value = rng.uniform(0.5, 2.0, shape)
    else:
      value = (0.2 if name == "mean" else 0.1) * rng.normal(size=shape)
    return jnp.asarray(value, jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _jit(fn, *args):
  """Compiled at XLA backend optimisation level 0: same computation, about
  half the CPU compile time of these deep conv nets."""
  return jax.jit(fn).lower(*args).compile(
      {"xla_backend_optimization_level": 0})(*args)


@pytest.fixture(scope="module")
def parent():
  """Narrow 2D net, random params and BN statistics, its logits on 2 frames."""
  model = Inception2D(**SMALL)
  frames = jax.random.normal(jax.random.key(0), (2, 1, 32, 32, 3))
  variables = _variables(model, frames)
  return frames, variables, _jit(model.apply, variables, frames)


def _inflated_logits(variables, padding, frames, steps_=7):
  model_3d = I3D(temporal_padding=padding, **SMALL)
  clip = jnp.tile(frames, (1, steps_, 1, 1, 1))
  target = jax.eval_shape(model_3d.init, jax.random.key(0), clip)
  inflated = inflate_variables(variables, target)
  assert inflated["params"]["conv1a"]["conv"]["kernel"].shape[0] == 7
  assert inflated["params"]["mixed_4c"]["branch1b"]["conv"]["kernel"].shape[
      0] == 3
  np.testing.assert_array_equal(
      inflated["batch_stats"]["mixed_5c"]["branch2b"]["bn"]["var"],
      variables["batch_stats"]["mixed_5c"]["branch2b"]["bn"]["var"])
  return _jit(model_3d.apply, inflated, clip)


def test_static_clip_through_inflated_i3d_equals_2d_net(parent):
  frames, variables, expected = parent
  assert np.abs(expected).max() > 0.1
  assert np.abs(expected[0] - expected[1]).max() > 1e-2
  # 7 frames: conv1a (t-stride 2) -> 4, pool 4a -> 2, pool 5a -> 1; odd
  # lengths exercise the SAME pools' uneven padding.
  got = _inflated_logits(variables, "edge", frames)
  np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_zero_temporal_padding_breaks_the_static_clip_equality(parent):
  frames, variables, expected = parent
  got = _inflated_logits(variables, "zeros", frames)
  assert np.abs(got - expected).max() > 1e-3


def test_inflate_variables_checks_collections(parent):
  frames, variables, _ = parent
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
  variables = _variables(model, clip)
  # One call: the clip, its reverse, and its 3 frames as 1-frame clips.
  frames = jnp.swapaxes(clip, 0, 1)  # (3, 1, H, W, C)
  both = jnp.concatenate([clip, clip[:, ::-1]], axis=0)
  got = _jit(lambda v, a, b: (model.apply(v, a), model.apply(v, b)),
             variables, both, frames)
  assert np.abs(got[0][0]).max() > 0.1
  np.testing.assert_allclose(got[0][1], got[0][0], atol=1e-5)
  np.testing.assert_allclose(got[1].mean(0), got[0][0], atol=1e-5)


def test_small_default_config_train_step():
  """configs/i3d.py default: one real train step (vidjax.steps) at batch 4
  gives a finite loss near log(8) and moves every parameter."""
  config = i3d_config.get_config()
  assert config.dataset.name == "synthetic_motion"
  model, shape = costs.configured_model(config)
  assert shape == (8, 32, 32, 3)
  assert costs.count_params(model, shape) == 783_268
  schedule = optim.make_schedule(config.optimizer, 10, 0)
  tx = optim.make_optimizer(config.optimizer, schedule)
  variables = _variables(model, jnp.zeros((1,) + shape))
  zero = jnp.zeros((), jnp.int32)
  state = steps.TrainState(
      step=zero, params=variables["params"],
      batch_stats=variables["batch_stats"],
      opt_state=tx.init(variables["params"]), rng=jax.random.key(1),
      skipped_steps=zero, nonfinite_streak=zero, apply_fn=model.apply, tx=tx)
  video = np.random.default_rng(0).integers(0, 256, (4,) + shape, np.uint8)
  batch = {"video": jnp.asarray(video), "label": jnp.array([0, 1, 2, 7])}
  new_state, metrics = _jit(steps.make_train_step(config, schedule), state,
                            batch)
  loss = float(metrics["train/loss"])
  assert np.isfinite(loss) and 0.5 < loss < 10
  assert int(new_state.skipped_steps) == 0
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       state.params, new_state.params)
  assert min(jax.tree.leaves(moved)) > 0  # every parameter got a gradient
  stats_moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                             state.batch_stats, new_state.batch_stats)
  assert min(jax.tree.leaves(stats_moved)) > 0


def test_inception2d_small_default_config():
  config = inception2d_config.get_config()
  model, shape = costs.configured_model(config)
  assert shape == (8, 32, 32, 3)
  assert costs.count_params(model, shape) == 354_724
  x = jax.ShapeDtypeStruct((2,) + shape, jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert jax.eval_shape(model.apply, variables, x).shape == (2, 8)
  # The 2D parent has 4D kernels; I3D's small default has the same names.
  i3d, _ = costs.configured_model(i3d_config.get_config())
  target = jax.eval_shape(i3d.init, jax.random.key(0), x)
  assert variables["params"]["conv2c"]["conv"]["kernel"].shape == (
      3, 3, 16, 48)
  assert jax.tree.structure(target["params"]) == jax.tree.structure(
      variables["params"])


def test_bad_config_raises_naming_the_key():
  x = jnp.zeros((1, 2, 32, 32, 3))
  with pytest.raises(VidjaxError, match="stem_pools"):
    I3D(num_classes=3, stem_pools=3).init(jax.random.key(0), x)
  with pytest.raises(VidjaxError, match="branch2_kernel"):
    Inception2D(num_classes=3, branch2_kernel=4).init(jax.random.key(0), x)
  with pytest.raises(VidjaxError, match="temporal_padding"):
    I3D(num_classes=3, temporal_padding="reflect").init(jax.random.key(0), x)
