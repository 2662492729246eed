"""TimeSformer (Bertasius et al. 2021) and its divided space-time block."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import timesformer as timesformer_config
from vidjax import costs
from vidjax.layers.factorized_attention import DividedSpaceTimeBlock
from vidjax.models.timesformer import ATTENTION_TYPES, TimeSformer
from vidjax.registry import build_model

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile

BASE = (8, 224, 224, 3)
TINY = dict(patch_size=8, hidden_size=32, num_heads=4, mlp_dim=64,
            num_layers=2, head_init_std=0.02)


def _clip(seed=0, shape=(2, 8, 32, 32, 3)):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.mark.parametrize("attention_type,millions", [
    ("divided_space_time", 121.4), ("joint_space_time", 85.9),
    ("space_only", 85.9)])
def test_base_param_count_matches_paper(attention_type, millions):
  """TimeSformer Tab. 1 (8x224x224, 400 classes)."""
  model = TimeSformer(num_classes=400, attention_type=attention_type)
  assert costs.count_params(model, BASE) / 1e6 == pytest.approx(millions,
                                                                rel=0.01)


def test_k400_config_gflops_match_paper():
  """196 GFLOPs (multiply-adds) per 8x224x224 view; paper: 0.59 TFLOPs for
  3 views."""
  model, shape = costs.configured_model(timesformer_config.get_config("k400"))
  assert shape == BASE and model.attention_type == "divided_space_time"
  assert costs.count_params(model, shape) / 1e6 == pytest.approx(121.4,
                                                                 rel=0.01)
  assert costs.forward_gmacs(model, shape) == pytest.approx(196, rel=0.05)


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_output_shape_through_registry(attention_type):
  model = build_model(dict(TINY, name="timesformer",
                           attention_type=attention_type), num_classes=7)
  x = _clip()
  logits = jax.jit(model.apply)(jax.jit(model.init)(jax.random.key(1), x), x)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits)) and np.abs(logits).max() > 1e-4


def test_small_default_config_builds_and_gives_8_logits():
  config = timesformer_config.get_config()
  assert config.dataset.name == "synthetic_motion"
  model, shape = costs.configured_model(config)
  model.check_input(shape)
  x = _clip(shape=(2,) + tuple(shape))
  logits = jax.jit(model.apply)(jax.jit(model.init)(jax.random.key(0), x), x)
  assert logits.shape == (2, 8) and np.all(np.isfinite(logits))


T, S, D = 4, 6, 16


def _block_inputs(seed=0):
  cls = jax.random.normal(jax.random.key(seed), (1, 1, D))
  patches = jax.random.normal(jax.random.key(seed + 1), (1, T, S, D))
  return cls, patches


def _zero(params, names):
  """Zeroes the output layers of the named branches (sub-layer -> identity)."""
  params = jax.tree.map(np.array, params)
  for name, leaf in names:
    for k in params[name][leaf]:
      params[name][leaf][k] = np.zeros_like(params[name][leaf][k])
  return params


def _dependence(block, params, t0, s0):
  """|d patches_out[t0, s0] / d patches_in| summed over width: (T, S)."""
  cls, patches = _block_inputs()
  out = lambda p: block.apply({"params": params}, cls, p)[1][0, t0, s0].sum()
  grad = jax.grad(out)(patches)[0]
  cls_grad = jax.grad(lambda c: block.apply({"params": params}, c, patches)[1]
                      [0, t0, s0].sum())(cls)
  return np.abs(np.asarray(grad)).sum(-1), np.abs(np.asarray(cls_grad)).sum()


def test_divided_temporal_attention_mixes_only_the_same_position():
  """With the spatial attention and MLP branches zeroed the block output is
  the patches after the temporal sub-layer: patch (t0, s0) then depends on
  the patches at s0 in every frame, on nothing else, not on the CLS token."""
  block = DividedSpaceTimeBlock(num_heads=4, mlp_dim=32)
  params = block.init(jax.random.key(0), *_block_inputs())["params"]
  params = _zero(params, [("attention", "out"), ("mlp", "fc2")])
  dep, cls_dep = _dependence(block, params, t0=1, s0=2)
  assert np.all(dep[:, 2] > 1e-6)  # every frame at the same position
  assert np.all(np.delete(dep, 2, axis=1) == 0)  # no other position
  assert cls_dep == 0


def test_space_only_block_mixes_only_within_the_frame():
  block = DividedSpaceTimeBlock(num_heads=4, mlp_dim=32, temporal=False)
  params = block.init(jax.random.key(0), *_block_inputs())["params"]
  assert "temporal_attention" not in params
  dep, cls_dep = _dependence(block, params, t0=1, s0=2)
  assert np.all(dep[1] > 1e-6) and np.all(np.delete(dep, 1, axis=0) == 0)
  assert cls_dep > 0  # the CLS token joins spatial attention


def test_cls_token_is_shared_by_the_frames_and_averaged_back():
  """The CLS update is the mean over frames of its per-frame spatial
  attention outputs: permuting frames permutes patch outputs and leaves the
  CLS output unchanged (space-only block: no temporal order inside it)."""
  block = DividedSpaceTimeBlock(num_heads=4, mlp_dim=32, temporal=False)
  cls, patches = _block_inputs()
  variables = block.init(jax.random.key(0), cls, patches)
  perm = np.array([2, 0, 3, 1])
  c1, p1 = block.apply(variables, cls, patches)
  c2, p2 = block.apply(variables, cls, patches[:, perm])
  np.testing.assert_allclose(c1, c2, atol=1e-5)
  np.testing.assert_allclose(p1[:, perm], p2, atol=1e-5)


def test_divided_and_joint_models_depend_on_frame_order():
  x = _clip()
  for attention_type in ("divided_space_time", "joint_space_time"):
    model = TimeSformer(num_classes=5, attention_type=attention_type, **TINY)
    apply = jax.jit(model.apply)
    variables = jax.jit(model.init)(jax.random.key(1), x)
    assert np.abs(apply(variables, x) - apply(variables, x[:, ::-1])
                  ).max() > 1e-4


def test_einsum_xla_fused_dropout_and_remat():
  x = _clip()
  model = TimeSformer(num_classes=5, **TINY)
  variables = jax.jit(model.init)(jax.random.key(1), x)
  reference = jax.jit(model.apply)(variables, x)
  for other in (TimeSformer(num_classes=5, attention_impl="xla_fused", **TINY),
                TimeSformer(num_classes=5, remat=True, **TINY),
                TimeSformer(num_classes=5, dropout_rate=0.2,
                            stochastic_depth=0.3, **TINY)):
    np.testing.assert_allclose(jax.jit(other.apply)(variables, x), reference,
                               atol=1e-5)
  noisy = TimeSformer(num_classes=5, dropout_rate=0.2, stochastic_depth=0.3,
                      attention_dropout_rate=0.1, **TINY)
  train = jax.jit(lambda key: noisy.apply(variables, x, train=True,
                                          rngs={"dropout": key}))
  assert np.abs(train(jax.random.key(0)) - train(jax.random.key(1))
                ).max() > 1e-4


def test_invalid_attention_type_raises():
  x = _clip()
  with pytest.raises(ValueError, match="attention_type"):
    TimeSformer(num_classes=5, attention_type="axial", **TINY).init(
        jax.random.key(0), x)
