"""Tests of the single-frame 2D CNN baseline (Karpathy et al. 2014)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.models.single_frame import SingleFrameCNN
from vidjax.registry import build_model

# A tiny net run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 14 -> 6 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile


def _clip(seed=0, shape=(2, 6, 16, 16, 3)):
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


@pytest.fixture(scope="module")
def small():
  """A tiny model, its variables after one train-mode pass (so the BN running
  stats are non-trivial), the init variables, and a jitted eval apply."""
  model = SingleFrameCNN(num_classes=5, widths=(8, 16), blocks_per_stage=1)
  x = _clip()
  init_vars = jax.jit(model.init)(jax.random.key(1), x)
  train_apply = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=["batch_stats"]))
  _, updates = train_apply(init_vars, x)
  variables = {"params": init_vars["params"], **updates}
  return model, init_vars, variables, jax.jit(model.apply)


def test_default_width_param_count_and_shapes():
  model = build_model({"name": "single_frame", "widths": [16, 32, 64]},
                      num_classes=10)
  x = jax.ShapeDtypeStruct((2, 8, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  n_params = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
  # stem 432 + BN 32; stage0 2*2304 + 2*32; stage1 4608+9216+512 + 3*64;
  # stage2 18432+36864+2048 + 3*128; head 640+10.
  assert n_params == 78042
  assert "batch_stats" in variables
  logits = jax.eval_shape(model.apply, variables, x)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32


def test_blind_to_frame_order(small):
  model, _, variables, apply = small
  x = _clip(seed=3)
  perm = np.array([3, 0, 5, 1, 4, 2])
  a = apply(variables, x)
  b = apply(variables, x[:, perm])
  assert a.shape == (2, 5) and np.abs(a).max() > 1e-3
  np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_clip_logits_are_mean_of_frame_logits(small):
  model, _, variables, apply = small
  x = _clip(seed=4)
  clip_logits = apply(variables, x)
  frames = x.reshape((-1, 1) + x.shape[2:])  # every frame as a 1-frame clip
  per_frame = apply(variables, frames).reshape(x.shape[0], x.shape[1], -1)
  np.testing.assert_allclose(clip_logits, per_frame.mean(axis=1),
                             atol=1e-5, rtol=0)


def test_batch_norm_statistics_update_only_in_training(small):
  model, init_vars, variables, apply = small
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(),
                       init_vars["batch_stats"], variables["batch_stats"])
  assert max(jax.tree.leaves(moved)) > 1e-3
  # Eval mode uses the stored stats: a clip's logits ignore its batch mates.
  x = _clip(seed=5)
  mates = jnp.concatenate([x[:1], 10.0 * x[1:]])
  np.testing.assert_allclose(apply(variables, x)[:1],
                             apply(variables, mates)[:1], atol=1e-5, rtol=0)
