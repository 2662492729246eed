"""Transformer block variants: RMSNorm, SwiGLU, mixture of experts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.layers import transformer as tr
from vidjax.registry import build_model

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile


def _x(shape=(2, 5, 16), seed=0):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _count(tree):
  return sum(int(np.prod(np.shape(a))) for a in jax.tree.leaves(tree))


def _gelu(x):  # flax's default (tanh) GELU
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def test_rmsnorm_formula():
  x = np.asarray(_x()) * 3 + 1
  norm = tr.make_norm("rmsnorm", jnp.float32, "norm")
  gamma = np.linspace(0.5, 2.0, 16).astype(np.float32)
  out = norm.apply({"params": {"scale": gamma}}, x)
  expected = x / np.sqrt(1e-6 + np.mean(x ** 2, -1, keepdims=True)) * gamma
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  # No mean subtraction: it differs from LayerNorm on a non-centred input.
  layer = tr.make_norm("layernorm", jnp.float32, "norm")
  ln = layer.apply(layer.init(jax.random.key(0), x), x)
  assert np.abs(ln - x / np.sqrt(np.mean(x ** 2, -1, keepdims=True))).max() > .1


def test_swiglu_formula_and_param_count():
  x = _x()
  block = tr.SwiGluBlock(mlp_dim=40)
  params = block.init(jax.random.key(1), x, deterministic=True)["params"]
  assert _count(params) == 3 * 16 * 40  # no biases (Shazeer 2020)
  w1, w2, w3 = (np.asarray(params[n]["kernel"]) for n in ("w1", "w2", "w3"))
  a, b = np.asarray(x) @ w1, np.asarray(x) @ w2
  expected = (a / (1 + np.exp(-a)) * b) @ w3
  out = block.apply({"params": params}, x, deterministic=True)
  np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


def test_block_variants_from_a_model_config():
  """ViViT model 1 with rmsnorm + swiglu: the norms lose their biases and the
  MLPs become 3 D H bias-free matrices, nothing else changes."""
  base = dict(name="vivit_spatiotemporal", patch_size=[2, 8, 8],
              hidden_size=16, num_heads=2, mlp_dim=32, num_layers=2)
  x = jax.ShapeDtypeStruct((1, 4, 16, 16, 3), jnp.float32)
  count = lambda cfg: _count(jax.eval_shape(build_model(cfg, 5).init,
                                            jax.random.key(0), x)["params"])
  plain = count(base)
  variant = count(dict(base, norm="rmsnorm", mlp="swiglu"))
  d, h, layers = 16, 32, 2
  gelu_mlp, swiglu = 2 * d * h + h + d, 3 * d * h
  norm_biases = (2 * layers + 1) * d
  assert plain - variant == layers * (gelu_mlp - swiglu) + norm_biases
  shapes = jax.eval_shape(build_model(dict(base, norm="rmsnorm", mlp="moe",
                                           num_experts=3), 5).init,
                          jax.random.key(0), x)["params"]
  block = shapes["spatiotemporal"]["encoder"]["block_0"]
  assert set(block["norm1"]) == {"scale"}
  assert block["mlp"]["experts"]["fc1"]["kernel"].shape == (3, 16, 32)
  assert block["mlp"]["router"]["kernel"].shape == (16, 3)


def test_route_top_k_dispatches_each_token_to_exactly_k_experts():
  logits = jax.random.normal(jax.random.key(2), (64, 5))
  probs = jax.nn.softmax(logits, -1)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
  order = np.argsort(-np.asarray(probs), axis=-1)
  for k in (1, 2):
    combine, dispatch = tr.route_top_k(probs, k)
    np.testing.assert_array_equal(dispatch.sum(-1), k)
    chosen = np.zeros((64, 5))
    np.put_along_axis(chosen, order[:, :k], 1.0, axis=-1)
    np.testing.assert_array_equal(dispatch, chosen)
    np.testing.assert_array_equal(combine == 0, dispatch == 0)
    if k == 1:
      np.testing.assert_allclose(combine.sum(-1), probs.max(-1), atol=1e-6)
    else:
      np.testing.assert_allclose(combine.sum(-1), 1.0, atol=1e-6)


def test_balancing_loss_on_a_hand_built_routing():
  probs = jnp.array([[.9, .1], [.8, .2], [.3, .7], [.6, .4]])
  _, dispatch = tr.route_top_k(probs, 1)
  # f = (3/4, 1/4), P = (0.65, 0.35): 2 * (0.75*0.65 + 0.25*0.35) = 1.15.
  np.testing.assert_allclose(tr.balancing_loss(probs, dispatch, 1), 1.15,
                             rtol=1e-6)
  uniform = jnp.full((4, 4), 0.25)
  spread = jnp.eye(4)  # token i -> expert i
  np.testing.assert_allclose(tr.balancing_loss(uniform, spread, 1), 1.0)
  collapsed = jnp.tile(jnp.array([[1., 0, 0, 0]]), (4, 1))
  np.testing.assert_allclose(tr.balancing_loss(collapsed, collapsed, 1), 4.0)


def _expert_mlp(x, p, e):
  f1, f2 = p["experts"]["fc1"], p["experts"]["fc2"]
  h = _gelu(x @ np.asarray(f1["kernel"][e]) + np.asarray(f1["bias"][e]))
  return h @ np.asarray(f2["kernel"][e]) + np.asarray(f2["bias"][e])


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_output_equals_gated_sum_of_its_top_k_experts(top_k):
  x = _x((3, 4, 16))
  block = tr.MoeMlpBlock(mlp_dim=24, num_experts=4, top_k=top_k)
  params = block.init(jax.random.key(3), x, deterministic=True)["params"]
  # A larger router so that the gates are far from uniform.
  params["router"]["kernel"] = params["router"]["kernel"] * 50
  out, state = jax.jit(lambda p: block.apply(
      {"params": p}, x, deterministic=True, mutable=[tr.AUX_LOSS]))(params)
  tokens = np.asarray(x).reshape(-1, 16)
  probs = np.asarray(jax.nn.softmax(tokens @ np.asarray(
      params["router"]["kernel"]), -1))
  expected = np.zeros_like(tokens)
  for n, token in enumerate(tokens):
    top = np.argsort(-probs[n])[:top_k]
    gates = probs[n, top] / (probs[n, top].sum() if top_k > 1 else 1.0)
    for e, g in zip(top, gates):
      expected[n] += g * _expert_mlp(token, params, e)
  np.testing.assert_allclose(np.asarray(out).reshape(-1, 16), expected,
                             atol=1e-4, rtol=1e-4)
  dispatch = np.zeros_like(probs)
  np.put_along_axis(dispatch, np.argsort(-probs, -1)[:, :top_k], 1.0, -1)
  aux = 4 * np.sum(dispatch.mean(0) / top_k * probs.mean(0))
  np.testing.assert_allclose(tr.total_aux_loss(state), aux, rtol=1e-5)


def test_moe_with_one_expert_equals_the_dense_mlp():
  x = _x()
  moe = tr.MoeMlpBlock(mlp_dim=24, num_experts=1)
  params = moe.init(jax.random.key(4), x, deterministic=True)["params"]
  dense = {n: {k: v[0] for k, v in params["experts"][n].items()}
           for n in ("fc1", "fc2")}
  apply = lambda module, p: jax.jit(lambda p: module.apply(
      {"params": p}, x, deterministic=True))(p)
  np.testing.assert_allclose(apply(moe, params),
                             apply(tr.MlpBlock(24), dense), atol=1e-6, rtol=0)


def test_encoder_sows_one_balancing_loss_per_layer_scanned_or_not():
  x = _x()
  kwargs = dict(num_layers=2, num_heads=2, mlp_dim=24, mlp="moe",
                num_experts=3, moe_top_k=2)
  encoder = tr.Encoder(**kwargs)
  params = jax.jit(encoder.init)(jax.random.key(5), x)["params"]

  @jax.jit
  def run(p):
    def loss(p):
      out, state = encoder.apply({"params": p}, x, mutable=[tr.AUX_LOSS])
      return tr.total_aux_loss(state), (state, out)
    (total, (state, out)), grads = jax.value_and_grad(loss, has_aux=True)(p)
    return total, state, out, encoder.apply({"params": p}, x), grads

  total, state, out, plain_out, grads = run(params)
  leaves = jax.tree.leaves(state)
  assert sum(int(np.size(leaf)) for leaf in leaves) == 2  # one per layer
  assert 2 * 1.0 - 1e-5 <= total <= 2 * 3  # each in [1, E]
  router = [g for path, g in jax.tree_util.tree_leaves_with_path(grads)
            if "router" in jax.tree_util.keystr(path)]
  assert len(router) == 2 and all(np.abs(g).max() > 0 for g in router)
  # Without the mutable collection nothing is sown and the output is the same.
  np.testing.assert_allclose(out, plain_out, atol=1e-6)
  # nn.scan stacks the per-layer losses; same total with stacked params.
  scanned = tr.Encoder(scan_layers=True, **kwargs)
  stacked = {"layers": jax.tree.map(lambda *a: jnp.stack(a), params["block_0"],
                                    params["block_1"]), "norm": params["norm"]}
  _, scan_state = jax.jit(lambda p: scanned.apply(
      {"params": p}, x, mutable=[tr.AUX_LOSS]))(stacked)
  assert [np.shape(a) for a in jax.tree.leaves(scan_state)] == [(2,)]
  np.testing.assert_allclose(tr.total_aux_loss(scan_state), total, rtol=1e-5)


def test_invalid_variants_raise():
  x = _x()
  for kwargs, match in ((dict(norm="batchnorm"), "norm"),
                        (dict(mlp="relu"), "mlp"),
                        (dict(mlp="moe", moe_top_k=3), "moe_top_k")):
    with pytest.raises(ValueError, match=match):
      tr.Encoder(num_layers=1, num_heads=2, mlp_dim=8, **kwargs).init(
          jax.random.key(0), x)


def test_train_step_adds_the_sown_balancing_loss():
  """steps.make_train_step: loss = cross-entropy + aux_loss_weight * the
  balancing losses the MoE blocks sowed (computed here by a separate apply)."""
  import optax
  from vidjax import steps
  from configs import default
  config = default.get_config()
  config.dataset.num_frames, config.dataset.crop_size = 4, 16
  model = build_model(dict(name="vivit_spatiotemporal", patch_size=(2, 8, 8),
                           hidden_size=16, num_heads=2, mlp_dim=32,
                           num_layers=2, mlp="moe", num_experts=3), 5)
  state = steps.create_state(model, optax.sgd(0.0), config, jax.random.key(0))
  video = jax.random.randint(jax.random.key(1), (2, 4, 16, 16, 3), 0, 256)
  batch = {"video": video.astype(jnp.uint8), "label": jnp.array([1, 3])}
  x = steps.normalize(batch["video"], config.dataset.mean, config.dataset.std)
  rng = jax.random.fold_in(state.rng, 0)
  logits, sown = model.apply({"params": state.params}, x, train=True,
                             rngs={"dropout": rng}, mutable=[tr.AUX_LOSS])
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits, batch["label"]).mean()
  aux = tr.total_aux_loss(sown)
  assert float(aux) > 0.5  # 2 layers, each >= 1 (1 = perfectly balanced)
  losses = {}
  for weight in (0.0, 0.5):
    config.aux_loss_weight = weight
    step = steps.make_train_step(config, lambda s: 0.0)
    _, metrics = step(state, batch)
    losses[weight] = float(metrics["train/loss"])
  np.testing.assert_allclose(losses[0.0], ce, rtol=1e-5)
  np.testing.assert_allclose(losses[0.5], ce + 0.5 * aux, rtol=1e-5)
