"""MoViNet (vidjax/models/movinet.py): the paper's counts, and a causal model
streamed chunk by chunk (lax.scan, stream buffers) giving exactly its
whole-clip outputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import movinet as movinet_config
from vidjax import costs
from vidjax.errors import VidjaxError
from vidjax.layers.causal import state_bytes
from vidjax.models.movinet import (SPECS, MoViNet, init_state, stream_apply,
                                   stream_logits)

# Compile-bound (tiny models, no training): XLA optimisation level 0.
pytestmark = pytest.mark.fast_compile
T = 13  # not divisible by 2, 3 or 5


@pytest.mark.parametrize("arg,shape,params_m,gmacs,tol", [
    # Published: A0 3.1M params (paper), 2.7 G (release README, "GFLOPs"
    # per video at 50x172^2: they are multiply-adds; ours 2.63).
    ("a0", (50, 172, 172, 3), 3.1, 2.7, 0.10),
    ("a0_base", (50, 172, 172, 3), 3.1, 2.7, 0.10),
    ("a1", (50, 172, 172, 3), 4.6, 6.0, 0.10),
])
def test_paper_counts(arg, shape, params_m, gmacs, tol):
  model, got_shape = costs.configured_model(movinet_config.get_config(arg))
  assert got_shape == shape and model.num_classes == 600
  assert costs.count_params(model, shape) / 1e6 == pytest.approx(
      params_m, rel=0.03)
  assert costs.kernel_gmacs(model, shape) == pytest.approx(gmacs, rel=tol)


def test_a2_counts_against_the_published_figures():
  """A2 at 50x224^2 (the input of both A2 rows of the release README):
  5.25M parameters and 11.61 G multiply-adds, 9% / 16% over the published
  4.8M (paper) and 10 G (README). Not a spec error: SPECS["a2"] equals the
  release's BLOCK_SPECS['a2'] (tensorflow/models official/projects/movinet/
  modeling/movinet.py; also Atze00/MoViNet-pytorch movinets/config.py, which
  loads the released weights), transcribed here, and the variables' size
  matches the released checkpoint (next test): the published A2 figures do
  not describe the released A2 (vidjax/models/movinet.py docstring)."""
  k13, k15, k33, k53 = (1, 3, 3), (1, 5, 5), (3, 3, 3), (5, 3, 3)
  release = (  # (base filters, expand filters, kernels); strided: block 0
      (16, (40, 40, 64), (k15, k33, k33)),
      (40, (96, 120, 96, 96, 120), (k33,) * 5),
      (72, (240, 160, 240, 192, 240), (k53,) + (k33,) * 4),
      (72, (240, 240, 240, 240, 144, 240), (k53, k33, k33, k33, k15, k33)),
      (144, (480, 384, 384, 480, 480, 480, 576),
       (k53, k15, k15, k15, k15, k33, k13)))
  spec = SPECS["a2"]
  assert (spec["stem"], spec["head"]) == (16, 640)
  for (width, blocks), (base, expand, kernels), stride in zip(
      spec["stages"], release, (2, 2, 2, 1, 2)):
    assert width == base
    assert tuple(b[0] for b in blocks) == expand
    assert tuple(b[1] for b in blocks) == kernels
    assert tuple(b[2] for b in blocks) == (stride,) + (1,) * (len(blocks) - 1)
  model, shape = costs.configured_model(movinet_config.get_config("a2"))
  assert shape == (50, 224, 224, 3)
  assert costs.count_params(model, shape) == 5_249_562
  assert costs.kernel_gmacs(model, shape) == pytest.approx(11.61, rel=0.005)


@pytest.mark.parametrize("arg,release_mb", [("a0", 12), ("a1", 18),
                                            ("a2", 20)])
def test_variables_match_the_release_checkpoint_sizes(arg, release_mb):
  """float32 params + BN statistics, in MiB, against the release README's
  "checkpoint (12 / 18 / 20 MB)" for A0 / A1 / A2: 11.93 / 18.00 / 20.15.
  A 4.8M-parameter A2 would be ~18.4 MiB (an "18 MB" checkpoint, A1's)."""
  model, shape = costs.configured_model(movinet_config.get_config(arg))
  x = jnp.zeros((1, 2) + shape[1:])
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  assert set(shapes) == {"params", "batch_stats"}
  size = sum(np.prod(a.shape) for a in jax.tree.leaves(shapes)) * 4 / 2**20
  assert size == pytest.approx(release_mb, abs=0.2)


def _tiny(impl="conv", **kw):
  """A tiny causal MoViNet with non-trivial BN statistics, block scales and
  classifier, so every layer matters. impl "conv" compiles fastest on CPU;
  "auto" (the CPU's per-tap forms) is streamed in the first test."""
  model = MoViNet(num_classes=5, variant="tiny", head_width=32, impl=impl,
                  **kw)
  x = jax.random.normal(jax.random.key(1), (2, T, 32, 32, 3))
  flat = traverse_util.flatten_dict(model.init(jax.random.key(0), x[:, :2]))
  rng, out = np.random.default_rng(3), {}
  for k, a in flat.items():
    a = np.asarray(a)
    if k[-1] == "rezero":
      a = a + 0.5
    elif k[-1] == "mean":
      a = a + 0.1 * rng.standard_normal(a.shape)
    elif k[-1] == "var":
      a = a * (0.5 + rng.uniform(size=a.shape))
    elif "classifier" in k:
      a = a * 100
    out[k] = jnp.asarray(a, jnp.float32)
  return model, traverse_util.unflatten_dict(out), x


STREAM = dict(conv_type="2plus1d", se_type="2plus3d", activation="hard_swish",
              gating="hard_sigmoid")


@pytest.mark.parametrize("kw,chunks", [
    (dict(STREAM, impl="auto"), (3,)), ({}, (1, 2, 3, 5))],
    ids=["2plus1d_auto", "3d_conv"])
def test_stream_equals_whole_clip_for_every_chunk_size(kw, chunks):
  model, v, x = _tiny(**kw)
  whole, _ = jax.jit(lambda v, x: stream_apply(model, v, x))(v, x)
  assert whole.shape == (2, T, 5) and float(jnp.abs(whole).max()) > 1.0
  # The training / evaluation forward pass: the last frame's prediction.
  np.testing.assert_allclose(model.apply(v, x), whole[:, -1], atol=1e-5)
  for chunk in chunks:
    ends, frames, _ = jax.jit(lambda v, x, c=chunk: stream_logits(
        model, v, x, c))(v, x)
    np.testing.assert_allclose(frames, whole, atol=1e-5, rtol=0)
    last = [min(T, (i + 1) * chunk) - 1 for i in range(-(-T // chunk))]
    np.testing.assert_allclose(ends, whole[:, last], atol=1e-5, rtol=0)
  # The prediction changes as frames arrive (not a constant).
  assert float(jnp.abs(whole[:, -1] - whole[:, 0]).max()) > 1e-2


def test_future_frames_have_exactly_zero_gradient():
  model, v, x = _tiny(**STREAM)
  x = x[:1, :7]
  grad = jax.jit(lambda x, t: jax.grad(
      lambda x: stream_apply(model, v, x)[0][:, t].sum())(x))
  for t in (0, 3, 6):
    per_frame = np.abs(np.asarray(grad(x, t))).sum(axis=(0, 2, 3, 4))
    assert np.all(per_frame[t + 1:] == 0.0), (t, per_frame)
    assert np.all(per_frame[:t + 1] > 0), (t, per_frame)


def test_state_is_small_fixed_and_the_runner_is_one_scan():
  model, v, x = _tiny()
  state = init_state(model, v, 2, 32, 32)
  _, _, after = stream_logits(model, v, jnp.concatenate([x] * 3, 1), 4)
  assert jax.tree.structure(after) == jax.tree.structure(state)
  assert jax.tree.map(jnp.shape, after) == jax.tree.map(jnp.shape, state)
  assert state_bytes(after) == state_bytes(state)
  assert int(after["head"]["count"]) == 3 * T
  # A longer video: the same program (one scan whose length grows), not an
  # unrolled loop: the jaxpr has as many equations for 24 and 96 frames.
  size = lambda t: len(jax.make_jaxpr(lambda v, x: stream_logits(  # noqa
      model, v, x, 4))(v, jnp.zeros((1, t, 32, 32, 3))).jaxpr.eqns)
  assert size(24) == size(96)
  run = jax.jit(lambda v, x: stream_logits(model, v, x, 4))
  run(v, x[:, :12])
  run(v, x[:, 1:])   # same shape, other frames: no new compilation
  assert run._cache_size() == 1  # noqa: SLF001


def test_base_model_is_centred_and_has_no_stream():
  model, v, x = _tiny()
  base = model.clone(causal=False)
  np.testing.assert_allclose(base.apply(v, x).shape, (2, 5))
  assert not np.allclose(base.apply(v, x), model.apply(v, x), atol=1e-3)
  with pytest.raises(VidjaxError, match="causal=False"):
    stream_apply(base, v, x)


@pytest.mark.parametrize("key,value", [("variant", "a9"), ("conv_type", "2d"),
                                       ("se_type", "none"), ("gating", "x")])
def test_bad_options_are_one_line_errors(key, value):
  model = MoViNet(num_classes=5, variant="tiny").clone(**{key: value})
  with pytest.raises(VidjaxError, match=f"config.model.{key}="):
    model.init(jax.random.key(0), jnp.zeros((1, 2, 32, 32, 3)))


def test_skip_pool_averages_in_bounds_pixels_only():
  import flax.linen as nn  # noqa: PLC0415
  from vidjax.models.movinet import _skip_pool  # noqa: PLC0415
  for h, w in ((8, 8), (7, 9), (1, 2)):
    x = jax.random.normal(jax.random.key(0), (1, 2, h, w, 3))
    ref = nn.avg_pool(x, (1, 3, 3), (1, 2, 2), ((0, 0), (1, 1), (1, 1)),
                      count_include_pad=False)
    np.testing.assert_allclose(_skip_pool(x), ref, atol=1e-6)


def test_stream_tool_matches_whole_clip_on_every_test_video(tiny_data_dir):
  """tools/stream.py on a (randomly initialised) tiny run: per-chunk lines,
  the last streamed logits equal to one whole-clip pass, on a frame array
  and on every test video of the tiny dataset."""
  from conftest import TINY_TEST_PER_CLASS, TINY_TRAIN_PER_CLASS  # noqa
  from tools import stream  # noqa: PLC0415
  from vidjax.data import datasets  # noqa: PLC0415
  from vidjax.viz.run import Run  # noqa: PLC0415
  config = movinet_config.get_config()
  config.dataset.data_dir = tiny_data_dir
  config.dataset.train_per_class = TINY_TRAIN_PER_CLASS
  config.dataset.test_per_class = TINY_TEST_PER_CLASS
  names = list(datasets.class_names(config.dataset))
  model, v, _ = _tiny(**STREAM)
  model = model.clone(num_classes=len(names))
  v = model.init(jax.random.key(0), jnp.zeros((1, 2, 32, 32, 3)))
  run = Run("", "", config, model, v, len(names), tuple(names))
  video = datasets.load(config.dataset).test[0]["video"]
  frames = stream.whole_video(run, video)
  assert frames.shape == (-(-len(video) // 2), 32, 32, 3)
  lines = []
  out = stream.stream_file(run, frames, 3, 2, 0.1, write=lines.append)
  assert len(out["rows"]) == len(lines) - 1 == -(-len(frames) // 3)
  assert out["rows"][-1]["frames"] == len(frames)
  assert out["max_abs_diff"] < 1e-5 and "same top-1" in lines[-1]
  check = stream.check_test_split(run, 5, write=lines.append)
  assert check["videos"] == 8 * TINY_TEST_PER_CLASS == check["top1_agree"]
  assert check["max_abs_diff"] < 1e-5
  assert check["stream_top1"] == check["clip_top1"]
