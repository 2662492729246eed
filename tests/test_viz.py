"""vidjax.viz and tools/visualize: saliency, Grad-CAM, attention rollout,
class-model visualisation, first-layer filter clips, VideoMAE
reconstructions, and the files the CLI writes."""
import os

import av
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from vidjax.errors import VidjaxError
from vidjax.layers.attention import ATTENTION_WEIGHTS, MultiHeadSelfAttention
from vidjax.models.c3d import C3D
from vidjax.models.single_frame import SingleFrameCNN
from vidjax.models.two_stream import TwoStream
from vidjax.models.videomae import VideoMAEPretrain
from vidjax.models.vivit import ViViTSpatioTemporal
from vidjax.viz import (classmodel, filters, gradcam, reconstruction, render,
                        rollout, saliency)

# Tiny models, a few gradient steps, a 2-step run: compile-bound, so XLA
# optimisation level 0 (conftest.fast_compile: 98 -> 43 CPU-s).
pytestmark = pytest.mark.fast_compile


def init(model, shape, seed=0):
  x = jnp.zeros((1,) + tuple(shape), jnp.float32)
  return jax.jit(lambda: model.init({"params": jax.random.PRNGKey(seed)}, x,
                                    train=False))()


def noise(shape, seed=1):
  return np.asarray(jax.random.normal(jax.random.PRNGKey(seed), shape))


# ---------------------------------------------------------------- saliency


class FrameZeroModel(nn.Module):
  """Reads frame 0 only: logits = Dense(frame 0 flattened)."""

  @nn.compact
  def __call__(self, x, *, train=False):
    return nn.Dense(3)(x[:, 0].reshape(x.shape[0], -1))


def test_saliency_is_zero_on_frames_the_model_never_reads():
  shape = (4, 6, 6, 3)
  model = FrameZeroModel()
  sal = saliency.saliency(model, init(model, shape), noise(shape), 1)
  assert sal.shape == (4, 6, 6)
  assert np.all(sal[1:] == 0.0)
  assert np.all(sal[0] > 0.0)  # a dense layer reads every pixel of frame 0
  # The spatial stream alone reads only the centre frame's RGB (T // 2).
  shape = (5, 16, 16, 3)
  model = TwoStream(num_classes=4, widths=(4, 8), streams="rgb")
  sal = saliency.saliency(model, init(model, shape), noise(shape), 2)
  assert np.all(np.delete(sal, 2, axis=0) == 0.0)
  assert sal[2].max() > 0.0 and (sal[2] > 0).mean() > 0.5


# ---------------------------------------------------------------- Grad-CAM


class Detectors(nn.Module):
  """Fixed 3x3x3 box filters: channel 0 = relu(local mean - 0.5) (bright),
  channel 1 = relu(0.5 - local mean) (dark)."""

  @nn.compact
  def __call__(self, x):
    box = nn.Conv(1, (3, 3, 3), padding="SAME", use_bias=False,
                  kernel_init=nn.initializers.constant(1 / 81.0))(x)
    return nn.relu(jnp.concatenate([box - 0.5, 0.5 - box], -1))


class BrightDarkNet(nn.Module):
  """Class 0 = mean bright response, class 1 = mean dark response."""

  @nn.compact
  def __call__(self, x, *, train=False):
    maps = Detectors(name="features")(x)
    return maps.mean(axis=(1, 2, 3))


def test_gradcam_peaks_on_the_planted_bright_square():
  frames, size = 3, 16
  rng = np.random.default_rng(0)
  clip = rng.uniform(0.0, 0.3, (frames, size, size, 3)).astype(np.float32)
  rows, cols = slice(3, 8), slice(9, 14)
  clip[:, rows, cols] = 1.0
  model = BrightDarkNet()
  variables = init(model, clip.shape)
  cam0, raw0, path = gradcam.gradcam(model, variables, clip, 0, "features")
  assert path == "features" and cam0.shape == raw0.shape == (3, 16, 16)
  for t in range(frames):
    y, x = np.unravel_index(np.argmax(cam0[t]), cam0[t].shape)
    assert rows.start <= y < rows.stop and cols.start <= x < cols.stop
  # d(mean)/dA = 1/(T h w) for channel 0 and 0 for channel 1, so the CAM is
  # exactly the bright detector's map divided by T h w.
  maps = model.apply(variables, clip[None], method=lambda m, v: Detectors(
      parent=None).apply({"params": variables["params"]["features"]}, v))
  np.testing.assert_allclose(raw0, np.asarray(maps[0, ..., 0]) / (3 * 256),
                             rtol=1e-5, atol=1e-9)
  # The dark class's map is zero on the square's interior; the default layer
  # (no pattern: the last module with a feature-map output) is the same.
  cam1, _, path = gradcam.gradcam(model, variables, clip, 1)
  assert path == "features"
  assert np.all(cam1[:, 4:7, 10:13] == 0.0) and cam1.max() > 0.0


def test_gradcam_default_layer_of_a_per_frame_cnn():
  shape = (4, 16, 16, 3)
  model = SingleFrameCNN(num_classes=5, widths=(8, 16))
  variables = init(model, shape)
  cam, raw, path = gradcam.gradcam(model, variables, noise(shape), 3)
  # The last stage's (T*B, h, w, C) map, time folded into the batch.
  assert path == "stage1_block0"
  assert raw.shape == (4, 4, 4) and cam.shape == (4, 16, 16)
  assert np.all(cam >= 0) and np.isfinite(cam).all()
  with pytest.raises(VidjaxError, match="--layer=nope"):
    gradcam.gradcam(model, variables, noise(shape), 3, "nope")


# ---------------------------------------------------------------- rollout


def test_rollout_of_identity_and_uniform_attention():
  n, heads = 5, 2
  eye = np.broadcast_to(np.eye(n), (1, heads, n, n))
  uniform = np.full((1, heads, n, n), 1.0 / n)
  np.testing.assert_allclose(rollout.rollout([eye]), np.eye(n)[None])
  np.testing.assert_allclose(rollout.rollout([eye] * 3), np.eye(n)[None])
  np.testing.assert_allclose(rollout.rollout([uniform], add_identity=False),
                             uniform[:, 0])
  # With the residual: (U + I) / 2 per layer, U idempotent, so L layers give
  # U + 2^-L (I - U).
  for layers in (1, 3):
    r = rollout.rollout([uniform] * layers)
    want = uniform[0, 0] + 0.5 ** layers * (np.eye(n) - uniform[0, 0])
    np.testing.assert_allclose(r[0], want, atol=1e-12)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-12)
  # Head averaging: one identity head and one uniform head.
  mixed = np.stack([np.eye(n), np.full((n, n), 1.0 / n)])[None]
  r = rollout.rollout([mixed], add_identity=False)
  np.testing.assert_allclose(r[0], 0.5 * np.eye(n) + 0.5 / n)


def test_sown_attention_weights_are_the_softmax_and_change_nothing():
  x = noise((2, 7, 8))
  mha = MultiHeadSelfAttention(num_heads=2)
  params = mha.init(jax.random.PRNGKey(0), x)
  plain = mha.apply(params, x)
  out, state = mha.apply(params, x, mutable=[ATTENTION_WEIGHTS])
  np.testing.assert_array_equal(np.asarray(out), np.asarray(plain))
  (weights,) = state[ATTENTION_WEIGHTS]["weights"]
  p = params["params"]
  q = jnp.einsum("bnd,dhk->bnhk", x, p["query"]["kernel"]) + p["query"]["bias"]
  k = jnp.einsum("bnd,dhk->bnhk", x, p["key"]["kernel"]) + p["key"]["bias"]
  want = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / 2.0, axis=-1)
  assert weights.shape == (2, 2, 7, 7)
  np.testing.assert_allclose(weights, want, rtol=1e-5, atol=1e-6)


def test_attention_map_of_vivit_model_1():
  shape = (4, 16, 16, 3)
  model = ViViTSpatioTemporal(num_classes=3, patch_size=(2, 8, 8),
                              hidden_size=16, num_heads=2, mlp_dim=32,
                              num_layers=2, head_init_std=0.02)
  variables = init(model, shape)
  clip = noise(shape)
  layers = rollout.attention_weights(model, variables, clip)
  assert list(layers) == ["spatiotemporal/encoder"]
  assert [w.shape for w in layers["spatiotemporal/encoder"]] == [
      (1, 2, 9, 9)] * 2  # CLS + 2x2x2 tubelets
  token_map = rollout.attention_map(model, variables, clip)
  want = rollout.rollout(layers["spatiotemporal/encoder"])[0, 0, 1:]
  np.testing.assert_allclose(token_map, want.reshape(2, 2, 2), rtol=1e-6)
  # The CLS row sums to 1 over all tokens; the patch part is below 1.
  assert 0.0 < token_map.sum() < 1.0
  heat = rollout.upsample(token_map, shape[:3])
  assert heat.shape == (4, 16, 16)
  assert heat[1, 8, 0] == token_map[0, 1, 0] and heat[3, 15, 15] == \
      token_map[1, 1, 1]


# ------------------------------------------------------ class-model images


def test_class_model_raises_the_score_and_slow_is_smoother():
  shape = (4, 16, 16, 5)  # RGB + flow: both streams' inputs are optimised
  model = TwoStream(num_classes=3, widths=(4, 8))
  variables = init(model, shape)
  common = dict(steps=40, learning_rate=0.05, temporal_channels=(3, 5),
                l2=1e-3, tv=1e-3)
  fast, slow = classmodel.maximize_class(model, variables, shape, 1,
                                         temporal=(0.0, 100.0), **common)
  for result in (fast, slow):
    assert result.scores[-1] > result.scores[0] + 0.5
    assert np.mean(np.diff(result.scores) > 0) > 0.8  # monotonic-ish
  x0 = 0.1 * np.asarray(jax.random.normal(jax.random.PRNGKey(0), shape))
  moved = np.abs(fast.clip - x0)
  assert moved[2, ..., :3].mean() > 0.1        # centre frame RGB (spatial)
  assert moved[:3, ..., 3:].mean() > 0.1       # flow of frames 0..T-2
  flow_change = lambda r: classmodel.temporal_change(r.clip[..., 3:])  # noqa
  assert flow_change(slow) < 0.5 * flow_change(fast)


# ------------------------------------------------------------- filters


def test_filter_clip_grid_and_first_layer():
  shape = (4, 16, 16, 3)
  model = C3D(num_classes=3, widths=(5, 4, 4, 4, 4, 4, 4, 4), fc_dim=8)
  variables = init(model, shape)
  path = filters.first_conv(model, variables, jnp.zeros(shape))
  assert path == "conv1a/conv"
  kernel = filters.get_kernel(variables["params"], path)
  assert kernel.shape == (3, 3, 3, 3, 5)
  grid = filters.filter_clip(kernel, scale=2)
  # 5 filters -> 2 rows x 3 columns of 6x6 tiles, 1 px gaps; 3 frames (kt).
  assert grid.shape == (3, 2 * 7 + 1, 3 * 7 + 1, 3) and grid.dtype == np.uint8
  w = kernel[..., 4]  # filter 4: row 1, column 1, scaled by its own range
  want = np.round((w - w.min()) / (w.max() - w.min()) * 255)
  np.testing.assert_array_equal(grid[:, 8:14:2, 8:14:2], want)
  # Order-independent: r3d's stem is found though "stage0_..." sorts first.
  from vidjax.models.resnet3d import ResNet3D
  r3d = ResNet3D(num_classes=3, widths=(4,), blocks_per_stage=(1,),
                 stem_width=4)
  abstract = jax.eval_shape(lambda: init(r3d, shape))
  assert filters.first_conv(r3d, abstract, jnp.zeros(shape)) == "stem_conv"


# ------------------------------------------------------- reconstruction


def test_videomae_reconstruction_keeps_visible_tubelets():
  shape = (4, 16, 16, 3)
  model = VideoMAEPretrain(num_classes=0, patch_size=(2, 4, 4),
                           hidden_size=16, num_layers=1, num_heads=2,
                           mlp_dim=32, decoder_hidden_size=8,
                           decoder_num_layers=1, decoder_num_heads=2,
                           decoder_mlp_dim=16, mask_ratio=0.75)
  variables = init(model, shape)
  video01 = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
  rec = reconstruction.reconstruct(model, variables, (video01 - 0.5) / 0.25,
                                   video01)
  assert rec.recon.shape == rec.masked.shape == shape
  assert rec.mask.shape == (32,) and rec.mask.sum() == 2 * 12
  hidden = rec.mask.reshape(2, 4, 4)[0]  # the same positions in every slot
  assert np.all(rec.mask.reshape(2, 4, 4)[1] == hidden)
  pix = np.repeat(np.repeat(hidden, 4, 0), 4, 1)  # (16, 16) pixels hidden
  np.testing.assert_array_equal(rec.recon[:, ~pix], video01[:, ~pix])
  np.testing.assert_array_equal(rec.masked[:, ~pix], video01[:, ~pix])
  assert np.all(rec.masked[:, pix] == reconstruction.GREY)
  assert not np.allclose(rec.recon[:, pix], video01[:, pix])


# ------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir, tmp_path_factory):
  from vidjax import train
  config = tiny_config(tiny_data_dir, model="c3d", num_train_steps=2,
                       eval_every_steps=100, checkpoint_every_steps=2,
                       num_test_clips=1)
  config.model.widths = (4, 4, 4, 4, 4, 4, 4, 4)
  config.model.fc_dim = 8
  config.model.batch_norm = True
  workdir = str(tmp_path_factory.mktemp("viz_run"))
  train.train_and_evaluate(config, workdir)
  return workdir


def test_visualize_cli_writes_the_files(tiny_run, tmp_path):
  from tools import visualize
  index = visualize.visualize(tiny_run, "1", class_index=2, steps=3,
                              scale=3)
  out = os.path.join(tiny_run, "viz")
  assert index["model"] == "c3d" and index["class"] == 2
  assert index["gradcam_layer"] == "conv5b"
  assert index["filters_layer"] == "conv1a/conv"
  assert sorted(index["files"]) == sorted([
      "saliency_test1_c2.gif", "saliency_test1_c2.png",
      "gradcam_test1_c2.gif", "gradcam_test1_c2.png", "filters.gif",
      "filters.png", "classmodel_c2_fast.gif", "classmodel_c2_slow.gif",
      "classmodel_c2.png"])
  cell = render.CELL_PX
  for name in index["files"]:
    image = Image.open(os.path.join(out, name))
    if name.startswith("filters"):
      # 4 filters of 3x3 at scale 3 (2x2 tiles of 9 px + 1 px gaps), kt = 3
      # slices; the GIF is not upscaled and has the progress bar.
      frames, size = 3, (2 * 10 + 1, 2 * 10 + 1 + render.BAR)
      if name.endswith(".png"):  # one row of the 3 slices
        frames, size = 1, (3 * cell, cell)
    elif name.endswith(".gif"):  # 4 frames of 16x16 at scale 3 + the bar
      frames, size = 4, (48, 48 + render.BAR)
    else:  # input / map / overlay rows (classmodel: fast / slow)
      frames, size = 1, (4 * cell, (2 if "classmodel" in name else 3) * cell)
    assert image.size == size, name
    assert getattr(image, "n_frames", 1) == frames, name
  # A video file: decoded with PyAV, cropped to the config's 16x16 input.
  path = str(tmp_path / "clip.mp4")
  with av.open(path, "w") as container:
    stream = container.add_stream("mpeg4", rate=10)
    stream.height = stream.width = 32
    stream.pix_fmt = "yuv420p"
    for t in range(12):
      frame = np.zeros((32, 32, 3), np.uint8)
      frame[8:16, 2 * t:2 * t + 8] = 255
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame)):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  index = visualize.visualize(tiny_run, path, ["saliency"], scale=2)
  assert index["files"] == [f"saliency_clip_c{index['class']}.gif",
                            f"saliency_clip_c{index['class']}.png"]
  image = Image.open(os.path.join(out, index["files"][0]))
  assert image.size == (32, 32 + render.BAR) and image.n_frames == 4
  for bad, match in ((dict(kinds=["rollout"]), "not available for model"),
                     (dict(video="99"), "test split has 16 videos"),
                     (dict(kinds=["nope"]), "--kind=nope")):
    args = dict(video="0") | bad
    with pytest.raises(VidjaxError, match=match):
      visualize.visualize(tiny_run, **args)
