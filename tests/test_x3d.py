"""X3D (Feichtenhofer 2020): the model zoo's parameter and multiply-add counts
per view (counted, never run), a hand count of the layout, the depthwise
"shifts" conv against the grouped convolution, squeeze-excitation's gating,
the costs extension on a hand case, and a tiny X3D trained one jitted step."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import x3d as x3d_config
from vidjax import costs
from vidjax.errors import VidjaxError
from vidjax.layers.pooling_attention import depthwise_conv3d
from vidjax.layers.causal import SqueezeExcite, make_divisible
from vidjax.models.x3d import X3D, DepthwiseConv3D, stage_specs

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile

# PySlowFast MODEL_ZOO.md (K400): params (M), GFLOPs per view, input.
ZOO = {"xs": (3.8, 0.60, (4, 160)), "s": (3.8, 1.96, (13, 160)),
       "m": (3.8, 4.73, (16, 224)), "l": (6.2, 18.37, (16, 312))}


def hand_counts(specs, frames, size, dim_c1=12, width_factor=2.0,
                dim_c5=2048, classes=400):
  """(params, multiply-adds) of X3D counted by hand from the module
  docstring's layout (convs and dense layers; BN: 2 params per channel)."""
  stem = round(dim_c1 * width_factor)
  h = math.ceil(size / 2)
  params = 9 * 3 * stem + 5 * stem + 2 * stem   # 1x3x3, 5x1x1 dw, BN
  macs = frames * h * h * stem * (9 * 3 + 5)
  c_in = stem
  for blocks, width, inner in specs:
    for i in range(blocks):
      h_out = math.ceil(h / 2) if i == 0 else h
      n_in, n_out = frames * h * h, frames * h_out * h_out
      params += (c_in * inner + 2 * inner + 27 * inner + 2 * inner
                 + inner * width + 2 * width)
      macs += n_in * c_in * inner + n_out * inner * (27 + width)
      if i % 2 == 0:
        r = make_divisible(inner / 16)
        params += 2 * inner * r + r + inner
        macs += 2 * inner * r
      if i == 0:
        params += c_in * width + 2 * width
        macs += n_out * c_in * width
      c_in, h = width, h_out
  inner = specs[-1][2]
  params += (c_in * inner + 2 * inner + inner * dim_c5 + dim_c5 * classes
             + classes)
  macs += frames * h * h * c_in * inner + inner * dim_c5 + dim_c5 * classes
  return params, macs


@pytest.mark.parametrize("variant", sorted(ZOO))
def test_zoo_params_and_gflops_per_view_within_5_percent(variant):
  """X3D-XS/S/M/L at the zoo's inputs: vidjax 3.79/3.79/3.79/6.15 M and
  0.605/1.963/4.733/18.37 G multiply-adds (zoo 3.8/3.8/3.8/6.2, 0.60/1.96/
  4.73/18.37), and exactly the hand count of the layout."""
  params_m, gflops, (frames, crop) = ZOO[variant]
  config = x3d_config.get_config(variant)
  model, shape = costs.configured_model(config)
  assert shape == (frames, crop, crop, 3) and model.num_classes == 400
  params = costs.count_params(model, shape)
  gmacs = costs.kernel_gmacs(model, shape)
  assert abs(params / 1e6 / params_m - 1) < 0.05, params
  assert abs(gmacs / gflops - 1) < 0.05, gmacs
  specs = stage_specs(12, 2.0, model.depth_factor, 2.25)
  hand_params, hand_macs = hand_counts(specs, frames, crop)
  assert params == hand_params
  assert gmacs == pytest.approx(hand_macs / 1e9, rel=1e-9)


def test_stage_layout_of_x3d_m_and_l():
  """Paper Tab. 1 (X3D-M): res2-5 of 3, 5, 11, 7 blocks, widths 24, 48, 96,
  192, inner 54, 108, 216, 432; X3D-L (depth 5.0): 5, 10, 25, 15 blocks;
  SE reduced widths 8, 8, 16, 32."""
  assert stage_specs(12, 2.0, 2.2, 2.25) == [
      (3, 24, 54), (5, 48, 108), (11, 96, 216), (7, 192, 432)]
  assert [s[0] for s in stage_specs(12, 2.0, 5.0, 2.25)] == [5, 10, 25, 15]
  assert [make_divisible(c / 16) for c in (54, 108, 216, 432)] == [
      8, 8, 16, 32]


def test_zoo_recipes_in_the_configs():
  m, l = x3d_config.get_config("m"), x3d_config.get_config("l")
  assert (m.dataset.num_frames, m.dataset.frame_stride) == (16, 5)
  assert (m.dataset.train_resize_short, m.dataset.train_resize_short_max,
          m.dataset.test_crop_size) == (256, 320, 256)
  assert (m.num_test_clips, m.num_test_crops) == (10, 3)
  assert l.dataset.resize_short >= l.dataset.train_resize_short_max == 446
  assert (l.batch_size, l.optimizer.learning_rate) == (64, 0.05)
  assert m.optimizer.nesterov and m.optimizer.weight_decay == 5e-5


@pytest.mark.parametrize("kernel,stride", [((3, 3, 3), (1, 1, 1)),
                                           ((3, 3, 3), (1, 2, 2)),
                                           ((5, 1, 1), (1, 1, 1))])
def test_shifts_depthwise_equals_grouped_conv(kernel, stride):
  """"shifts" == lax.conv_general_dilated(feature_group_count=C) to 1e-5,
  values and gradients (odd and even map sizes)."""
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (2, 5, 7, 6, 4))
  w = jax.random.normal(kk, kernel + (1, 4))
  grouped = jax.lax.conv_general_dilated(
      x, w, stride, [(k // 2, k // 2) for k in kernel],
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"), feature_group_count=4)
  shifts = depthwise_conv3d(x, w, stride, "shifts")
  np.testing.assert_allclose(shifts, grouped, atol=1e-5)
  g = jax.random.normal(kg, grouped.shape)
  grads = [jax.grad(lambda x, w: jnp.sum(depthwise_conv3d(x, w, stride, impl)
                                         * g), argnums=(0, 1))(x, w)
           for impl in ("shifts", "conv")]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_squeeze_excite_gates_each_channel():
  """X3D's SE (clip-level, ReLU, sigmoid). Zero expand weights: the gate is
  sigmoid(0) = 0.5 everywhere; in general one gate per (clip, channel), in
  (0, 1), constant over T, H, W."""
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 4, 4, 16)) + 1.0
  se = SqueezeExcite(8, causal=False, activation="relu", gating="sigmoid")
  params = jax.jit(se.init)(jax.random.PRNGKey(2), x)["params"]
  zero = jax.tree_util.tree_map(jnp.zeros_like, params)
  zero["reduce"] = params["reduce"]
  np.testing.assert_allclose(se.apply({"params": zero}, x)[0], 0.5 * x,
                             rtol=1e-6)
  gate = se.apply({"params": params}, x)[0] / x
  np.testing.assert_allclose(
      gate, np.broadcast_to(gate[:, :1, :1, :1], gate.shape), rtol=1e-5)
  assert float(gate.min()) > 0 and float(gate.max()) < 1
  assert float(jnp.std(gate[:, 0, 0, 0])) > 1e-3  # gates differ by channel


class _OneDepthwise(nn.Module):
  depthwise_impl: str = "shifts"

  @nn.compact
  def __call__(self, x, train=False):
    return DepthwiseConv3D((3, 3, 3), (1, 2, 2), self.depthwise_impl)(x)


def test_costs_count_shifts_depthwise_as_its_conv_form():
  """A 3x3x3 depthwise conv, stride (1, 2, 2), on 4x8x8x6: 4 x 4 x 4 x 6
  outputs x 27 taps = 10,368 multiply-adds, whatever its CPU form."""
  for impl in ("shifts", "conv", "auto"):
    gmacs = costs.kernel_gmacs(_OneDepthwise(impl), (4, 8, 8, 6))
    assert gmacs * 1e9 == pytest.approx(4 * 4 * 4 * 6 * 27)


def test_bad_depthwise_impl_is_one_line_naming_the_key():
  with pytest.raises(VidjaxError, match="config.model.depthwise_impl"):
    X3D(4, depthwise_impl="fft").check_input()


def test_tiny_x3d_trains_one_jitted_step():
  """A tiny X3D (shifts form, as on CPU), one jitted train step: every block
  starts as the identity on its shortcut (its last BN scale is 0), so the
  gradient reaches that scale but nothing before it in the branch; the rest
  get finite non-zero gradients; BN statistics move; an SGD step on the
  fixed batch lowers its loss."""
  model = X3D(3, dim_c1=4, depth_factor=1.0, base_depths=(2,), dim_c5=8,
              dropout_rate=0.0, depthwise_impl="shifts")
  x = jax.random.normal(jax.random.PRNGKey(3), (3, 3, 8, 8, 3))
  y = jnp.array([0, 1, 2])
  v = jax.jit(model.init)(jax.random.PRNGKey(4), x[:1])

  @jax.jit
  def step(params):
    def loss(params):
      logits, upd = model.apply(
          {"params": params, "batch_stats": v["batch_stats"]}, x,
          train=True, mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, y).mean(), upd
    return jax.value_and_grad(loss, has_aux=True)(params)

  (l0, upd), grads = step(v["params"])
  flat = {"/".join(k.key for k in path): float(jnp.abs(g).max())
          for path, g in jax.tree_util.tree_leaves_with_path(grads)}
  assert all(np.isfinite(list(flat.values())))
  inside = ("conv_a", "bn_a", "conv_b", "bn_b", "/se/", "conv_c")
  for name, g in flat.items():
    blocked = "block" in name and any(part in name for part in inside)
    assert (g == 0) == blocked, (name, g)
  assert flat["res2_block1/bn_c/scale"] > 0
  moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                 upd["batch_stats"], v["batch_stats"])
  assert min(jax.tree_util.tree_leaves(moved)) > 0
  params = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, v["params"],
                                  grads)
  (l1, _), _ = step(params)
  assert float(l1) < float(l0)
