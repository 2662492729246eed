"""C3D (Tran et al. 2015): paper-size params/GFLOPs, shapes, small config."""
import jax
import jax.numpy as jnp
import pytest

from configs import c3d as c3d_config
from vidjax import costs
from vidjax.costs import kernel_gmacs
from vidjax.models.c3d import C3D

# Small nets run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 14 -> 10 CPU-s).
pytestmark = pytest.mark.fast_compile


def test_paper_size_params_and_macs():
  model, shape = costs.configured_model(c3d_config.get_config("sports1m"))
  assert shape == (16, 112, 112, 3)
  # convs 27,655,936 + fc6 (8192 inputs) 33,558,528 + fc7 16,781,312 + head.
  assert costs.count_params(model, shape) == 79_991_015
  # The quoted 78.4M is the same net with a 101-class (UCF101) head.
  assert costs.count_params(C3D(num_classes=101), shape) == pytest.approx(
      78.4e6, rel=1e-3)
  assert kernel_gmacs(model, shape) == pytest.approx(38.5, rel=0.05)


def test_pool5_pads_to_4x4():
  variables = jax.eval_shape(C3D(num_classes=3).init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 16, 112, 112, 3),
                                                  jnp.float32))
  assert variables["params"]["fc6"]["kernel"].shape == (8192, 4096)


def test_small_default_config_builds_and_trains_a_step():
  config = c3d_config.get_config()
  model, shape = costs.configured_model(config)
  x = jax.random.normal(jax.random.key(0), (2,) + shape)
  # rbg keys: XLA:CPU compiles their random init several times faster.
  variables = jax.jit(model.init)(jax.random.key(1, impl="rbg"), x)
  logits = jax.jit(model.apply, static_argnames="train")(variables, x)
  assert logits.shape == (2, 8) and logits.dtype == jnp.float32
  # Jitted: one compile, not one per op of an eager call.
  logits, updates = jax.jit(lambda v, x, rng: model.apply(
      v, x, train=True, rngs={"dropout": rng}, mutable=["batch_stats"]))(
          variables, x, jax.random.key(2))
  assert logits.shape == (2, 8) and "batch_stats" in updates
  # Train mode updates every BatchNorm's running statistics.
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       variables["batch_stats"], updates["batch_stats"])
  assert len(jax.tree.leaves(moved)) >= 2 and min(jax.tree.leaves(moved)) > 0
