"""SlowFast R50 (Feichtenhofer et al. 2019): published params/GFLOPs,
pathway and lateral shapes, laterals against numpy, one train step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import one_train_step
from configs import slowfast as slowfast_config
from vidjax import costs, steps
from vidjax.errors import VidjaxError
from vidjax.models.slowfast import FastToSlow, SlowFast

# Small nets run once, one train step: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile: 51 -> 38 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile


@pytest.mark.parametrize("variant,params,gmacs", [("4x16", 34.5e6, 36.1),
                                                  ("8x8", 34.6e6, 65.7)])
def test_paper_params_and_macs(variant, params, gmacs):
  model, shape = costs.configured_model(slowfast_config.get_config(variant))
  assert shape == (32, 224, 224, 3)
  count = costs.count_params(model, shape)
  assert count == pytest.approx(params, rel=0.01)
  if variant == "4x16":
    # mmaction2 lists 34,479,288: the same net without the BN after each
    # lateral conv (2 x (16 + 64 + 128 + 256) = 928 params; PySlowFast has it).
    assert count == 34_479_288 + 928
  # The published GFLOPs are per 256x256 test view (the paper's 3-crop
  # inference); at the 224 training crop they are (224/256)^2 of that.
  assert costs.kernel_gmacs(model, (32, 256, 256, 3)) == pytest.approx(
      gmacs, rel=0.05)


TINY = dict(num_classes=5, alpha=4, beta_inv=4, widths=(4, 8, 16, 32),
            blocks_per_stage=(1, 1, 1, 1), stem_width=8, stem_pool=False,
            dropout_rate=0.0)


def _intermediates(model, x):
  def run(x):
    variables = model.init(jax.random.key(0), x)
    return model.apply(variables, x, mutable=["intermediates"])[1]
  return jax.tree.map(lambda a: a.shape,
                      jax.eval_shape(run, x)["intermediates"])


@pytest.mark.parametrize("lateral", ["conv", "time_to_channel"])
def test_pathway_and_lateral_shapes(lateral):
  x = jax.ShapeDtypeStruct((2, 16, 32, 32, 3), jnp.float32)
  shapes = _intermediates(SlowFast(lateral=lateral, **TINY), x)
  # Slow: T / alpha = 4 frames, 4 x 32 channels; fast: 16 frames, 1/4 width.
  assert shapes["slow"] == ((2, 4, 2, 2, 128),)
  assert shapes["fast"] == ((2, 16, 2, 2, 32),)
  fast_channels = (2, 4, 8, 16)   # fast stem, then stages 0..2 outputs (4 x)
  for s, (size, c) in enumerate(zip((16, 16, 8, 4), fast_channels)):
    out = 2 * c if lateral == "conv" else 4 * c   # 2 beta C or alpha beta C
    assert shapes[f"lateral{s}_out"] == ((2, 4, size, size, out),)


def test_conv_lateral_is_a_time_strided_conv():
  fast = jax.random.normal(jax.random.key(0), (2, 16, 3, 3, 4))
  lateral = FastToSlow("conv", alpha=4, kernel=5)
  variables = lateral.init(jax.random.key(1), fast, train=False)
  w = np.asarray(variables["params"]["conv"]["kernel"])
  assert w.shape == (5, 1, 1, 4, 8)
  padded = np.pad(np.asarray(fast), ((0, 0), (2, 2), (0, 0), (0, 0), (0, 0)))
  expected = np.stack([sum(padded[:, 4 * t + k] @ w[k, 0, 0]
                           for k in range(5)) for t in range(4)], axis=1)
  expected = np.maximum(expected / np.sqrt(1 + 1e-5), 0)   # BN at init, ReLU
  got = lateral.apply(variables, fast, train=False)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_time_to_channel_and_time_sample_laterals():
  fast = jax.random.normal(jax.random.key(0), (2, 8, 3, 3, 5))
  got = FastToSlow("time_to_channel", alpha=4).apply({}, fast, train=False)
  expected = np.concatenate([np.asarray(fast)[:, a::4] for a in range(4)],
                            axis=-1)     # channel a * C + c <- frame 4t + a
  np.testing.assert_array_equal(got, expected)
  got = FastToSlow("time_sample", alpha=4).apply({}, fast, train=False)
  np.testing.assert_array_equal(got, np.asarray(fast)[:, ::4])


def test_slow_pathway_sees_every_alpha_th_frame():
  model = SlowFast(**TINY)
  x = jax.random.normal(jax.random.key(0), (1, 8, 16, 16, 3))
  variables = jax.jit(model.init)(jax.random.key(1, impl="rbg"), x)

  def stem_sums(x):
    _, state = model.apply(variables, x, capture_intermediates=True,
                           mutable=["intermediates"])
    return jnp.stack([state["intermediates"][name]["__call__"][0].sum()
                      for name in ("slow_stem_conv", "fast_stem_conv")])

  grads = jax.jit(jax.jacrev(stem_sums))(x)          # (2, 1, 8, 16, 16, 3)
  per_frame = jnp.abs(grads).sum(axis=(1, 3, 4, 5))  # (pathway, frame)
  np.testing.assert_array_equal(per_frame[0] > 0, [1, 0, 0, 0, 1, 0, 0, 0])
  assert bool((per_frame[1] > 0).all())


def test_default_config_train_step_has_finite_loss():
  config = slowfast_config.get_config()
  assert tuple(steps.input_shape(config)) == (8, 32, 32, 3)
  loss = one_train_step(config)
  assert np.isfinite(loss) and loss == pytest.approx(np.log(8), rel=0.5)


def test_bad_options_are_one_line_errors():
  with pytest.raises(VidjaxError, match="config.model.alpha"):
    SlowFast(**TINY).check_input((6, 32, 32, 3))
  with pytest.raises(VidjaxError, match="config.model.lateral"):
    SlowFast(**{**TINY, "lateral": "sum"}).check_input((8, 32, 32, 3))
