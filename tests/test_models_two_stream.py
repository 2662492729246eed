"""Two-stream network (Simonyan & Zisserman 2014): which input each stream
sees (gradients), softmax-average fusion, parameter counts."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import two_stream as two_stream_config
from vidjax import costs
from vidjax.errors import VidjaxError
from vidjax.models.two_stream import TwoStream

# One xdist worker runs this module: its module fixture is built once.
# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = [pytest.mark.xdist_group("models_two_stream"),
              pytest.mark.fast_compile]

T = 5  # frames; the centre frame is T // 2 = 2; 2 (T - 1) = 8 flow channels


def _clip(shape=(2, T, 8, 8, 5), seed=0):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.fixture(scope="module")
def both():
  model = TwoStream(num_classes=4, widths=(4, 8))
  x = _clip()
  variables = model.init(jax.random.key(1), x)
  return model, variables, x


def _stream_logits(model, variables):
  def fn(x):
    _, state = model.apply(variables, x, mutable=["intermediates"])
    inter = state["intermediates"]
    return inter["spatial_logits"][0], inter["temporal_logits"][0]
  return fn


def test_each_stream_sees_only_its_input(both):
  model, variables, x = both
  streams = _stream_logits(model, variables)
  jac = jax.jit(jax.jacrev(lambda x: jnp.stack([
      streams(x)[0].sum(), streams(x)[1].sum()])))(x)  # (2, B, T, H, W, C)
  seen = np.abs(np.asarray(jac)).sum(axis=(1, 3, 4)) != 0
  # seen[s][t, c]: does stream s depend on frame t, channel c?
  spatial = np.zeros((T, 5), bool)
  spatial[T // 2, :3] = True  # the centre frame's RGB only
  temporal = np.zeros((T, 5), bool)
  temporal[:T - 1, 3:] = True  # flow of frames 0..T-2, no RGB
  np.testing.assert_array_equal(seen[0], spatial)
  np.testing.assert_array_equal(seen[1], temporal)


def test_average_fusion_is_log_mean_softmax(both):
  model, variables, x = both
  fused = np.asarray(model.apply(variables, x), np.float64)
  a, b = (np.asarray(v, np.float64) for v in _stream_logits(model,
                                                            variables)(x))
  softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(  # noqa
      z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  np.testing.assert_allclose(fused, np.log((softmax(a) + softmax(b)) / 2),
                             atol=1e-5, rtol=0)
  # The single-stream models with the same weights give the same stream
  # logits: a notebook can compare RGB, flow and fused with one checkpoint.
  params = variables["params"]
  for streams, name, logits in (("rgb", "spatial", a), ("flow", "temporal",
                                                        b)):
    one = TwoStream(num_classes=4, widths=(4, 8), streams=streams)
    sub = {c: {k: v for k, v in variables[c].items() if k.startswith(name)}
           for c in variables}
    assert set(sub["params"]) == {name, f"{name}_head"} and set(
        sub["params"]) < set(params)
    np.testing.assert_allclose(one.apply(sub, x), logits, atol=1e-5, rtol=0)


def test_input_conv_channels_and_param_counts(both):
  model, variables, _ = both
  params = variables["params"]
  assert params["spatial"]["stem_conv"]["kernel"].shape == (3, 3, 3, 4)
  assert params["temporal"]["stem_conv"]["kernel"].shape == (3, 3, 2 * (T - 1),
                                                             4)
  count = lambda tree: sum(v.size for v in jax.tree.leaves(tree))  # noqa
  # The streams differ only in their input conv: 3x3x(8 - 3)x4 weights.
  assert count(params["temporal"]) - count(params["spatial"]) == 9 * 5 * 4
  linear = TwoStream(num_classes=4, widths=(4, 8), fusion="linear")
  lp = linear.init(jax.random.key(1), _clip())["params"]
  assert set(lp) == {"spatial", "temporal", "fusion_head"}
  assert lp["fusion_head"]["kernel"].shape == (16, 4)  # concat of 8 + 8


def test_linear_fusion_uses_both_streams():
  model = TwoStream(num_classes=4, widths=(4, 8), fusion="linear")
  x = _clip(seed=3)
  variables = model.init(jax.random.key(2), x)
  grad = jax.jit(jax.grad(lambda x: model.apply(variables, x).sum()))(x)
  seen = np.abs(np.asarray(grad)).sum(axis=(0, 2, 3)) != 0
  assert seen[T // 2, :3].all() and seen[:T - 1, 3:].all()
  assert not seen[T - 1, 3:].any()  # the last frame's flow is never used


def test_flow_mean_subtraction_removes_uniform_motion(both):
  model, variables, x = both
  temporal = lambda x: _stream_logits(model, variables)(x)[1]  # noqa: E731
  shift = jnp.zeros_like(x).at[..., 3].add(0.7).at[..., 4].add(-0.3)
  np.testing.assert_allclose(temporal(x + shift), temporal(x), atol=1e-5,
                             rtol=0)
  plain = TwoStream(num_classes=4, widths=(4, 8), flow_mean_subtraction=False)
  a = plain.apply(variables, x)
  assert np.abs(a - plain.apply(variables, x + shift)).max() > 1e-4


def test_rgb_input_needs_rgb_flow_modality():
  with pytest.raises(VidjaxError, match="config.dataset.modality"):
    TwoStream(num_classes=4, widths=(4, 8)).init(
        jax.random.key(0), _clip((1, T, 8, 8, 3)))
  rgb_only = TwoStream(num_classes=4, widths=(4, 8), streams="rgb")
  assert rgb_only.apply(rgb_only.init(jax.random.key(0), _clip(
      (1, T, 8, 8, 3))), _clip((1, T, 8, 8, 3))).shape == (1, 4)


def test_paper_size_resnet18_streams_param_count():
  model, shape = costs.configured_model(two_stream_config.get_config("ucf101"))
  assert shape == (11, 224, 224, 5)  # L = 10 flow fields, centre frame 5
  # ResNet-18 without its fc (torchvision's 11,689,512 - 513,000) per stream;
  # the temporal stem is 7x7x20x64 instead of 7x7x3x64; two 512x101 heads.
  resnet18_trunk = 11_689_512 - (512 * 1000 + 1000)
  expected = 2 * resnet18_trunk + 49 * 17 * 64 + 2 * (512 * 101 + 101)
  assert costs.count_params(model, shape) == expected == 22_509_962


@pytest.mark.parametrize("arg", ["", "linear"])
def test_default_config_shapes_and_a_train_step(arg):
  """Eval shapes for both; one train-mode pass for the default only."""
  config = two_stream_config.get_config(arg)
  assert config.dataset.modality == "rgb+flow"
  assert len(config.dataset.mean) == len(config.dataset.std) == 5
  assert config.dataset.mean[3:] == (128 / 255, 128 / 255)
  model, shape = costs.configured_model(config)
  assert shape == (8, 32, 32, 5)
  x = _clip((2,) + shape)
  variables = jax.eval_shape(model.init, jax.random.key(1), x)
  logits = jax.eval_shape(model.apply, variables, x)
  assert logits.shape == (2, 8) and logits.dtype == jnp.float32
  if arg:
    return

  def train_pass(x):  # eager: cheaper than compiling it once (op cache)
    variables = model.init(jax.random.key(1), x)
    logits, updates = model.apply(variables, x, train=True,
                                  rngs={"dropout": jax.random.key(3)},
                                  mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.array([0, 5])).mean()
    return logits, loss, updates
  logits, loss, updates = train_pass(x)
  assert logits.dtype == jnp.float32 and np.isfinite(float(loss))
  assert set(updates["batch_stats"]) >= {"spatial", "temporal"}
