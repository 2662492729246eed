"""VideoMAE: tube masking, visible-only encoder, loss, sizes, layer decay."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import videomae_finetune, videomae_pretrain
from vidjax import costs, optim, pretrain_step, steps
from vidjax.layers import masking
from vidjax.models.videomae import VideoMAEClassifier, VideoMAEPretrain

TINY = dict(num_classes=8, patch_size=(2, 4, 4), hidden_size=16, num_layers=2,
            num_heads=2, mlp_dim=32)
DECODER = dict(decoder_hidden_size=8, decoder_num_heads=2,
               decoder_num_layers=1, decoder_mlp_dim=16)


def _encoder_tokens(model, variables, x, rngs=None):
  """The output of the model's `encoder` submodule."""
  _, state = model.apply(variables, x, rngs=rngs, capture_intermediates=(
      lambda mdl, _: mdl.name == "encoder"))
  return state["intermediates"]["encoder"]["__call__"][0]


def _init(model, x, seed=1):
  """Random N(0, 0.2^2) variables of the model's shapes. (Tracing only: a
  real `init` compiles every initialiser, slow on a busy CPU.)"""
  shapes = jax.eval_shape(model.init, {"params": jax.random.PRNGKey(0)}, x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: jnp.asarray(rng.normal(0, 0.2, s.shape), s.dtype), shapes)


def test_tube_mask_same_positions_every_time_slot():
  steps_, rows, cols = 3, 4, 5
  mask = np.asarray(masking.tube_mask(jax.random.PRNGKey(0), 8,
                                      (steps_, rows, cols), 0.9))
  assert mask.shape == (8, 60) and mask.dtype == bool
  per_slot = mask.reshape(8, steps_, rows * cols)
  for t in range(1, steps_):
    np.testing.assert_array_equal(per_slot[:, t], per_slot[:, 0])
  # int(0.9 * 20) = 18 hidden in every slot of every clip (the release rounds
  # down: TubeMaskingGenerator's int(mask_ratio * num_patches_per_frame)).
  assert (per_slot.sum(-1) == 18).all()
  assert len({row.tobytes() for row in per_slot[:, 0]}) > 1  # per-clip masks
  assert masking.tube_mask_count(0.9, 196) == 176  # the paper's 14x14 grid


def test_random_mask_same_count_as_tubes_but_not_per_slot():
  """VideoMAE Tab. 1c's "random" arm: the tube mask's hidden count per clip
  (so the visible-only encoder sees as many tokens), drawn per token."""
  grid = (4, 4, 4)
  mask = np.asarray(masking.draw_mask("random", jax.random.PRNGKey(0), 64,
                                      grid, 0.75))
  assert mask.shape == (64, 64) and (mask.sum(-1) == 4 * 12).all()
  per_slot = mask.reshape(64, 4, 16)
  assert len(set(per_slot.sum(-1).ravel().tolist())) > 1  # not 12 per slot
  shown = (~per_slot).any(1)   # positions visible in some slot
  assert shown.sum(-1).mean() > 4 + 3  # a tube mask shows exactly 4
  np.testing.assert_array_equal(
      masking.draw_mask("tube", jax.random.PRNGKey(0), 2, grid, 0.75),
      masking.tube_mask(jax.random.PRNGKey(0), 2, grid, 0.75))
  with pytest.raises(ValueError, match="mask_type='block'"):
    masking.draw_mask("block", jax.random.PRNGKey(0), 2, grid, 0.75)
  model = VideoMAEPretrain(**TINY, **DECODER, mask_type="block")
  with pytest.raises(Exception, match="config.model.mask_type='block'"):
    model.check_input((4, 16, 16, 3))


def test_bad_mask_ratio_is_one_line():
  from vidjax.errors import VidjaxError
  model = VideoMAEPretrain(**TINY, **DECODER, mask_ratio=1.0)
  with pytest.raises(VidjaxError, match=r"config.model.mask_ratio=1.0 must "
                     r"be in \[0, 1\)"):
    model.check_input((4, 16, 16, 3))


def test_split_indices_ascending_visible_then_masked():
  mask = jnp.array([[True, False, True, False, False, True]])
  visible, hidden = masking.split_indices(mask, 3)
  np.testing.assert_array_equal(visible, [[1, 3, 4]])
  np.testing.assert_array_equal(hidden, [[0, 2, 5]])


def test_encoder_runs_on_visible_tokens_only():
  model = VideoMAEPretrain(**TINY, **DECODER, mask_ratio=0.75)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 16, 16, 3))
  variables = _init(model, x)
  tokens = _encoder_tokens(model, variables, x,
                           rngs={"masking": jax.random.PRNGKey(2)})
  # grid 2 x 4 x 4 = 32 tokens; 12 of 16 hidden per slot -> 2 x 4 visible.
  assert tokens.shape == (3, 8, 16)
  pred, target_idx = model.apply(variables, x,
                                 rngs={"masking": jax.random.PRNGKey(2)})
  assert pred.shape == (3, 24, 2 * 4 * 4 * 3)
  idx = np.asarray(target_idx)
  assert (np.diff(idx, axis=1) > 0).all()  # ascending, as the release's x[mask]
  np.testing.assert_array_equal(idx[:, 12:] - 16, idx[:, :12])  # tube
  # An explicit mask with the wrong count is refused.
  with pytest.raises(ValueError, match="expects 24"):
    model.apply(variables, x, mask=np.zeros((3, 32), bool))


def test_pretraining_cost_falls_with_the_mask_ratio():
  config = videomae_pretrain.get_config("k400_vit_b")
  model, shape = costs.configured_model(config)
  masked = costs.kernel_gmacs(model, shape)
  config.model.mask_ratio = 0.0
  model, shape = costs.configured_model(config)
  unmasked = costs.kernel_gmacs(model, shape)
  # 160 of 1568 tokens through the encoder (8 x 20 visible per 14x14 slot):
  # 35.4 vs 200.4 G multiply-adds with the 4-layer, 384-wide decoder.
  assert unmasked == pytest.approx(200.4, rel=0.01)
  assert masked == pytest.approx(35.4, rel=0.01)


def test_ratio_zero_encoder_equals_unmasked_encoder():
  pre = VideoMAEPretrain(**TINY, **DECODER, mask_ratio=0.0)
  cls = VideoMAEClassifier(**TINY, use_mean_pooling=False)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 16, 16, 3))
  pre_vars = _init(pre, x)
  cls_vars = _init(cls, x, seed=5)
  # Same parameter names under encoder/: copy the pretraining encoder over.
  cls_params = flax.core.unfreeze(cls_vars["params"])
  assert jax.tree.map(np.shape, cls_params["encoder"]) == jax.tree.map(
      np.shape, flax.core.unfreeze(pre_vars["params"]["encoder"]))
  cls_params["encoder"] = pre_vars["params"]["encoder"]
  masked = _encoder_tokens(pre, pre_vars, x,
                           rngs={"masking": jax.random.PRNGKey(3)})
  plain = _encoder_tokens(cls, {"params": cls_params}, x, {})
  assert masked.shape == plain.shape == (2, 32, 16)
  np.testing.assert_allclose(masked, plain, rtol=1e-5, atol=1e-5)
  _, target_idx = pre.apply(pre_vars, x)
  np.testing.assert_array_equal(target_idx, np.tile(np.arange(32), (2, 1)))


def _numpy_loss(video01, pred, hidden, patch):
  """Masked-token MSE vs per-tubelet normalised pixels, loop by loop."""
  t, h, w = patch
  b, frames, height, width, c = video01.shape
  rows, cols = height // h, width // w
  losses = []
  for i in range(b):
    errors = []
    for k, n in enumerate(hidden[i]):
      ti, rest = divmod(int(n), rows * cols)
      hi, wi = divmod(rest, cols)
      cube = video01[i, ti * t:(ti + 1) * t, hi * h:(hi + 1) * h,
                     wi * w:(wi + 1) * w].astype(np.float64)
      flat = cube.reshape(-1, c)
      norm = (flat - flat.mean(0)) / (flat.std(0, ddof=1) + 1e-6)
      target = norm.reshape(t, h, w, c).reshape(-1)
      errors.append((pred[i, k] - target) ** 2)
    losses.append(np.mean(errors))
  return np.array(losses)


def test_reconstruction_loss_equals_numpy():
  rng = np.random.default_rng(0)
  video = rng.integers(0, 256, (2, 4, 8, 8, 3), np.uint8)
  patch = (2, 4, 4)
  mask = np.asarray(masking.tube_mask(jax.random.PRNGKey(4), 2, (2, 2, 2),
                                      0.5))
  _, hidden = masking.split_indices(jnp.asarray(mask), 4)
  hidden = np.asarray(hidden)
  pred = rng.normal(size=(2, 4, 96)).astype(np.float32)
  got = pretrain_step.reconstruction_loss(
      jnp.asarray(pred), jnp.asarray(video / 255.0, jnp.float32),
      jnp.asarray(hidden), patch)
  want = _numpy_loss(video / 255.0, pred, hidden, patch)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert np.all(want > 0.5)  # not a degenerate comparison


def test_eval_step_loss_uses_model_predictions_and_raw_pixels():
  from configs import default
  config = default.get_config()
  config.task = "videomae_pretrain"
  config.dataset.num_frames, config.dataset.crop_size = 4, 8
  config.model.name = "videomae_pretrain"
  config.model.patch_size = (2, 4, 4)
  config.model.mask_ratio = 0.5
  model = VideoMAEPretrain(**dict(TINY, patch_size=(2, 4, 4)), **DECODER,
                           mask_ratio=0.5)
  tx = optim.make_optimizer(config.optimizer, lambda s: 1e-3)
  params = _init(model, jnp.zeros((1, 4, 8, 8, 3)))["params"]
  zero = jnp.zeros((), jnp.int32)
  state = steps.TrainState(
      step=zero, params=params, batch_stats={}, opt_state=tx.init(params),
      rng=jax.random.PRNGKey(0), skipped_steps=zero, nonfinite_streak=zero,
      apply_fn=model.apply, tx=tx)
  video = np.random.default_rng(1).integers(0, 256, (2, 4, 8, 8, 3), np.uint8)
  got = pretrain_step.make_pretrain_eval_step(config)(state, {"video": video})
  x = steps.normalize(video, config.dataset.mean, config.dataset.std)
  pred, hidden = model.apply({"params": params}, x,
                             rngs={"masking": jax.random.PRNGKey(0)})
  want = _numpy_loss(video / 255.0, np.asarray(pred), np.asarray(hidden),
                     (2, 4, 4))
  np.testing.assert_allclose(got, want, rtol=1e-4)


# Paper (Tong et al. 2022, Tab. of model sizes; K400 heads): params M, GFLOPs.
PAPER = {"k400_vit_s": (22, 57), "k400_vit_b": (87, 180),
         "k400_vit_l": (305, 597)}


@pytest.mark.parametrize("variant", sorted(PAPER))
def test_paper_sizes(variant):
  config = videomae_finetune.get_config(variant)
  model, shape = costs.configured_model(config)
  assert shape == (16, 224, 224, 3) and model.num_classes == 400
  params = costs.count_params(model, shape) / 1e6
  paper_params, paper_gflops = PAPER[variant]
  assert abs(params - paper_params) < 1.0, params  # S 22.03 B 86.53 L 304.27
  gflops = costs.kernel_gmacs(model, shape)
  assert abs(gflops / paper_gflops - 1) < 0.05, gflops  # 56.9 / 180.3 / 596.8


def test_layer_decay_multipliers():
  model = VideoMAEClassifier(**dict(TINY, num_layers=3))
  x = jnp.zeros((1, 4, 8, 8, 3))
  params = jax.tree.map(  # names and shapes are all the multipliers need
      lambda s: jnp.zeros(s.shape, s.dtype),
      jax.eval_shape(model.init, {"params": jax.random.PRNGKey(0)}, x))[
          "params"]
  flat = flax.traverse_util.flatten_dict(
      optim.layer_decay_scales(params, 0.5), sep="/")
  # decay^(L + 1 - id): embedding id 0, block i id i + 1, head/fc_norm L + 1.
  assert flat["encoder/embedding/kernel"] == 0.5 ** 4
  assert flat["encoder/transformer/block_0/mlp/fc1/kernel"] == 0.5 ** 3
  assert flat["encoder/transformer/block_2/attention/query/bias"] == 0.5
  assert flat["fc_norm/scale"] == flat["head/kernel"] == 1.0
  assert len(set(flat.values())) == 5

  # Through the optimizer: plain SGD, lr 1, gradients of ones.
  from configs import default
  opt = default.get_config().optimizer
  opt.name, opt.momentum, opt.layer_decay = "sgd", 0.0, 0.5
  tx = optim.make_optimizer(opt, optax.constant_schedule(1.0))
  ones = jax.tree.map(jnp.ones_like, params)
  updates, _ = jax.jit(tx.update)(ones, tx.init(params), params)
  got = flax.traverse_util.flatten_dict(updates, sep="/")
  for key, scale in flat.items():
    np.testing.assert_allclose(got[key], -scale, err_msg=key)
  opt.layer_decay = 0.0  # off: every update -1
  tx = optim.make_optimizer(opt, optax.constant_schedule(1.0))
  updates, _ = jax.jit(tx.update)(ones, tx.init(params), params)
  assert all(np.all(u == -1.0) for u in jax.tree.leaves(updates))

  # A scanned stack gets one multiplier per row of its layer axis.
  scanned = VideoMAEClassifier(**dict(TINY, num_layers=3), scan_layers=True)
  sp = jax.eval_shape(scanned.init, {"params": jax.random.PRNGKey(0)},
                      x)["params"]
  scales = optim.layer_decay_scales(sp, 0.5)
  row = scales["encoder"]["transformer"]["layers"]["mlp"]["fc1"]["kernel"]
  np.testing.assert_allclose(row.reshape(-1), [0.5 ** 3, 0.5 ** 2, 0.5])
