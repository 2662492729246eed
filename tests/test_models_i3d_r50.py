"""I3D-R50 / NL-I3D-R50 (Wang et al. 2018): published params, the paper's
Tab. 1 shapes and NL placement, C2D -> I3D inflation, one train step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import one_train_step
from configs import i3d_r50 as i3d_config
from vidjax import costs, steps
from vidjax.errors import VidjaxError
from vidjax.models.inflate import inflate_params
from vidjax.models.resnet_video import I3DResNet

# Small nets run once (the train step is at level 0 already): XLA
# optimisation level 0 for the rest (conftest.fast_compile: 30 -> 27 CPU-s).
pytestmark = pytest.mark.fast_compile


def _nl_params(c):   # theta, phi, g: C -> C/2 (+bias); out C/2 -> C (+bias); BN
  return 3 * (c * c // 2 + c // 2) + (c // 2 * c + c) + 2 * c


def test_paper_params_shapes_and_nonlocal_placement():
  model, shape = costs.configured_model(i3d_config.get_config("nl_k400"))
  assert shape == (32, 224, 224, 3)
  nl_count = costs.count_params(model, shape)
  assert nl_count == pytest.approx(35.3e6, rel=0.01)   # NL I3D-R50
  base, _ = costs.configured_model(i3d_config.get_config("k400"))
  assert nl_count - costs.count_params(base, shape) == (
      2 * _nl_params(512) + 3 * _nl_params(1024))      # 2 in res3, 3 in res4
  x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)

  def run(x):
    variables = model.init(jax.random.key(0), x)
    _, state = model.apply(variables, x, capture_intermediates=True,
                           mutable=["intermediates"])
    return variables["params"], state["intermediates"]

  params, inter = jax.eval_shape(run, x)
  assert sorted(k for k in params if "nonlocal" in k) == [
      "stage1_nonlocal1", "stage1_nonlocal3", "stage2_nonlocal1",
      "stage2_nonlocal3", "stage2_nonlocal5"]
  out = lambda name: inter[name]["__call__"][0].shape  # noqa: E731
  assert params["stem_conv"]["kernel"].shape == (5, 7, 7, 3, 64)
  # Tab. 1 (32 frames in): res2 8x56x56, pool2 halves time, res5 4x7x7.
  assert out("stage0_block2") == (1, 8, 56, 56, 256)
  assert out("stage1_block3") == (1, 4, 28, 28, 512)
  assert out("stage3_block2") == (1, 4, 7, 7, 2048)
  # 3x1x1 in every other block (res2: all, res5: the middle one).
  kt = lambda n: params[n]["conv1"]["kernel"].shape[0]  # noqa: E731
  assert [kt(f"stage1_block{i}") for i in range(4)] == [3, 1, 3, 1]
  assert [kt(f"stage3_block{i}") for i in range(3)] == [1, 3, 1]


TINY = dict(num_classes=5, widths=(4, 8), blocks_per_stage=(1, 2),
            stem_width=8, stem_temporal_stride=1, pool1_temporal_stride=2,
            pool2_temporal_stride=2, dropout_rate=0.0)


def test_inflated_c2d_gives_the_same_logits_on_a_static_clip():
  """I3D inflation (Carreira & Zisserman 2017) of the C2D with the same names:
  2D kernels become kt x k x k kernels / kt; edge temporal padding makes a
  static clip's logits exactly the 2D network's."""
  c2d = I3DResNet(stem_temporal_kernel=1, temporal_kernels=((1,), (1,)),
                  **TINY)
  i3d = I3DResNet(stem_temporal_kernel=5, temporal_kernels=((3,), (3, 1)),
                  temporal_padding="edge", **TINY)
  clip = jnp.tile(jax.random.normal(jax.random.key(0), (2, 1, 16, 16, 3)),
                  (1, 8, 1, 1, 1))
  variables = jax.jit(c2d.init)(jax.random.key(1, impl="rbg"), clip)
  params = jax.tree.map(lambda a: a + 0.1, variables["params"])  # bn3 != 0
  _, stats = jax.jit(lambda p: c2d.apply({**variables, "params": p}, clip,
                                         train=True, mutable=["batch_stats"]))(
                                             params)
  c2d_vars = {"params": params, **stats}
  target = jax.eval_shape(i3d.init, jax.random.key(0), clip)["params"]
  assert target["stage1_block0"]["conv1"]["kernel"].shape == (3, 1, 1, 16, 8)
  assert params["stage1_block1"]["conv1"]["kernel"].shape == (1, 1, 32, 8)
  i3d_vars = {"params": inflate_params(params, target), **stats}
  expected = jax.jit(c2d.apply)(c2d_vars, clip)
  assert float(jnp.abs(expected).max()) > 0.05
  np.testing.assert_allclose(jax.jit(i3d.apply)(i3d_vars, clip), expected,
                             rtol=1e-4, atol=1e-5)


def test_default_config_train_step_has_finite_loss():
  config = i3d_config.get_config()
  assert tuple(steps.input_shape(config)) == (8, 32, 32, 3)
  assert config.model.nonlocal_blocks == ((), (0,), (), ())
  loss = one_train_step(config)
  assert np.isfinite(loss) and loss == pytest.approx(np.log(8), rel=0.5)


def test_bad_options_are_one_line_errors():
  with pytest.raises(VidjaxError, match="config.model.temporal_kernels"):
    I3DResNet(**{**TINY, "temporal_kernels": ((3,),)}).check_input(
        (8, 16, 16, 3))
  with pytest.raises(VidjaxError, match="config.dataset.num_frames"):
    I3DResNet(num_classes=2).check_input((4, 224, 224, 3))
