"""Initialising ViViT models 1 and 2 from an image ViT (Arnab et al. 2021,
Sec. 3.4): tubelet-kernel inflation, encoder mapping, position resizing."""
import jax
import numpy as np
import pytest

from conftest import tiny_config
from vidjax import checkpoint, init_adapt, train
from vidjax.errors import VidjaxError
from vidjax.layers.embedding import (PatchEmbedding, TubeletEmbedding,
                                     inflate_patch_kernel)
from vidjax.layers.posemb import resize_posemb

# One xdist worker runs this module: its module fixture is built once.
# Tiny runs of a few steps: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 59 -> 38 CPU-s), same tolerances.
pytestmark = [pytest.mark.xdist_group("vit_to_video"),
              pytest.mark.fast_compile]


@pytest.mark.parametrize("method,scale", [("central_frame", 1.0),
                                          ("average", 1.0), ("repeat", 3.0)])
def test_inflated_tubelet_on_a_static_clip_equals_the_patch_embedding(
    method, scale):
  frame = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
  patch = PatchEmbedding(hidden_size=6, patch_size=(4, 4))
  params = jax.tree.map(np.asarray,
                        patch.init(jax.random.key(1), frame)["params"])
  params["bias"] = np.linspace(-1, 1, 6).astype(np.float32)
  image_tokens = patch.apply({"params": params}, frame)
  kernel = inflate_patch_kernel(params["kernel"], 3, method)
  assert kernel.shape == (3, 4, 4, 3, 6)
  clip = np.repeat(np.asarray(frame)[:, None], 3, axis=1)  # static clip
  tubelet = TubeletEmbedding(hidden_size=6, patch_size=(3, 4, 4))
  video_tokens = tubelet.apply(
      {"params": {"kernel": kernel, "bias": params["bias"]}}, clip)
  assert video_tokens.shape == (2, 1, 2, 3, 6)
  expected = scale * (image_tokens - params["bias"]) + params["bias"]
  np.testing.assert_allclose(video_tokens[:, 0], expected, atol=1e-5, rtol=0)
  if method == "central_frame":  # only the centre slot sees the clip
    np.testing.assert_array_equal(kernel[[0, 2]], 0.0)
    np.testing.assert_array_equal(kernel[1], params["kernel"])


def test_inflate_rejects_unknown_method():
  with pytest.raises(ValueError, match="tubelet init"):
    inflate_patch_kernel(np.zeros((2, 2, 3, 4)), 2, "middle")


_WIDTH = {"model.hidden_size": 16, "model.num_heads": 2, "model.mlp_dim": 32,
          "model.head_init_std": 0.02}


@pytest.fixture(scope="module")
def vit_run(tiny_data_dir, tmp_path_factory):
  """A tiny image ViT trained for 2 steps through the CLI's train loop."""
  config = tiny_config(tiny_data_dir, "vit", **_WIDTH, **{
      "model.patch_size": 8, "model.num_layers": 1, "num_train_steps": 2,
      "eval_every_steps": 2, "checkpoint_every_steps": 2})
  workdir = str(tmp_path_factory.mktemp("vit"))
  train.train_and_evaluate(config, workdir)
  params, _, _ = checkpoint.load_pretrained(workdir)
  return workdir, params


def _init_video_model(tmp_path, data_dir, model, **overrides):
  """Runs the CLI path up to its first checkpoint (the initial state)."""
  config = tiny_config(data_dir, model, **_WIDTH, **overrides)
  workdir = str(tmp_path / model)
  train.train_and_evaluate(config, workdir, stop_after_steps=0)
  return checkpoint.load_pretrained(workdir)[0]


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_vivit_factorised_from_vit_central_frame(vit_run, tiny_data_dir,
                                                 tmp_path):
  vit_dir, vit = vit_run
  params = _init_video_model(
      tmp_path, tiny_data_dir, "vivit_factorized", **{
          "init_from.checkpoint_path": vit_dir,
          "init_from.tubelet_init": "central_frame"})
  spatial = params["spatial"]
  # The ViT's whole transformer (CLS, 2x2-grid position embedding, blocks,
  # final norm) becomes the spatial encoder; the temporal one is fresh.
  _assert_trees_equal(spatial, vit["transformer"])
  np.testing.assert_array_equal(
      params["embedding"]["kernel"],
      inflate_patch_kernel(vit["embedding"]["kernel"], 2, "central_frame"))
  np.testing.assert_array_equal(params["embedding"]["bias"],
                                vit["embedding"]["bias"])
  assert np.abs(params["embedding"]["kernel"][1]).max() > 0  # t = 2: slot 1


def test_vivit_spatiotemporal_from_vit_average_with_resized_posemb(
    vit_run, tiny_data_dir, tmp_path):
  vit_dir, vit = vit_run
  params = _init_video_model(
      tmp_path, tiny_data_dir, "vivit_spatiotemporal", **{
          "dataset.crop_size": 24, "model.patch_size": (2, 8, 8),
          "model.num_layers": 1, "init_from.checkpoint_path": vit_dir,
          "init_from.tubelet_init": "average"})
  st, src = params["spatiotemporal"], vit["transformer"]
  _assert_trees_equal(st["encoder"], src["encoder"])
  np.testing.assert_array_equal(st["cls"], src["cls"])
  # 1 + 2x2 image grid -> 1 + 2 steps x 3x3 (bilinear, tiled over time).
  pos = st["pos_embedding"]["pos_embedding"]
  assert pos.shape == (1, 1 + 2 * 9, 16)
  expected = resize_posemb(src["pos_embedding"]["pos_embedding"], (1, 2, 2),
                           (2, 3, 3), src_cls=1, dst_cls=1)
  np.testing.assert_allclose(pos, expected, atol=1e-6)
  np.testing.assert_allclose(
      params["embedding"]["kernel"],
      inflate_patch_kernel(vit["embedding"]["kernel"], 2, "average"),
      atol=1e-7)


def test_bad_init_from_option_names_the_key(tiny_data_dir):
  config = tiny_config(tiny_data_dir, "vivit_factorized",
                       **{"init_from.tubelet_init": "middle"})
  with pytest.raises(VidjaxError, match="init_from.tubelet_init"):
    init_adapt.adapt_pretrained(config, {}, {}, "")
  config = tiny_config(tiny_data_dir, "vivit_factorized",
                       **{"init_from.posemb_method": "nearest"})
  with pytest.raises(VidjaxError, match="init_from.posemb_method"):
    init_adapt.adapt_pretrained(config, {}, {}, "")
