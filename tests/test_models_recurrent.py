"""LRCN (Donahue et al. 2015) and the ConvGRU network (Ballas et al. 2016):
causality through gradients, cell equations, parameter counts, configs."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vidjax import costs
from vidjax.layers.recurrent import ConvGRUCell, ConvLSTMCell
from vidjax.models.recurrent import LRCN, ConvGRUNet

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile

T = 4


def _clip(shape=(1, T, 8, 8, 3), seed=0):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _step_logits(model, variables):
  def fn(x):
    _, state = model.apply(variables, x, mutable=["intermediates"])
    return state["intermediates"]["step_logits"][0]
  return fn


MODELS = {
    "lrcn": lambda **kw: LRCN(num_classes=3, widths=(4, 8), hidden_size=6,
                              **kw),
    "conv_gru": lambda **kw: ConvGRUNet(num_classes=3, widths=(4,),
                                        gru_features=(4,), **kw),
    "conv_gru2": lambda **kw: ConvGRUNet(num_classes=3, widths=(4,),
                                         gru_features=(4, 5), **kw),
    "conv_lstm": lambda **kw: ConvGRUNet(num_classes=3, widths=(4,),
                                         gru_features=(4,), cell="lstm",
                                         **kw),
}


@pytest.mark.parametrize("name", ["lrcn", "conv_gru2", "conv_lstm"])
def test_causal_and_remembers_the_first_frame(name):
  """Prediction at step t: zero gradient w.r.t. frames after t, nonzero
  w.r.t. frame 0 (the recurrence carries it) and frame t."""
  model = MODELS[name](scan=False)  # scan: see the parity test below
  x = _clip()
  variables = model.init(jax.random.key(1), x)
  steps = _step_logits(model, variables)
  assert steps(x).shape == (1, T, 3)
  jac = np.asarray(jax.jit(jax.jacrev(lambda x: steps(x)[0].sum(-1)))(x))
  seen = np.abs(jac).sum(axis=(1, 3, 4, 5)) != 0  # [t_out, t_in]
  np.testing.assert_array_equal(seen, np.tril(np.ones((T, T), bool)))


@pytest.mark.parametrize("name", ["lrcn", "conv_gru"])
def test_scan_equals_unrolled_loop_and_readouts(name):
  x = _clip(seed=2)
  scanned, unrolled = MODELS[name](scan=True), MODELS[name](scan=False)
  variables = scanned.init(jax.random.key(3), x)
  assert jax.tree.structure(variables) == jax.tree.structure(
      unrolled.init(jax.random.key(3), x))
  steps = _step_logits(scanned, variables)(x)
  np.testing.assert_allclose(_step_logits(unrolled, variables)(x), steps,
                             atol=1e-5, rtol=0)
  for readout, expected in (("mean", steps.mean(1)), ("last", steps[:, -1])):
    model = MODELS[name](readout=readout)
    np.testing.assert_allclose(model.apply(variables, x), expected,
                               atol=1e-6, rtol=0)


def test_lstm_param_count_formula():
  d_in, hidden = 8, 6  # widths[-1] = 8 pooled features per frame
  params = LRCN(num_classes=3, widths=(4, 8), hidden_size=hidden,
                frame_feature="pool").init(jax.random.key(0), _clip())[
                    "params"]
  n = sum(v.size for v in jax.tree.leaves(params["lstm"]))
  assert n == 4 * (d_in + hidden + 1) * hidden == 360


def test_lrcn_fc6_reads_the_whole_map_and_sees_where():
  """Donahue et al.'s LSTM input is fc6, a dense layer on the flattened conv
  map: its kernel spans h x w x D, and moving the content of a frame changes
  the frame vector, which a spatial mean (the "pool" option) cannot
  guarantee. Issue #17: the pooled LRCN stayed at chance on translations."""
  config = importlib.import_module("configs.lrcn").get_config()
  assert config.model.frame_feature == "fc6"
  model, shape = costs.configured_model(config)
  x = _clip((1,) + shape)
  params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  # 32x32 frames, stem stride 2 and two stride-2 stages: 4x4 maps of 64.
  assert params["fc6"]["kernel"].shape == (4 * 4 * 64, 256)
  assert params["lstm"]["ii"]["kernel"].shape[0] == 256
  small = LRCN(num_classes=3, widths=(4, 8), hidden_size=6, fc_dim=5,
               scan=False)
  frames = np.zeros((1, T, 16, 16, 3), np.float32)
  variables = small.init(jax.random.key(1), frames)
  frames[:, :, 2:6, 2:6] = 1.0                      # a square, top left
  moved = np.roll(frames, (8, 8), axis=(2, 3))      # the same, bottom right

  def vectors(model, clip):
    _, state = model.apply(variables, clip, capture_intermediates=True,
                           mutable=["intermediates"])
    return np.asarray(state["intermediates"]["fc6"]["__call__"][0])
  assert np.abs(vectors(small, frames) - vectors(small, moved)).max() > 1e-3


@pytest.mark.parametrize("cls,gates", [(ConvGRUCell, 3), (ConvLSTMCell, 4)])
def test_conv_cell_param_count_formula(cls, gates):
  c_in, hidden, kx, kh = 5, 7, 1, 3
  cell = cls(features=hidden, input_kernel=kx, hidden_kernel=kh)
  x = _clip((2, 6, 6, c_in))
  params = cell.init(jax.random.key(0), cell.zero_carry(x.shape), x)["params"]
  n = sum(v.size for v in jax.tree.leaves(params))
  assert n == gates * hidden * (kx * kx * c_in + kh * kh * hidden + 1)


def _conv_same(x, w):
  """Reference 'SAME' 2D cross-correlation in numpy. x (B,H,W,C), w (k,k,C,O)."""
  k = w.shape[0]
  p = k // 2
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  out = np.zeros(x.shape[:3] + (w.shape[-1],))
  for i in range(k):
    for j in range(k):
      out += np.einsum("bhwc,co->bhwo",
                       xp[:, i:i + x.shape[1], j:j + x.shape[2]], w[i, j])
  return out


def test_conv_gru_cell_matches_ballas_equations():
  """z = s(Wz*x + Uz*h), r = s(Wr*x + Ur*h), h~ = tanh(W*x + U*(r.h)),
  h' = (1 - z).h + z.h~, with an independent numpy convolution."""
  f = 3
  cell = ConvGRUCell(features=f)
  x = np.asarray(_clip((2, 5, 5, 4), seed=5), np.float64)
  h = np.asarray(_clip((2, 5, 5, f), seed=6), np.float64)
  params = cell.init(jax.random.key(7), jnp.asarray(h, jnp.float32),
                     jnp.asarray(x, jnp.float32))["params"]
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  wx = _conv_same(x, p["input_conv"]["kernel"]) + p["input_conv"]["bias"]
  uh = _conv_same(h, p["hidden_conv"]["kernel"])
  sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
  z = sig(wx[..., :f] + uh[..., :f])
  r = sig(wx[..., f:2 * f] + uh[..., f:])
  cand = np.tanh(wx[..., 2 * f:] + _conv_same(r * h, p["candidate_conv"][
      "kernel"]))
  expected = (1 - z) * h + z * cand
  new_h, out = cell.apply({"params": params}, jnp.asarray(h, jnp.float32),
                          jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(new_h, expected, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(new_h, out)


@pytest.mark.parametrize("name,train_step", [
    ("lrcn", True), ("conv_gru", True), ("lrcn:last", False),
    ("conv_gru:lstm", False)])
def test_default_configs_shapes_and_a_train_step(name, train_step):
  stem, _, arg = name.partition(":")
  config = importlib.import_module(f"configs.{stem}").get_config(arg)
  assert config.dataset.name == "synthetic_motion"
  model, shape = costs.configured_model(config)
  assert shape == (8, 32, 32, 3)
  x = _clip((2,) + shape)
  variables = jax.eval_shape(model.init, jax.random.key(1), x)
  logits = jax.eval_shape(model.apply, variables, x)
  assert logits.shape == (2, 8) and logits.dtype == jnp.float32
  if not train_step:
    return

  def train_pass(x):  # eager: cheaper than compiling it once (op cache)
    variables = model.init(jax.random.key(1), x)
    logits, updates = model.apply(variables, x, train=True,
                                  rngs={"dropout": jax.random.key(3)},
                                  mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.array([0, 5])).mean()
    return logits, loss
  logits, loss = train_pass(x)
  assert logits.shape == (2, 8) and np.isfinite(float(loss))
