"""Multi-head pooling attention of MViTv2 (Li et al. 2022) against references
written independently here (numpy loops, lax convolutions)."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.layers.pooling_attention import (
    MultiScaleBlock, PoolingAttention, decomposed_rel_pos_bias,
    depthwise_conv3d, max_pool3d, rel_pos_index, rel_pos_rows)

# Tiny layers run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 47 -> 18 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile


def _init(layer, x, thw):
  return jax.jit(lambda key, x: layer.init(key, x, thw))(jax.random.key(1), x)


def _apply(layer, variables, x, thw):
  """((out, pooled thw), intermediates) of `layer`, jit-compiled."""
  grids = []

  def run(variables, x):
    (out, new_thw), state = layer.apply(variables, x, thw,
                                        mutable=["intermediates"])
    grids.append(tuple(int(n) for n in new_thw))
    return out, state

  out, state = jax.jit(run)(variables, x)
  return (out, grids[0]), state


def _rng(seed, shape):
  return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _coords(thw):
  return np.array(list(np.ndindex(*thw)))   # row-major (t, h, w) of tokens


def _row(i, j, q_size, k_size):
  """Table row of query coordinate i, key coordinate j (the release's rule:
  the coarser side's coordinates are scaled by the size ratio)."""
  q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
  return int(np.floor(i * q_ratio - j * k_ratio + (k_size - 1) * k_ratio))


def _numpy_bias(q, q_thw, k_thw, tables):
  """bias[b, n, i, j] = q_i . (R^t + R^h + R^w)[p(i), p(j)], by loops."""
  batch, nq, heads, _ = q.shape
  qc, kc = _coords(q_thw), _coords(k_thw)
  out = np.zeros((batch, heads, nq, len(kc)))
  for i, pi in enumerate(qc):
    for j, pj in enumerate(kc):
      r = sum(table[_row(pi[a], pj[a], q_thw[a], k_thw[a])]
              for a, table in enumerate(tables))
      out[:, :, i, j] = np.einsum("bnd,d->bn", q[:, i], r)
  return out


def test_rel_pos_index_same_and_scaled_sizes():
  np.testing.assert_array_equal(rel_pos_index(3, 3),
                                [[2, 1, 0], [3, 2, 1], [4, 3, 2]])
  # 4 queries, 2 keys: key coordinates scaled by 2 -> distances i - 2j + 2.
  np.testing.assert_array_equal(rel_pos_index(4, 2),
                                [[2, 0], [3, 1], [4, 2], [5, 3]])
  np.testing.assert_array_equal(rel_pos_index(2, 4),
                                [[3, 2, 1, 0], [5, 4, 3, 2]])
  assert rel_pos_rows(4, 2) == 7 and rel_pos_rows(56, 7) == 111


@pytest.mark.parametrize("q_thw,k_thw", [((2, 3, 3), (2, 3, 3)),
                                         ((2, 4, 2), (1, 2, 2))])
def test_decomposed_rel_pos_bias_equals_numpy_loops(q_thw, k_thw):
  q = _rng(0, (2, int(np.prod(q_thw)), 2, 4))
  tables = [_rng(1 + a, (rel_pos_rows(q_thw[a], k_thw[a]), 4))
            for a in range(3)]
  bias = decomposed_rel_pos_bias(jnp.asarray(q), q_thw, k_thw, *tables)
  expected = _numpy_bias(q, q_thw, k_thw, tables)
  assert bias.shape == expected.shape
  assert np.abs(expected).max() > 1.0
  np.testing.assert_allclose(bias, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride", [(1, 1, 1), (1, 2, 2), (2, 3, 2)])
def test_depthwise_conv_impls_equal_grouped_lax_conv(stride):
  x = jnp.asarray(_rng(0, (2, 4, 7, 6, 5)))    # odd sizes: padding matters
  kernel = jnp.asarray(_rng(1, (3, 3, 3, 1, 5)))
  expected = jax.lax.conv_general_dilated(
      x, kernel, stride, [(1, 1)] * 3, feature_group_count=5,
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  loss = lambda impl: lambda x, k: jnp.sum(
      jnp.sin(depthwise_conv3d(x, k, stride, impl)))
  for impl in ("conv", "shifts"):
    np.testing.assert_allclose(depthwise_conv3d(x, kernel, stride, impl),
                               expected, atol=1e-5)
  grads = [jax.grad(loss(impl), argnums=(0, 1))(x, kernel)
           for impl in ("conv", "shifts")]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_max_pool3d_ignores_padding():
  x = jnp.asarray(_rng(0, (2, 3, 7, 6, 4))) - 10.0   # all negative
  out = max_pool3d(x, (1, 3, 3), (1, 2, 2))
  expected = jax.lax.reduce_window(
      x, -jnp.inf, jax.lax.max, (1, 1, 3, 3, 1), (1, 1, 2, 2, 1),
      [(0, 0), (0, 0), (1, 1), (1, 1), (0, 0)])
  assert out.shape == (2, 3, 4, 3, 4)
  np.testing.assert_array_equal(out, expected)


def _layer_norm(x, p, eps=1e-6):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _reference_attention(params, x, thw, heads, stride_q, stride_kv):
  """MViTv2 pooling attention with a class token, written out."""
  batch, tokens, _ = x.shape
  dim = params["proj"]["kernel"].shape[0]
  d = dim // heads
  qkv = (x @ params["qkv"]["kernel"] + params["qkv"]["bias"]).reshape(
      batch, tokens, 3, heads, d)
  pooled = []
  for i, (name, stride) in enumerate((("pool_q", stride_q),
                                      ("pool_k", stride_kv),
                                      ("pool_v", stride_kv))):
    t = qkv[:, :, i]
    grid = t[:, 1:].reshape(batch, *thw, heads, d)
    outs = [jax.lax.conv_general_dilated(
        grid[..., h, :], params[name]["conv"]["kernel"], stride,
        [(1, 1)] * 3, feature_group_count=d,
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC")) for h in range(heads)]
    new_thw = outs[0].shape[1:4]
    grid = np.stack([np.asarray(o).reshape(batch, -1, d) for o in outs], 2)
    t = np.concatenate([t[:, :1], grid], axis=1)
    pooled.append((_layer_norm(t, params[name]["norm"]), new_thw))
  (q, q_thw), (k, k_thw), (v, _) = pooled
  logits = np.einsum("bqnd,bknd->bnqk", q / np.sqrt(d), k)
  tables = [np.asarray(params[f"rel_pos_{a}"]) for a in "thw"]
  logits[:, :, 1:, 1:] += _numpy_bias(q[:, 1:], q_thw, k_thw, tables)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  out = np.einsum("bnqk,bknd->bqnd", weights, v)
  out[:, 1:] += q[:, 1:]                      # residual pooling
  out = out.reshape(batch, -1, dim)
  return out @ params["proj"]["kernel"] + params["proj"]["bias"], q_thw


def test_pooling_attention_matches_written_out_reference():
  thw, heads = (2, 4, 4), 2
  x = _rng(0, (2, 1 + 32, 12))
  layer = PoolingAttention(16, heads, stride_q=(1, 2, 2), stride_kv=(1, 2, 2))
  variables = _init(layer, jnp.asarray(x), thw)
  # Non-trivial norms and position tables.
  params = jax.tree.map(
      lambda p: p + 0.1 * _rng(7, p.shape), flax.core.unfreeze(
          variables["params"]))
  params = jax.tree.map(np.asarray, params)
  (out, q_thw), state = _apply(layer, {"params": params}, jnp.asarray(x),
                                thw)
  expected, expected_thw = _reference_attention(params, x, thw, heads,
                                                (1, 2, 2), (1, 2, 2))
  assert q_thw == expected_thw == (2, 2, 2)
  shapes = {k: v[0].shape for k, v in state["intermediates"].items()}
  assert shapes == {"q": (2, 9, 2, 8), "k": (2, 9, 2, 8), "v": (2, 9, 2, 8)}
  assert out.shape == (2, 9, 16)
  np.testing.assert_allclose(out, expected, atol=2e-4, rtol=1e-4)


def test_pooled_qkv_token_counts_follow_strides():
  thw = (4, 6, 6)
  x = jnp.zeros((1, 1 + 144, 8))
  layer = PoolingAttention(8, 1, stride_q=(1, 2, 2), stride_kv=(2, 3, 3))
  variables = _init(layer, x, thw)
  (_, q_thw), state = _apply(layer, variables, x, thw)
  inter = state["intermediates"]
  assert q_thw == (4, 3, 3)
  assert inter["q"][0].shape == (1, 1 + 4 * 3 * 3, 1, 8)
  assert inter["k"][0].shape == inter["v"][0].shape == (1, 1 + 2 * 2 * 2, 1, 8)
  p = variables["params"]   # tables: 2 max(q, k) - 1 rows per axis
  assert p["rel_pos_t"].shape == (7, 8) and p["rel_pos_h"].shape == (5, 8)
  assert p["pool_q"]["conv"]["kernel"].shape == (3, 3, 3, 1, 8)


@pytest.mark.parametrize("has_cls", [True, False])
def test_residual_pooling_adds_the_pooled_query(has_cls):
  """With V's projection zeroed, v = LayerNorm(0) = 0, so attention adds
  nothing: the output is proj(pooled q) (class-token row: proj bias only)
  with residual pooling, and the proj bias everywhere without it."""
  thw, s = (2, 4, 4), int(has_cls)
  x = jnp.asarray(_rng(0, (2, s + 32, 8)))
  kwargs = dict(stride_q=(1, 2, 2), stride_kv=(1, 2, 2), has_cls=has_cls)
  layer = PoolingAttention(8, 2, **kwargs)
  params = flax.core.unfreeze(_init(layer, x, thw)["params"])
  kernel = params["qkv"]["kernel"]
  params["qkv"]["kernel"] = kernel.at[:, 16:].set(0.0)   # v columns
  params["proj"]["bias"] = jnp.asarray(_rng(2, (8,)))
  (out, _), state = _apply(layer, {"params": params}, x, thw)
  q = state["intermediates"]["q"][0].reshape(2, -1, 8)
  expected = q @ params["proj"]["kernel"] + params["proj"]["bias"]
  if has_cls:
    expected = expected.at[:, 0].set(params["proj"]["bias"])
  np.testing.assert_allclose(out, expected, atol=1e-5)
  plain_layer = PoolingAttention(8, 2, residual_pooling=False, **kwargs)
  (plain, _), _ = _apply(plain_layer, {"params": params}, x, thw)
  np.testing.assert_allclose(plain, np.broadcast_to(params["proj"]["bias"],
                                                    plain.shape), atol=1e-6)


def test_block_skip_path_is_max_pool_and_projection():
  """Zeroing the attention's and the MLP's output layers leaves the skip
  path: max-pool 3x3 / stride 2 of Dense(LayerNorm(x)) (the width doubles);
  the class token passes unpooled."""
  dim_out = 16
  thw = (2, 4, 4)
  x = jnp.asarray(_rng(0, (2, 33, 8)))
  block = MultiScaleBlock(dim_out, 1, stride_q=(1, 2, 2), stride_kv=(1, 2, 2))
  params = flax.core.unfreeze(_init(block, x, thw)["params"])
  for layer in (params["attention"]["proj"], params["mlp"]["fc2"]):
    layer["kernel"] = jnp.zeros_like(layer["kernel"])
    layer["bias"] = jnp.zeros_like(layer["bias"])
  (out, new_thw), _ = _apply(block, {"params": params}, x, thw)
  skip = (_layer_norm(np.asarray(x), params["norm1"])
          @ params["proj"]["kernel"] + params["proj"]["bias"])
  grid = skip[:, 1:].reshape(2, 2, 4, 4, dim_out)
  pooled = jax.lax.reduce_window(
      grid, -np.inf, jax.lax.max, (1, 1, 3, 3, 1), (1, 1, 2, 2, 1),
      [(0, 0), (0, 0), (1, 1), (1, 1), (0, 0)]).reshape(2, 8, dim_out)
  assert new_thw == (2, 2, 2) and out.shape == (2, 9, dim_out)
  np.testing.assert_allclose(out[:, 0], skip[:, 0], atol=1e-5)
  np.testing.assert_allclose(out[:, 1:], pooled, atol=1e-5)
  assert params["attention"]["qkv"]["kernel"].shape == (8, 3 * dim_out)


def test_bad_grid_raises():
  layer = PoolingAttention(8, 1)
  with pytest.raises(ValueError, match="grid"):
    layer.init(jax.random.key(0), jnp.zeros((1, 10, 8)), (2, 2, 2))
  with pytest.raises(ValueError, match="pool_impl"):
    depthwise_conv3d(jnp.zeros((1, 2, 2, 2, 1)), jnp.zeros((3, 3, 3, 1, 1)),
                     (1, 1, 1), "fft")
  with pytest.raises(ValueError, match="divisible"):
    PoolingAttention(9, 2).init(jax.random.key(0), jnp.zeros((1, 9, 8)),
                                (2, 2, 2))
