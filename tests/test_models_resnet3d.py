"""R3D-18 / R(2+1)D-18 (Tran et al. 2018) and the (2+1)D conv unit."""
import jax
import jax.numpy as jnp
import pytest

from configs import r2plus1d as r2plus1d_config
from configs import r3d as r3d_config
from vidjax import costs
from vidjax.errors import VidjaxError
from vidjax.costs import kernel_gmacs
from vidjax.layers.conv3d import Conv2Plus1D, mid_channels
from vidjax.models.resnet3d import ResNet3D

# Small nets run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 56 -> 14 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile


def _n_params(tree):
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


def test_r3d18_param_count():
  model, shape = costs.configured_model(r3d_config.get_config("k400"))
  assert shape == (16, 112, 112, 3)
  assert costs.count_params(model, shape) == pytest.approx(33.4e6, rel=0.01)


def test_r2plus1d18_params_and_macs():
  config = r2plus1d_config.get_config("k400")
  model, shape = costs.configured_model(config)
  assert costs.count_params(model, shape) == pytest.approx(31.5e6, rel=0.01)
  assert kernel_gmacs(model, shape) == pytest.approx(40.5, rel=0.05)
  # Every conv with its own M_i: as many parameters as R3D-18.
  config.model.mid_rule = "paper"
  model, shape = costs.configured_model(config)
  assert costs.count_params(model, shape) == pytest.approx(33.4e6, rel=0.01)


@pytest.mark.parametrize("cin,cout", [(64, 64), (64, 128), (256, 512)])
def test_2plus1d_conv_matches_3d_conv_params(cin, cout):
  x = jax.ShapeDtypeStruct((1, 4, 8, 8, cin), jnp.float32)
  unit = jax.eval_shape(lambda x: Conv2Plus1D(cout).init(
      jax.random.key(0), x, train=False), x)
  convs = sum(v["kernel"].size for k, v in unit["params"].items()
              if k.endswith("conv"))
  assert convs == pytest.approx(27 * cin * cout, rel=0.01)
  assert mid_channels(64, 64) == 144 and mid_channels(256, 512) == 921


@pytest.mark.parametrize("config_module", [r3d_config, r2plus1d_config])
def test_small_default_configs_give_8_logits(config_module):
  model, shape = costs.configured_model(config_module.get_config())
  assert shape == (8, 32, 32, 3)
  x = jax.random.normal(jax.random.key(0), (2,) + shape)
  variables = jax.eval_shape(model.init, jax.random.key(1), x)
  eval_logits = jax.eval_shape(model.apply, variables, x)
  assert eval_logits.shape == (2, 8) and eval_logits.dtype == jnp.float32
  train_step = jax.jit(lambda x: model.apply(
      model.init(jax.random.key(1), x), x, train=True,
      rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]))
  logits, updates = train_step(x)
  assert logits.shape == (2, 8) and bool(jnp.isfinite(logits).all())
  assert "batch_stats" in updates


def test_bad_options_are_one_line_errors():
  with pytest.raises(VidjaxError, match="config.model.block"):
    ResNet3D(num_classes=2, block="4d").check_input((8, 32, 32, 3))
  with pytest.raises(VidjaxError, match="config.model.temporal_padding"):
    ResNet3D(num_classes=2, temporal_padding="wrap").check_input((8, 32, 32, 3))
