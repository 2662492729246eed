"""ViViT models 3 and 4 (Arnab et al. 2021, Sec. 3.3), their configs, and the
model-1 config: published sizes, zero-initialised temporal attention, and
factorised dot-product attention vs plain spatial / temporal attention."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax import costs
from vidjax.layers.attention import MultiHeadSelfAttention
from vidjax.layers.embedding import TubeletEmbedding
from vidjax.layers.factorized_attention import FactorisedDotProductAttention
from vidjax.layers.transformer import Encoder
from vidjax.models.vivit import ViViTSpatioTemporal
from vidjax.models.vivit_factorized_attention import (
    ViViTFactorisedDotProduct, ViViTFactorisedSelfAttention)
from vidjax.registry import build_model

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile

B16X2 = (32, 224, 224, 3)
TINY = dict(patch_size=(2, 8, 8), hidden_size=32, num_heads=4, mlp_dim=64,
            num_layers=2, head_init_std=0.02)
ONE_LAYER = dict(TINY, num_layers=1)


def _clip(seed=0, shape=(2, 8, 32, 32, 3)):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.mark.parametrize("cls,millions", [
    (ViViTFactorisedSelfAttention, 117.3), (ViViTFactorisedDotProduct, 88.9)])
def test_vivit_b16x2_param_count_matches_paper(cls, millions):
  count = costs.count_params(cls(num_classes=400), B16X2) / 1e6
  assert count == pytest.approx(millions, rel=0.01)


@pytest.mark.parametrize("cls,gflops", [
    (ViViTSpatioTemporal, 455.2), (ViViTFactorisedSelfAttention, 372.3),
    (ViViTFactorisedDotProduct, 277.1)])
def test_vivit_b16x2_gflops_match_paper(cls, gflops):
  """Multiply-adds per 32x224x224 view (paper Tab. 2)."""
  assert costs.forward_gmacs(cls(num_classes=400), B16X2) == pytest.approx(
      gflops, rel=0.05)


@pytest.mark.parametrize("name", ["vivit_factorized_self_attention",
                                  "vivit_factorized_dot_product"])
def test_output_shape_through_registry(name):
  config = dict(TINY, name=name, patch_size=list(TINY["patch_size"]))
  model = build_model(config, num_classes=7)
  x = _clip()
  logits = jax.jit(model.apply)(jax.jit(model.init)(jax.random.key(1), x), x)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits)) and np.abs(logits).max() > 1e-4


@pytest.mark.parametrize("stem", ["vivit_spatiotemporal",
                                  "vivit_factorized_self_attention",
                                  "vivit_factorized_dot_product"])
def test_small_default_config_builds_and_gives_8_logits(stem):
  config = importlib.import_module(f"configs.{stem}").get_config()
  assert config.dataset.name == "synthetic_motion"
  model, shape = costs.configured_model(config)
  model.check_input(shape)
  x = _clip(shape=(2,) + tuple(shape))
  logits = jax.jit(model.apply)(jax.jit(model.init)(jax.random.key(0), x), x)
  assert logits.shape == (2, 8) and np.all(np.isfinite(logits))


@pytest.mark.parametrize("stem,params", [
    ("vivit_spatiotemporal", 88.9e6),
    ("vivit_factorized_self_attention", 117.3e6),
    ("vivit_factorized_dot_product", 88.9e6)])
def test_k400_config_is_vivit_b16x2(stem, params):
  config = importlib.import_module(f"configs.{stem}").get_config("k400")
  assert config.dataset.name == "kinetics400"
  model, shape = costs.configured_model(config)
  assert shape == B16X2
  assert costs.count_params(model, shape) == pytest.approx(params, rel=0.01)


def _spatial_only_params(params):
  """Model-3 params without the temporal attention, in `Encoder` layout."""
  enc = params["encoder"]
  blocks = {k: {n: v for n, v in b.items() if not n.startswith("temporal")}
            for k, b in enc.items() if k.startswith("block_")}
  return dict(blocks, norm=enc["norm"])


def test_model3_at_init_is_a_spatial_only_model():
  """Zero-initialised temporal attention (paper Sec. 3.4): at init, model 3
  is a ViT run on every time step separately (same weights, no temporal
  sub-layers), then averaged."""
  model = ViViTFactorisedSelfAttention(num_classes=5, **TINY)
  x = _clip()
  params = jax.jit(model.init)(jax.random.key(1), x)["params"]
  for i in range(TINY["num_layers"]):
    out = params["encoder"][f"block_{i}"]["temporal_attention"]["out"]
    assert not np.any(out["kernel"]) and not np.any(out["bias"])
  tokens = TubeletEmbedding(32, (2, 8, 8)).apply(
      {"params": params["embedding"]}, x)
  b, t, h, w, d = tokens.shape
  tokens = tokens.reshape(b, t, h * w, d) + params["pos_embedding"][
      "pos_embedding"]
  encoder = Encoder(num_layers=TINY["num_layers"], num_heads=4, mlp_dim=64)
  frames = jax.jit(encoder.apply)({"params": _spatial_only_params(params)},
                                  tokens.reshape(b * t, h * w, d))
  expected = (frames.reshape(b, -1, d).mean(1) @ params["head"]["kernel"]
              + params["head"]["bias"])
  np.testing.assert_allclose(jax.jit(model.apply)({"params": params}, x),
                             expected,
                             atol=1e-5, rtol=0)
  # ... and the temporal attention is not stuck at zero: it gets gradients,
  # and after one step the temporal path changes the logits.
  apply = jax.jit(model.apply)
  grads = jax.jit(jax.grad(lambda p: model.apply({"params": p}, x).sum()))(
      params)
  g = grads["encoder"]["block_1"]["temporal_attention"]["out"]["kernel"]
  assert np.abs(g).max() > 1e-6
  stepped = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, p: p * 0 if "temporal_attention" in jax.tree_util.keystr(
          path) and "'out'" in jax.tree_util.keystr(path) else p, stepped)
  a = apply({"params": stepped}, x)
  assert np.abs(a - apply({"params": zeroed}, x)).max() > 1e-6


def _grid(seed=3, shape=(2, 4, 6, 16)):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.mark.parametrize("impl", ["einsum", "xla_fused"])
def test_dot_product_attention_all_spatial_or_all_temporal_heads(impl):
  """Model-4 attention with every head spatial is MHSA within each time step;
  with every head temporal it is MHSA across time at each position (same
  parameters: the names match MultiHeadSelfAttention's)."""
  x = _grid()  # (B, T, S, D)
  mhsa = MultiHeadSelfAttention(num_heads=4, attention_impl=impl)
  variables = mhsa.init(jax.random.key(0), x)
  spatial = FactorisedDotProductAttention(num_heads=4, spatial_heads=4,
                                          attention_impl=impl)
  temporal = FactorisedDotProductAttention(num_heads=4, spatial_heads=0,
                                           attention_impl=impl)
  np.testing.assert_allclose(spatial.apply(variables, x),
                             mhsa.apply(variables, x), atol=1e-5, rtol=0)
  np.testing.assert_allclose(
      temporal.apply(variables, x),
      jnp.swapaxes(mhsa.apply(variables, jnp.swapaxes(x, 1, 2)), 1, 2),
      atol=1e-5, rtol=0)


def test_dot_product_attention_half_heads_each_way():
  """Default split: heads 0-1 over space, 2-3 over time; the output is the
  output projection of the concatenated heads (paper Eq. 7-9)."""
  x = _grid()
  layer = FactorisedDotProductAttention(num_heads=4)
  p = layer.init(jax.random.key(0), x)["params"]
  q, k, v = (jnp.einsum("btsd,dhe->btshe", x, p[n]["kernel"]) + p[n]["bias"]
             for n in ("query", "key", "value"))

  def attend(q, k, v, eq_logits, eq_out):
    w = jax.nn.softmax(jnp.einsum(eq_logits, q, k) / np.sqrt(4.0), axis=-1)
    return jnp.einsum(eq_out, w, v)

  space = attend(q[..., :2, :], k[..., :2, :], v[..., :2, :],
                 "btshe,btrhe->bthsr", "bthsr,btrhe->btshe")
  time = attend(q[..., 2:, :], k[..., 2:, :], v[..., 2:, :],
                "btshe,brshe->bshtr", "bshtr,brshe->btshe")
  heads = jnp.concatenate([space, time], axis=-2)
  expected = (jnp.einsum("btshe,hed->btsd", heads, p["out"]["kernel"])
              + p["out"]["bias"])
  np.testing.assert_allclose(layer.apply({"params": p}, x), expected,
                             atol=1e-5, rtol=0)


def test_model4_params_are_model1s_without_cls():
  x = _clip()
  m1 = ViViTSpatioTemporal(num_classes=5, **{k: v for k, v in TINY.items()})
  m4 = ViViTFactorisedDotProduct(num_classes=5, **TINY)
  p1 = jax.eval_shape(m1.init, jax.random.key(0), x)["params"]
  p4 = jax.eval_shape(m4.init, jax.random.key(0), x)["params"]
  enc1 = jax.tree.map(lambda a: a.shape, p1["spatiotemporal"]["encoder"])
  enc4 = jax.tree.map(lambda a: a.shape, p4["encoder"])
  assert enc1 == enc4


@pytest.mark.parametrize("cls", [ViViTFactorisedSelfAttention,
                                 ViViTFactorisedDotProduct])
def test_dropout_only_in_training_and_remat_keeps_outputs(cls):
  x = _clip()
  rates = dict(dropout_rate=0.2, attention_dropout_rate=0.2,
               stochastic_depth=0.3)
  plain = cls(num_classes=5, **ONE_LAYER)
  noisy = cls(num_classes=5, **rates, **ONE_LAYER)
  variables = jax.jit(plain.init)(jax.random.key(1), x)
  reference = jax.jit(plain.apply)(variables, x)
  np.testing.assert_allclose(jax.jit(noisy.apply)(variables, x), reference,
                             atol=1e-6)
  noisy_train = jax.jit(lambda v, key: noisy.apply(
      v, x, train=True, rngs={"dropout": key}))
  train = lambda seed: noisy_train(variables, jax.random.key(seed))
  assert np.abs(train(0) - train(1)).max() > 1e-4
  remat = cls(num_classes=5, remat=True, **ONE_LAYER)
  np.testing.assert_allclose(jax.jit(remat.apply)(variables, x), reference,
                             atol=1e-5)
