"""Tests of ViViT (Arnab et al. 2021) models 1 and 2 and the shared layers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.layers.attention import MultiHeadSelfAttention
from vidjax.layers.embedding import TubeletEmbedding
from vidjax.models.vivit import ViViTFactorizedEncoder, ViViTSpatioTemporal
from vidjax.registry import build_model

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile

TINY = dict(patch_size=(2, 8, 8), hidden_size=32, num_heads=4, mlp_dim=64,
            head_init_std=0.02)
TINY_FE = dict(TINY, spatial_layers=2, temporal_layers=2)
TINY_ST = dict(TINY, num_layers=2)


def _clip(seed=0, shape=(2, 8, 32, 32, 3)):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _init(model, x):
  init = model.init
  if model.scan_layers or model.remat:
    init = jax.jit(init)
  return init(jax.random.key(1), x)


def _jit_apply(model, train=False):
  """apply(variables, x, key=None), jit-compiled for scanned / remat models
  (they re-trace on every eager call); eager otherwise (eager op kernels are
  cached across tests, which keeps this file fast)."""
  fn = lambda variables, x, key=None: model.apply(
      variables, x, train=train,
      rngs=None if key is None else {"dropout": key})
  return jax.jit(fn) if model.scan_layers or model.remat else fn


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("cls,kwargs,expected_millions", [
    (ViViTFactorizedEncoder, dict(spatial_layers=12, temporal_layers=4), 115.1),
    (ViViTSpatioTemporal, dict(num_layers=12), 88.9),
])
@pytest.mark.parametrize("scan_layers", [False, True])
def test_vivit_b16x2_param_count_matches_paper(cls, kwargs, expected_millions,
                                               scan_layers):
  """ViViT-B/16x2, 32x224x224, 400 classes: paper Tab. 2 parameter counts."""
  model = cls(num_classes=400, scan_layers=scan_layers, **kwargs)
  video = jax.ShapeDtypeStruct((1, 32, 224, 224, 3), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), video)
  millions = _count(shapes["params"]) / 1e6
  assert abs(millions - expected_millions) / expected_millions < 0.01, millions


def test_b16x2_embedding_and_position_shapes():
  model = ViViTFactorizedEncoder(num_classes=400)
  video = jax.ShapeDtypeStruct((1, 32, 224, 224, 3), jnp.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), video)["params"]
  assert params["embedding"]["kernel"].shape == (2, 16, 16, 3, 768)
  assert params["spatial"]["pos_embedding"]["pos_embedding"].shape == (
      1, 197, 768)  # 14*14 patches + CLS
  assert params["temporal"]["pos_embedding"]["pos_embedding"].shape == (
      1, 17, 768)  # 16 tubelet steps + CLS
  assert params["head"]["kernel"].shape == (768, 400)


@pytest.mark.parametrize("name,config", [
    ("vivit_factorized", TINY_FE),
    ("vivit_factorized", dict(TINY_FE, classifier="gap")),
    ("vivit_factorized", dict(TINY_FE, temporal_layers=0)),
    ("vivit_spatiotemporal", TINY_ST),
    ("vivit_spatiotemporal", dict(TINY_ST, classifier="gap")),
])
def test_output_shape_through_registry(name, config):
  config = dict(config, name=name, patch_size=list(config["patch_size"]))
  model = build_model(config, num_classes=7)
  x = _clip()
  variables = _init(model, x)
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits))


def test_default_head_is_zero_initialised():
  config = dict(TINY_FE)
  config.pop("head_init_std")
  model = ViViTFactorizedEncoder(num_classes=5, **config)
  x = _clip()
  logits = model.apply(_init(model, x), x)
  np.testing.assert_array_equal(logits, np.zeros((2, 5), np.float32))


@pytest.mark.parametrize("cls,config", [(ViViTFactorizedEncoder, TINY_FE),
                                        (ViViTSpatioTemporal, TINY_ST)])
def test_einsum_and_xla_fused_attention_agree(cls, config):
  x = _clip()
  einsum_model = cls(num_classes=5, attention_impl="einsum", **config)
  fused_model = cls(num_classes=5, attention_impl="xla_fused", **config)
  variables = _init(einsum_model, x)
  a = einsum_model.apply(variables, x)
  b = fused_model.apply(variables, x)
  assert np.abs(a).max() > 1e-3  # non-trivial logits
  np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_attention_layer_matches_reference_formula():
  x = jax.random.normal(jax.random.key(3), (3, 6, 16))
  layer = MultiHeadSelfAttention(num_heads=2)
  variables = layer.init(jax.random.key(0), x)
  p = variables["params"]
  q, k, v = (jnp.einsum("bnd,dhe->bhne", x, p[n]["kernel"]) +
             p[n]["bias"][None, :, None, :]
             for n in ("query", "key", "value"))
  weights = jax.nn.softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8.0), axis=-1)
  expected = (jnp.einsum("bhne,hed->bnd", weights @ v, p["out"]["kernel"]) +
              p["out"]["bias"])
  for impl in ("einsum", "xla_fused"):
    out = MultiHeadSelfAttention(num_heads=2, attention_impl=impl).apply(
        variables, x)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def test_tubelet_embedding_equals_strided_valid_conv():
  x = jax.random.normal(jax.random.key(0), (2, 9, 20, 18, 3))  # remainders
  layer = TubeletEmbedding(hidden_size=8, patch_size=(2, 4, 4))
  variables = layer.init(jax.random.key(1), x)
  out = layer.apply(variables, x)
  p = variables["params"]
  expected = jax.lax.conv_general_dilated(
      x, p["kernel"], window_strides=(2, 4, 4), padding="VALID",
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC")) + p["bias"]
  assert out.shape == (2, 4, 5, 4, 8)
  np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def _stack_unrolled(tree):
  """Turns every {block_0..block_{L-1}} encoder into the scanned {layers}."""
  if not isinstance(tree, dict):
    return tree
  blocks = sorted((k for k in tree if k.startswith("block_")),
                  key=lambda k: int(k.split("_")[1]))
  out = {k: _stack_unrolled(v) for k, v in tree.items() if k not in blocks}
  if blocks:
    out["layers"] = jax.tree.map(lambda *leaves: jnp.stack(leaves),
                                 *[tree[k] for k in blocks])
  return out


@pytest.mark.parametrize("cls,config", [(ViViTFactorizedEncoder, TINY_FE),
                                        (ViViTSpatioTemporal, TINY_ST)])
def test_scan_layers_equals_unrolled_with_stacked_params(cls, config):
  x = _clip()
  unrolled = cls(num_classes=5, **config)
  scanned = cls(num_classes=5, scan_layers=True, **config)
  params = _init(unrolled, x)["params"]
  stacked = _stack_unrolled(jax.tree.map(np.asarray, params))
  scanned_shapes = jax.eval_shape(scanned.init, jax.random.key(0), x)["params"]
  assert (jax.tree.map(lambda a: a.shape, stacked) ==
          jax.tree.map(lambda a: a.shape, scanned_shapes))
  np.testing.assert_allclose(
      unrolled.apply({"params": params}, x),
      _jit_apply(scanned)({"params": stacked}, x), atol=1e-5, rtol=0)


def test_remat_keeps_params_and_outputs():
  x = _clip()
  model = ViViTFactorizedEncoder(num_classes=5, **TINY_FE)
  remat_model = ViViTFactorizedEncoder(num_classes=5, remat=True, **TINY_FE)
  variables = _init(model, x)
  assert (jax.tree.structure(variables) == jax.tree.structure(
      jax.eval_shape(remat_model.init, jax.random.key(1), x)))
  np.testing.assert_allclose(model.apply(variables, x),
                             _jit_apply(remat_model)(variables, x), atol=1e-6)


def test_vivit_logits_depend_on_frame_order():
  x = _clip()
  for model in (ViViTFactorizedEncoder(num_classes=5, **TINY_FE),
                ViViTSpatioTemporal(num_classes=5, **TINY_ST)):
    variables = _init(model, x)
    a = model.apply(variables, x)
    b = model.apply(variables, x[:, ::-1])
    assert np.abs(a - b).max() > 1e-4


def test_factorised_encoder_without_temporal_layers_ignores_tubelet_order():
  """temporal_layers=0 averages the per-step features: permuting whole
  tubelets (pairs of frames) cannot change the logits; one temporal layer with
  its position embedding makes them order-dependent (paper Tab. 3)."""
  x = _clip()
  # Tubelet time steps (0,1),(2,3),(4,5),(6,7) -> reorder as steps 2,0,3,1.
  perm = np.array([4, 5, 0, 1, 6, 7, 2, 3])
  no_time = ViViTFactorizedEncoder(num_classes=5,
                                   **dict(TINY_FE, temporal_layers=0))
  variables = _init(no_time, x)
  np.testing.assert_allclose(no_time.apply(variables, x),
                             no_time.apply(variables, x[:, perm]), atol=1e-5)
  with_time = ViViTFactorizedEncoder(num_classes=5,
                                     **dict(TINY_FE, temporal_layers=1))
  variables = _init(with_time, x)
  diff = with_time.apply(variables, x) - with_time.apply(variables, x[:, perm])
  assert np.abs(diff).max() > 1e-4


@pytest.mark.parametrize("scan_layers", [False, True])
def test_dropout_and_stochastic_depth_only_in_training(scan_layers):
  x = _clip()
  rates = dict(dropout_rate=0.2, attention_dropout_rate=0.2,
               stochastic_depth=0.3)
  plain = ViViTFactorizedEncoder(num_classes=5, scan_layers=scan_layers,
                                 **TINY_FE)
  noisy = ViViTFactorizedEncoder(num_classes=5, scan_layers=scan_layers,
                                 **rates, **TINY_FE)
  variables = _init(plain, x)
  reference = _jit_apply(plain)(variables, x)
  np.testing.assert_array_equal(_jit_apply(noisy)(variables, x), reference)
  noisy_train = _jit_apply(noisy, train=True)
  train = lambda seed: noisy_train(variables, x, jax.random.key(seed))
  np.testing.assert_array_equal(train(0), train(0))
  assert np.abs(train(0) - train(1)).max() > 1e-4
  assert np.abs(train(0) - reference).max() > 1e-4


def test_bfloat16_compute_returns_float32_logits():
  x = _clip()
  model = ViViTFactorizedEncoder(num_classes=5, dtype="bfloat16", **TINY_FE)
  shapes = jax.eval_shape(model.init, jax.random.key(1), x)
  assert all(leaf.dtype == jnp.float32
             for leaf in jax.tree.leaves(shapes["params"]))
  reference_model = ViViTFactorizedEncoder(num_classes=5, **TINY_FE)
  variables = _init(reference_model, x)
  logits = jax.jit(model.apply)(variables, x)
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, reference_model.apply(variables, x),
                             atol=0.05)


def test_invalid_options_raise():
  x = _clip()
  with pytest.raises(ValueError, match="classifier"):
    _init(ViViTFactorizedEncoder(num_classes=5, classifier="max", **TINY_FE), x)
  with pytest.raises(ValueError, match="attention_impl"):
    _init(ViViTSpatioTemporal(num_classes=5, attention_impl="flash",
                              **TINY_ST), x)
