"""TSM (Lin et al. 2019): the shift against numpy, shift placement, ResNet-50
parameter/GFLOP counts, and one train step of the small default config."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import one_train_step
from configs import tsm as tsm_config
from vidjax import costs, steps
from vidjax.errors import VidjaxError
from vidjax.layers.resnet_blocks import Bottleneck
from vidjax.layers.temporal_shift import temporal_shift
from vidjax.models.tsm import TSMResNet

# Small nets run once, one train step: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile: 43 -> 31 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile


def test_shift_moves_two_eighths_of_the_channels_one_frame():
  x = np.asarray(jax.random.normal(jax.random.key(0), (2, 5, 3, 3, 16)))
  expected = np.zeros_like(x)
  expected[:, :-1, ..., 0:2] = x[:, 1:, ..., 0:2]   # backward: t <- t + 1
  expected[:, 1:, ..., 2:4] = x[:, :-1, ..., 2:4]   # forward: t <- t - 1
  expected[..., 4:] = x[..., 4:]                    # 3/4 untouched
  got = np.asarray(temporal_shift(jnp.asarray(x), 8))
  np.testing.assert_array_equal(got, expected)
  assert not got[:, -1, ..., 0:2].any() and not got[:, 0, ..., 2:4].any()
  np.testing.assert_array_equal(got[..., 4:], x[..., 4:])


def _tsm_k400(**overrides):
  config = tsm_config.get_config("k400")
  config.model.update(overrides)
  return costs.configured_model(config)


def test_tsm_r50_params_and_macs_are_resnet50s():
  model, shape = _tsm_k400()
  assert shape == (8, 224, 224, 3)
  params = costs.count_params(model, shape)
  # torchvision's ResNet-50 has 25,557,032 with a 1000-class head.
  assert params == 25_557_032 - 2049 * 1000 + 2049 * 400 == 24_327_632
  assert params == pytest.approx(24.3e6, rel=0.01)
  assert costs.count_params(*_tsm_k400(shift_place="none")) == params
  assert costs.count_params(*_tsm_k400(shift_place="inplace")) == params
  assert costs.kernel_gmacs(model, shape) == pytest.approx(33.0, rel=0.05)
  # The shift costs no multiply-adds: 8 frames of ResNet-50 (4.09 G each).
  frame = TSMResNet(num_classes=400, shift_place="none")
  assert costs.kernel_gmacs(model, shape) == pytest.approx(
      8 * costs.kernel_gmacs(frame, (1, 224, 224, 3)), rel=1e-3)


X = jax.random.normal(jax.random.key(0), (2, 4, 5, 5, 16))


@pytest.mark.parametrize("place", ["residual", "inplace", "none"])
def test_shift_place_at_init(place):
  """Zero bn3 scale: the branch is 0, so the block is ReLU(identity path)."""
  block = Bottleneck(4, shift_place=place)   # 4 x 4 = 16: identity shortcut
  out = block.apply(block.init(jax.random.key(1), X, train=False), X,
                    train=False)
  identity = temporal_shift(X) if place == "inplace" else X
  np.testing.assert_array_equal(out, jax.nn.relu(identity))


@pytest.mark.parametrize("place,mixes", [("residual", True), ("none", False)])
def test_residual_shift_lets_the_branch_see_the_next_frame(place, mixes):
  block = Bottleneck(4, shift_place=place)
  variables = block.init(jax.random.key(1), X, train=False)
  variables = jax.tree.map(lambda a: a + 0.5, variables)  # nonzero bn3
  grad = jax.grad(lambda x: block.apply(variables, x, train=False)[
      :, 1].sum())(X)
  nxt = jnp.abs(grad[:, 2]).sum(axis=(0, 1, 2))   # per input channel
  assert bool((nxt[:2] > 0).any()) == mixes       # backward-shifted slice
  assert float(nxt[2:].max()) == 0.0              # nothing else moves


@pytest.mark.parametrize("zero_init,temporal", [(True, False),
                                                (False, True)])
def test_default_tsm_sees_frame_order_at_init(zero_init, temporal):
  """Issue #17: with every residual branch's last BN at zero (Goyal et al.)
  a freshly initialised TSM is exactly its 2D net (logits invariant to
  reversing the frames), and from scratch it stayed one (13% on motion,
  like shift_place=none). The default starts those scales at 1, as the
  torchvision ResNet of TSM's release: the shift is live from step 0."""
  config = tsm_config.get_config()
  assert config.model.get("zero_init_last_bn", False) is False
  model, shape = costs.configured_model(config)
  model = model.clone(zero_init_last_bn=zero_init)
  x = jax.random.normal(jax.random.key(2), (2,) + tuple(shape))
  variables = model.init(jax.random.key(3), x, train=False)
  logits = model.apply(variables, x, train=False)
  reversed_logits = model.apply(variables, x[:, ::-1], train=False)
  change = float(jnp.abs(logits - reversed_logits).max())
  assert (change > 1e-3) == temporal, change
  if not temporal:
    assert change < 1e-5


def test_default_config_train_step_has_finite_loss():
  config = tsm_config.get_config()
  assert tuple(steps.input_shape(config)) == (8, 32, 32, 3)
  loss = one_train_step(config)
  assert np.isfinite(loss) and loss == pytest.approx(np.log(8), rel=0.5)


def test_bad_shift_place_is_a_one_line_error():
  with pytest.raises(VidjaxError, match="config.model.shift_place"):
    TSMResNet(num_classes=2, shift_place="both").check_input((8, 32, 32, 3))
