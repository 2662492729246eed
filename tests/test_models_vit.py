"""Image ViT (Dosovitskiy et al. 2021) applied per frame."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vit as vit_configs
from vidjax import costs
from vidjax.errors import VidjaxError
from vidjax.layers.embedding import PatchEmbedding
from vidjax.models.vit import ViT

# Tiny models run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 14 -> 8 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile

TINY = dict(patch_size=8, hidden_size=16, num_heads=2, mlp_dim=32,
            num_layers=2, head_init_std=0.5)


@pytest.mark.parametrize("variant,expected,tolerance", [
    ("b16", 86_567_656, 0.0),   # ViT paper Tab. 1 "86M", timm/big_vision exact
    ("l16", 304_326_632, 0.0),  # Tab. 1 rounds it to "307M"
    ("s16", 22_050_664, 0.01),  # DeiT-S: 22M
])
def test_paper_parameter_counts(variant, expected, tolerance):
  config = vit_configs.get_config(variant)
  assert (config.dataset.name, config.dataset.num_frames,
          config.dataset.crop_size) == ("imagenet", 1, 224)
  model, shape = costs.configured_model(config)
  count = costs.count_params(model, shape)
  assert abs(count - expected) <= tolerance * expected, count


def test_b16_gflops():
  model, shape = costs.configured_model(vit_configs.get_config("b16"))
  gmacs = costs.kernel_gmacs(model, shape)
  assert abs(gmacs - 17.6) / 17.6 < 0.05, gmacs


def test_patch_embedding_equals_strided_valid_conv():
  x = jax.random.normal(jax.random.key(0), (2, 20, 18, 3))
  layer = PatchEmbedding(hidden_size=8, patch_size=(4, 4))
  variables = layer.init(jax.random.key(1), x)
  p = variables["params"]
  assert p["kernel"].shape == (4, 4, 3, 8)
  expected = jax.lax.conv_general_dilated(
      x, p["kernel"], window_strides=(4, 4), padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
  out = layer.apply(variables, x)
  assert out.shape == (2, 5, 4, 8)
  np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def test_clip_logits_are_the_mean_of_per_frame_logits():
  model = ViT(num_classes=5, **TINY)
  clip = jax.random.normal(jax.random.key(2), (2, 3, 16, 16, 3))
  variables = jax.jit(model.init)(jax.random.key(3), clip)
  apply = jax.jit(model.apply)
  logits = apply(variables, clip)
  assert logits.shape == (2, 5) and logits.dtype == jnp.float32
  per_frame = apply(variables, clip.reshape(6, 1, 16, 16, 3)).reshape(2, 3, 5)
  np.testing.assert_allclose(logits, per_frame.mean(1), atol=1e-5)
  assert np.abs(per_frame[:, 0] - per_frame[:, 1]).max() > 1e-3
  # Blind to frame order.
  np.testing.assert_allclose(apply(variables, clip[:, ::-1]), logits,
                             atol=1e-5)
  assert variables["params"]["transformer"]["pos_embedding"][
      "pos_embedding"].shape == (1, 5, 16)  # CLS + 2x2 patches
  gap = jax.eval_shape(ViT(num_classes=5, classifier="gap", **TINY).init,
                       jax.random.key(3), clip)["params"]["transformer"]
  assert "cls" not in gap and gap["pos_embedding"]["pos_embedding"].shape == (
      1, 4, 16)


def test_small_default_config_and_bad_input():
  config = vit_configs.get_config()
  assert config.dataset.config == "appearance"
  assert vit_configs.get_config("motion").dataset.config == "motion"
  model, shape = costs.configured_model(config)
  assert shape == (8, 32, 32, 3)
  with pytest.raises(VidjaxError, match="patch_size"):
    model.check_input((8, 36, 36, 3))
  with pytest.raises(ValueError, match="unknown config argument"):
    vit_configs.get_config("b32")
