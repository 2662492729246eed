"""Non-local block (Wang et al. 2018): identity at init, explicit-numpy parity,
softmax attention rows, and a receptive field that covers every position."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.layers.non_local import NonLocalBlock
from vidjax.layers.resnet_blocks import Bottleneck

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile

X = jax.random.normal(jax.random.key(0), (2, 3, 4, 4, 16))


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
def test_zero_bn_scale_makes_the_block_the_identity(mode):
  block = NonLocalBlock(mode=mode)
  variables = block.init(jax.random.key(1), X, train=False)
  assert variables["params"]["theta"]["kernel"].shape == (16, 8)  # C / 2
  np.testing.assert_array_equal(block.apply(variables, X, train=False), X)
  out, _ = block.apply(variables, X, train=True, mutable=["batch_stats"])
  np.testing.assert_array_equal(out, X)


def _numpy_non_local(params, x, mode, scale):
  p = jax.tree.map(np.asarray, params)
  dense = lambda a, name: a @ p[name]["kernel"] + p[name]["bias"]  # noqa
  b, c = x.shape[0], x.shape[-1]
  flat = np.asarray(x).reshape(b, -1, c)
  theta, phi, g = (dense(flat, n) for n in ("theta", "phi", "g"))
  logits = theta @ phi.transpose(0, 2, 1)
  if mode == "embedded_gaussian":
    logits = logits / np.sqrt(theta.shape[-1]) if scale else logits
    f = np.exp(logits - logits.max(-1, keepdims=True))
    attention = f / f.sum(-1, keepdims=True)
  else:
    attention = logits / logits.shape[-1]
  z = dense(attention @ g, "out") / np.sqrt(1 + 1e-5)  # BN, init stats
  return flat + z.reshape(flat.shape), attention


@pytest.mark.parametrize("mode,scale", [("embedded_gaussian", True),
                                        ("embedded_gaussian", False),
                                        ("dot_product", True)])
def test_matches_explicit_numpy(mode, scale):
  block = NonLocalBlock(mode=mode, sub_sample=False, scale_logits=scale,
                        bn_scale_init=jax.nn.initializers.ones)
  variables = block.init(jax.random.key(1), X, train=False)
  params = dict(variables["params"])
  for name in ("theta", "phi"):   # N(0, 0.01^2) init: scale up the logits
    params[name] = {**params[name], "kernel": params[name]["kernel"] * 30.0}
  out, state = block.apply({**variables, "params": params}, X, train=False,
                           mutable=["intermediates"])
  expected, attention = _numpy_non_local(params, X, mode, scale)
  np.testing.assert_allclose(out.reshape(expected.shape), expected,
                             rtol=2e-4, atol=2e-4)
  got = state["intermediates"]["attention"][0]
  np.testing.assert_allclose(got, attention, rtol=2e-4, atol=1e-6)
  if mode == "embedded_gaussian":
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    assert float(got.min()) >= 0.0 and float(got.max()) > 0.2  # not uniform


def test_subsampled_attention_rows_sum_to_one():
  block = NonLocalBlock()
  variables = block.init(jax.random.key(1), X, train=False)
  _, state = block.apply(variables, X, train=False, mutable=["intermediates"])
  attention = state["intermediates"]["attention"][0]
  assert attention.shape == (2, 3 * 4 * 4, 3 * 2 * 2)  # phi: 1x2x2 pooled
  np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)


def _input_gradient(module, variables, position):
  def out_at(x):
    return module.apply(variables, x, train=False)[(0,) + position].sum()
  return jnp.abs(jax.grad(out_at)(X)).sum(-1)   # (B, T, H, W)


def test_non_local_output_depends_on_every_position_a_conv_block_does_not():
  position = (1, 2, 1)   # (t, h, w) of batch element 0
  block = NonLocalBlock(sub_sample=False,
                        bn_scale_init=jax.nn.initializers.ones)
  grad = _input_gradient(block, block.init(jax.random.key(1), X, train=False),
                         position)
  assert bool((grad[0] > 0).all())      # every space-time position
  assert float(grad[1].max()) == 0.0    # never another clip
  # Subsampled: every 2x2 pooling window still reaches the output.
  pooled = NonLocalBlock(bn_scale_init=jax.nn.initializers.ones)
  grad = _input_gradient(pooled, pooled.init(jax.random.key(1), X,
                                             train=False), position)
  windows = grad[0].reshape(3, 2, 2, 2, 2).max(axis=(2, 4))
  assert bool((windows > 0).all())
  # A 2D bottleneck (1x1, 3x3, 1x1): other frames and pixels > 1 away: 0.
  conv = Bottleneck(4)
  variables = conv.init(jax.random.key(1), X, train=False)
  variables = jax.tree.map(lambda a: a + 0.5, variables)  # nonzero bn3 scale
  grad = _input_gradient(conv, variables, position)
  assert float(grad[0, 1, 1:, 0:3].sum()) > 0.0  # its 3x3 neighbourhood
  assert float(grad[0, 0].max()) == 0.0 and float(grad[0, 2].max()) == 0.0
  assert float(grad[0, 1, :, 3].max()) == 0.0    # two columns away


def test_bad_mode_is_a_one_line_error():
  with pytest.raises(VidjaxError, match="config.model.nonlocal_mode"):
    NonLocalBlock(mode="gaussian").init(jax.random.key(0), X, train=False)
