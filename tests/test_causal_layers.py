"""Causal video layers (vidjax/layers/causal.py): streaming chunk by chunk
equals the whole clip, the future has exactly zero gradient, and a ones-kernel
causal conv gives the hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.layers import causal as C

# Tiny layers run once per chunk: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 47 -> 27 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile

T = 13  # not divisible by 2, 3 or 5


def _stream(fn, x, chunk):
  """Concatenated outputs of fn(chunk, state) over successive chunks (jitted:
  one compilation per chunk length)."""
  fn, state, outs = jax.jit(fn), None, []
  for start in range(0, x.shape[1], chunk):
    y, state = fn(x[:, start:start + chunk], state)
    outs.append(y)
  return jnp.concatenate(outs, axis=1), state


def _conv(depthwise, kernel=(3, 3, 3), strides=(1, 1, 1), impl="frames",
          features=6):
  x = jax.random.normal(jax.random.key(0), (2, T, 8, 8, 4 if not depthwise
                                             else features))
  layer = C.CausalConv(features, kernel, strides, depthwise, True, impl)
  v = layer.init(jax.random.key(1), x[:, :1])
  return x, layer, v


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
@pytest.mark.parametrize("depthwise,kernel,strides", [
    (False, (3, 3, 3), (1, 1, 1)), (True, (5, 3, 3), (1, 2, 2)),
    (True, (3, 1, 1), (1, 1, 1))])
def test_causal_conv_streams_exactly(chunk, depthwise, kernel, strides):
  x, layer, v = _conv(depthwise, kernel, strides)
  whole, _ = layer.apply(v, x)
  streamed, state = _stream(lambda c, s: layer.apply(v, c, s), x, chunk)
  assert whole.shape[1] == T
  np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)
  # The buffer is the last kt - 1 input frames, whatever the chunking.
  np.testing.assert_array_equal(state["buffer"], x[:, T - kernel[0] + 1:])


@pytest.mark.parametrize("depthwise", [False, True])
def test_frames_and_conv_impls_agree(depthwise):
  x, layer, v = _conv(depthwise, (3, 3, 3), (1, 2, 2))
  ref, _ = layer.clone(impl="conv").apply(v, x)
  got, _ = layer.apply(v, x)
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


def test_causal_conv_is_left_padded_base_conv_is_centred():
  """Causal output t = the centred (base) conv's output at t - 1 for kt = 3
  (both pad with zeros: one frame of context moved to the left)."""
  x, layer, v = _conv(False)
  causal, _ = layer.apply(v, x)
  base, state = layer.clone(causal=False).apply(v, x)
  assert state == {}
  np.testing.assert_allclose(causal[:, 1:], base[:, :-1], atol=1e-5)
  assert not np.allclose(causal, base, atol=1e-3)


def test_golden_ones_kernel_causal_conv():
  """Ones input (1, 4, 2, 2, 3), ones 3x3x3 kernel, 3 -> 1 channels,
  spatial stride 2: the single output pixel's 3x3 window covers the whole
  2x2 frame, so output t = (frames in the window: 1, 2, 3, 3) x 4 pixels x
  3 channels = 12, 24, 36, 36 (the values of the release's layer test)."""
  x = jnp.ones((1, 4, 2, 2, 3))
  layer = C.CausalConv(1, (3, 3, 3), (1, 2, 2), impl="frames")
  v = {"params": {"kernel": jnp.ones((3, 3, 3, 3, 1))}}
  for impl in ("frames", "conv"):
    y, _ = layer.clone(impl=impl).apply(v, x)
    assert y.shape == (1, 4, 1, 1, 1)
    np.testing.assert_array_equal(y.reshape(-1), [12, 24, 36, 36])
    one_by_one, _ = _stream(lambda c, s: layer.clone(impl=impl).apply(
        v, c, s), x, 1)
    np.testing.assert_array_equal(one_by_one.reshape(-1), [12, 24, 36, 36])


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_cumulative_mean_streams_exactly(chunk):
  x = jax.random.normal(jax.random.key(2), (2, T, 4, 4, 5)) + 3.0
  whole, _ = C.cumulative_mean(x)
  streamed, state = _stream(C.cumulative_mean, x, chunk)
  np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)
  means = np.asarray(x).mean(axis=(2, 3))
  np.testing.assert_allclose(whole[:, 4], means[:, :5].mean(1), rtol=1e-6)
  assert int(state["count"]) == T
  np.testing.assert_allclose(state["sum"], means.sum(1), rtol=1e-5)
  base, _ = C.cumulative_mean(x, causal=False)
  np.testing.assert_allclose(base[:, 0], whole[:, -1], rtol=1e-6)


@pytest.mark.parametrize("squeeze", ["3d", "2plus3d"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_causal_squeeze_excite_streams_exactly(squeeze, chunk):
  x = jax.random.normal(jax.random.key(3), (2, T, 4, 4, 16))
  se = C.SqueezeExcite(8, squeeze)
  v = se.init(jax.random.key(4), x[:, :1])
  whole, _ = se.apply(v, x)
  streamed, _ = _stream(lambda c, s: se.apply(v, c, s), x, chunk)
  np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)
  # Frame 0's gate sees frame 0 only: the SE of the first frame alone.
  first, _ = se.apply(v, x[:, :1])
  np.testing.assert_allclose(whole[:, :1], first, atol=1e-6)


@pytest.mark.parametrize("layer", ["conv", "dwconv", "se"])
def test_future_frames_have_exactly_zero_gradient(layer):
  if layer == "se":
    x = jax.random.normal(jax.random.key(5), (1, 9, 4, 4, 8))
    mod = C.SqueezeExcite(8)
  else:
    x, mod, _ = _conv(layer == "dwconv", (5, 3, 3) if layer == "dwconv"
                      else (3, 3, 3))
    x = x[:, :9]
  v = mod.init(jax.random.key(6), x[:, :1])
  grad = jax.jit(lambda x, t: jax.grad(
      lambda x: mod.apply(v, x)[0][:, t].sum())(x))
  for t in (0, 4, 8):
    g = grad(x, t)
    per_frame = np.abs(np.asarray(g)).sum(axis=(0, 2, 3, 4))
    assert np.all(per_frame[t + 1:] == 0.0), (t, per_frame)
    assert per_frame[t] > 0 and np.count_nonzero(per_frame[:t + 1]) >= 1


def test_make_divisible_and_state_size_is_independent_of_length():
  assert [C.make_divisible(v) for v in (6, 20, 46, 96, 21.5)] == [
      8, 24, 48, 96, 24]
  x, layer, v = _conv(True, (5, 3, 3))
  _, short = layer.apply(v, x[:, :2])
  _, long = layer.apply(v, jnp.concatenate([x] * 8, axis=1))
  assert C.state_bytes(short) == C.state_bytes(long) == 2 * 4 * 8 * 8 * 6 * 4
