"""Late / early / slow fusion (Karpathy et al. 2014): temporal receptive
fields read off gradients, parameter counts, default configs."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import slow_fusion as slow_fusion_config
from vidjax import costs
from vidjax.errors import VidjaxError
from vidjax.models.fusion import (EarlyFusion, LateFusion,
                                  stack_frames_on_channels)
from vidjax.models.single_frame import SingleFrameCNN
from vidjax.models.slow_fusion import SlowFusion3D, temporal_receptive_fields

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile


def _clip(shape, seed=0):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _frames_seen(fn, x):
  """For fn: x -> (N,) outputs, the frames t with d fn(x)[n] / d x[:, t] not
  exactly zero, for each n (one Jacobian)."""
  jac = np.asarray(jax.jit(jax.jacrev(fn))(x))  # (N, B, T, H, W, C)
  per_frame = np.abs(jac).sum(axis=(1, 3, 4, 5))
  return [[int(t) for t in np.flatnonzero(row)] for row in per_frame]


def _intermediate(model, variables, name, train=False):
  def fn(x):
    _, state = model.apply(variables, x, train=train,
                           mutable=["intermediates", "batch_stats"])
    return state["intermediates"][name][0]
  return fn


def _check_default_config(name, num_classes=8, train_step=True):
  """Default config: eval logits (B, K) float32; one train-mode pass
  (init + apply with mutable batch_stats) gives a finite loss and moves the
  BatchNorm statistics."""
  stem, _, arg = name.partition(":")
  config = importlib.import_module(f"configs.{stem}").get_config(arg)
  assert config.dataset.name == "synthetic_motion"
  model, shape = costs.configured_model(config)
  x = _clip((2,) + shape)
  rngs = {"params": jax.random.key(1), "dropout": jax.random.key(2)}
  variables = jax.eval_shape(model.init, rngs, x)
  logits = jax.eval_shape(model.apply, variables, x)
  assert logits.shape == (2, num_classes) and logits.dtype == jnp.float32
  if not train_step:
    return

  def train_pass(x):  # eager: cheaper than compiling it once (op cache)
    variables = model.init(rngs, x)
    logits, updates = model.apply(variables, x, train=True,
                                  rngs={"dropout": jax.random.key(3)},
                                  mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.array([0, 5])).mean()
    moved = jax.tree.map(lambda a, b: jnp.abs(a - b).max(),
                         variables["batch_stats"], updates["batch_stats"])
    return logits, loss, jnp.max(jnp.stack(jax.tree.leaves(moved)))
  logits, loss, moved = train_pass(x)
  assert logits.shape == (2, num_classes) and logits.dtype == jnp.float32
  assert np.isfinite(float(loss)) and float(loss) > 0 and float(moved) > 0


# ---------------------------------------------------------------- late fusion

def test_late_fusion_frame_features_see_only_their_frame():
  model = LateFusion(num_classes=3, widths=(4, 8), fusion="mlp",
                     mlp_dims=(8,), dropout_rate=0.0)
  x = _clip((1, 4, 8, 8, 3))
  variables = model.init(jax.random.key(1), x)
  features = _intermediate(model, variables, "frame_features")
  assert features(x).shape == (1, 4, 2, 2, 8)
  per_frame_sums = lambda f: lambda x: f(x).sum(axis=(0, 2, 3, 4))  # noqa
  # Features of frame t see frame t only; the fused logits see every frame.
  seen = _frames_seen(lambda x: jnp.concatenate([
      per_frame_sums(features)(x), model.apply(variables, x)[0]]), x)
  assert seen == [[0], [1], [2], [3]] + [[0, 1, 2, 3]] * 3
  # In train mode BatchNorm's batch statistics couple the frames.
  train_features = _intermediate(model, variables, "frame_features", True)
  assert _frames_seen(per_frame_sums(train_features), x) == [[0, 1, 2, 3]] * 4


def test_late_fusion_mlp_params_and_frame_order():
  model = LateFusion(num_classes=3, widths=(4, 8), fusion="mlp",
                     mlp_dims=(16,), dropout_rate=0.0)
  x = _clip((2, 4, 8, 8, 3), seed=2)
  variables = model.init(jax.random.key(1), x)
  # Concatenation over time and space: 4 frames x 2x2 x 8 channels = 128.
  assert variables["params"]["fc0"]["kernel"].shape == (128, 16)
  pooled = LateFusion(num_classes=3, widths=(4, 8), fusion="mlp",
                      flatten_space=False, mlp_dims=(16,))
  assert pooled.init(jax.random.key(1), x)["params"]["fc0"]["kernel"].shape \
      == (4 * 8, 16)
  # Each frame has its own weights: frame order matters.
  a = model.apply(variables, x)
  b = model.apply(variables, x[:, ::-1])
  assert np.abs(a - b).max() > 1e-4


def test_late_fusion_pool_is_the_single_frame_model():
  """A linear head commutes with the average: pool-late-fusion == averaged
  per-frame logits, with the same parameters."""
  single = SingleFrameCNN(num_classes=5, widths=(4, 8))
  late = LateFusion(num_classes=5, widths=(4, 8), fusion="pool")
  x = _clip((2, 4, 8, 8, 3), seed=3)
  sv = single.init(jax.random.key(4), x)
  _, stats = single.apply(sv, x, train=True, mutable=["batch_stats"])
  sv = {"params": sv["params"], **stats}
  nest = lambda tree: {"backbone": {k: v for k, v in tree.items()  # noqa
                                    if k != "head"},
                       **({"head": tree["head"]} if "head" in tree else {})}
  lv = {"params": nest(sv["params"]), "batch_stats": nest(sv["batch_stats"])}
  assert jax.tree.structure(lv) == jax.tree.structure(
      late.init(jax.random.key(0), x))
  np.testing.assert_allclose(late.apply(lv, x), single.apply(sv, x),
                             atol=1e-5, rtol=0)


# --------------------------------------------------------------- early fusion

def test_early_fusion_first_layer_sees_every_frame():
  model = EarlyFusion(num_classes=3, widths=(4, 8))
  x = _clip((1, 5, 8, 8, 3))
  variables = model.init(jax.random.key(1), x)
  # The first conv takes the T*C = 15 stacked channels.
  assert variables["params"]["backbone"]["stem_conv"]["kernel"].shape == (
      3, 3, 15, 4)

  def stem(x):
    _, state = model.apply(
        variables, x, mutable=["intermediates"],
        capture_intermediates=lambda m, _: m.name == "stem_conv")
    return state["intermediates"]["backbone"]["stem_conv"]["__call__"][0]
  out = stem(x)
  assert out.shape == (1, 4, 4, 4)  # no time axis left after the first conv
  # Every output channel at one position sees all frames.
  assert _frames_seen(lambda x: stem(x)[0, 2, 2], x) == [list(range(5))] * 4


def test_early_fusion_center_stem_starts_as_a_single_frame_model():
  """stem_init="center" (the small config's, issue #17): at init the
  logits read the centre frame only, as the single-frame model does (a
  random stem sums a moving object's displaced copies into a smear); every
  frame's stem weights still get gradients, so motion can be learned."""
  model = EarlyFusion(num_classes=3, widths=(4, 8), stem_init="center")
  x = _clip((2, 5, 8, 8, 3))
  variables = model.init(jax.random.key(1), x)
  kernel = np.asarray(variables["params"]["backbone"]["stem_conv"]["kernel"])
  per_frame = np.abs(kernel).reshape(3, 3, 5, 3, 4).sum(axis=(0, 1, 3, 4))
  assert [t for t in range(5) if per_frame[t] > 0] == [2]
  logits = lambda x: model.apply(variables, x)
  assert _frames_seen(lambda x: logits(x)[0], x) == [[2]] * 3
  other = x.at[:, jnp.array([0, 1, 3, 4])].set(_clip((2, 4, 8, 8, 3), 7))
  np.testing.assert_allclose(logits(other), logits(x), atol=1e-6, rtol=0)

  def loss(params):
    out, _ = model.apply({**variables, "params": params}, x, train=True,
                         mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(
        out, jnp.array([0, 1])).mean()
  grad = np.asarray(jax.grad(loss)(variables["params"])
                    ["backbone"]["stem_conv"]["kernel"])
  grad_per_frame = np.abs(grad).reshape(3, 3, 5, 3, 4).sum(axis=(0, 1, 3, 4))
  assert (grad_per_frame > 0).all()
  with pytest.raises(VidjaxError, match="config.model.stem_init"):
    EarlyFusion(num_classes=3, widths=(4,), stem_init="centre").init(
        jax.random.key(0), x)


def test_early_fusion_small_config_uses_the_center_stem():
  from configs import early_fusion as early_fusion_config
  assert early_fusion_config.get_config().model.stem_init == "center"


def test_stack_frames_on_channels_order():
  x = np.arange(2 * 3 * 2 * 2 * 4).reshape(2, 3, 2, 2, 4)
  y = np.asarray(stack_frames_on_channels(jnp.asarray(x)))
  assert y.shape == (2, 2, 2, 12)
  for t in range(3):
    for c in range(4):
      np.testing.assert_array_equal(y[..., t * 4 + c], x[:, t, ..., c])


# ---------------------------------------------------------------- slow fusion

def test_lecture_stack_receptive_fields_formula():
  layers = slow_fusion_config.get_config("lecture").model.layers
  assert temporal_receptive_fields(layers) == (3, 6, 14)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_slow_fusion_temporal_receptive_fields_3_6_14(pool):
  """conv 3x3x3 -> pool 4x4x4 -> conv 3x3x3: one central output position
  sees exactly 3, 6, then 14 frames (32 frames: no padding reaches it)."""
  layers = tuple(t.replace("maxpool", f"{pool}pool")
                 for t in slow_fusion_config.LECTURE_LAYERS)
  model = SlowFusion3D(num_classes=3, layers=layers)
  x = _clip((1, 32, 8, 8, 1))
  variables = model.init(jax.random.key(5), x)
  # (layer, central time step of its output, frames it must see)
  expected = [(0, 16, range(15, 18)), (1, 4, range(16 - 1, 20 + 1)),
              (2, 4, range(11, 25))]
  def central_outputs(x):
    _, state = model.apply(variables, x, mutable=["intermediates"])
    outs = [state["intermediates"][f"layer{layer}"][0] for layer, _, _ in
            expected]
    return jnp.stack([y[0, t, y.shape[2] // 2, y.shape[3] // 2].sum()
                      for y, (_, t, _) in zip(outs, expected)])
  for (layer, _, frames), seen in zip(expected, _frames_seen(central_outputs,
                                                             x)):
    if pool == "avg":
      assert seen == list(frames), (layer, seen)
    else:  # a max pool passes gradient to its argmax only: never more frames
      assert set(seen) <= set(frames) and len(seen) >= 3, (layer, seen)
  assert [len(f) for _, _, f in expected] == [3, 6, 14]


def test_karpathy_slow_fusion_params_and_time_steps():
  config = slow_fusion_config.get_config("sports1m")
  model, shape = costs.configured_model(config)
  assert shape == (10, 170, 170, 3)
  # conv1 4x11x11x3x96 + b; conv2 2x5x5x96x256 + b; conv3 2x3x3x256x384 + b;
  # conv4 3x3x384x384 + b; conv5 3x3x384x256 + b; fc1 (7*7*256)x4096 + b;
  # fc2 4096x4096 + b; head 4096x487 + b.
  expected = (139_488 + 1_229_056 + 1_769_856 + 1_327_488 + 884_992
              + 51_384_320 + 16_781_312 + 1_995_239)
  assert costs.count_params(model, shape) == expected == 75_511_751
  _, state = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x,
                                       mutable=["params", "intermediates"]),
      jax.ShapeDtypeStruct((1,) + shape, jnp.float32))
  time_steps = {i: state["intermediates"][f"layer{i}"][0].shape[1]
                for i in (0, 3, 6)}
  assert time_steps == {0: 4, 3: 2, 6: 1}  # 10 -> 4 -> 2 -> 1 frames
  assert temporal_receptive_fields(config.model.layers)[6] == 10


def test_slow_fusion_bad_layer_token():
  model = SlowFusion3D(num_classes=3, layers=("conv3x3:8",))
  with pytest.raises(VidjaxError, match="config.model.layers"):
    model.init(jax.random.key(0), _clip((1, 4, 8, 8, 3)))


# ------------------------------------------------------------ default configs

@pytest.mark.parametrize("name", ["late_fusion", "early_fusion",
                                  "slow_fusion"])
def test_default_configs_shapes_and_a_train_step(name):
  _check_default_config(name)


@pytest.mark.parametrize("name", ["late_fusion:pool", "slow_fusion:lecture"])
def test_variant_configs_shapes(name):
  _check_default_config(name, train_step=False)
