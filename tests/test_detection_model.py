"""AVA-style detectors (issue #21 C): the RoI head's masking, permutation
and pooling properties, SlowFast's unstrided dilated res5 (and its default
left bit-identical), a sharded train step that learns, and the paper
variants' parameter counts in tools.model_table."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import ava_slowfast, ava_videomae
from vidjax import sharding
from vidjax.errors import VidjaxError
from vidjax.models.slowfast import SlowFast
from vidjax.tasks.detection import model as det
from vidjax.tasks.detection import train_step
from vidjax.tasks.detection.head import AvaHead, detection_loss

# Compile-bound (tiny models, 40 steps at most): XLA optimisation level 0.
pytestmark = pytest.mark.fast_compile
K = 5
TINY_SF = dict(num_classes=K, alpha=4, beta_inv=4, widths=(4, 8, 16, 32),
               blocks_per_stage=(1, 1, 1, 1), stem_width=8, stem_pool=True,
               dropout_rate=0.0)


def _boxes():
  boxes = jnp.asarray([[[0.05, 0.05, 0.45, 0.45], [0.55, 0.5, 0.95, 0.95],
                        [0.1, 0.55, 0.4, 0.9], [0.3, 0.3, 0.7, 0.7]]] * 2,
                      jnp.float32)
  mask = jnp.asarray([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
  return boxes, mask


def _maps(seed=0):
  r = jax.random.split(jax.random.key(seed))
  return (jax.random.normal(r[0], (2, 2, 8, 8, 6)),
          jax.random.normal(r[1], (2, 4, 8, 8, 3)))


def _head(pooling="roi"):
  head = AvaHead(K, pooling=pooling, dropout_rate=0.0)
  boxes, mask = _boxes()
  params = jax.jit(lambda m, b, k: head.init(jax.random.key(1), m, b, k,
                                            (64, 64), train=False))(
                                                _maps(), boxes, mask)
  return jax.jit(lambda p, m, b, k: head.apply(p, m, b, k, (64, 64),
                                               train=False)), params


def test_padded_boxes_change_nothing_and_permuting_boxes_permutes_logits():
  head, params = _head()
  boxes, mask = _boxes()
  logits = head(params, _maps(), boxes, mask)
  assert logits.shape == (2, 4, K)
  assert np.all(np.asarray(logits)[~np.asarray(mask)] == 0)
  junk = boxes.at[0, 3].set(jnp.asarray([0.9, 0.0, 0.1, 0.6])).at[1, 2:].set(
      0.77)
  again = head(params, _maps(), junk, mask)
  np.testing.assert_array_equal(np.asarray(again), np.asarray(logits))
  labels = jax.random.bernoulli(jax.random.key(2), 0.3, (2, 4, K)).astype(
      jnp.float32)
  loss = detection_loss(logits, labels, mask)
  other = labels.at[0, 3].set(1.0).at[1, 2:].set(1.0)
  assert float(detection_loss(logits, other, mask)) == float(loss)
  real = np.asarray(mask)
  expect = np.asarray(optax.sigmoid_binary_cross_entropy(
      logits, labels)).mean(-1)[real].mean()
  assert float(loss) == pytest.approx(expect, rel=1e-6)
  perm = jnp.asarray([2, 0, 1, 3])
  permuted = head(params, _maps(), boxes[:, perm], mask[:, perm])
  np.testing.assert_allclose(np.asarray(permuted),
                             np.asarray(logits)[:, perm], atol=1e-6)


def test_roi_pooling_separates_boxes_global_pooling_does_not():
  boxes, mask = _boxes()
  head, params = _head("roi")
  roi = np.asarray(head(params, _maps(), boxes, mask))
  assert np.abs(roi[0, 0] - roi[0, 1]).max() > 1e-3
  head, params = _head("global")
  glob = np.asarray(head(params, _maps(), boxes, mask))
  np.testing.assert_allclose(glob[0, 0], glob[0, 1], atol=1e-6)
  np.testing.assert_allclose(glob[0, 0], glob[0, 2], atol=1e-6)
  assert np.abs(roi[0, 0] - glob[0, 0]).max() > 1e-3
  with pytest.raises(VidjaxError, match="config.model.pooling"):
    AvaHead(K, pooling="avg").init(jax.random.key(0), _maps(), boxes, mask,
                                   (64, 64), train=False)


def test_dilated_res5_keeps_stride_16_and_default_slowfast_is_unchanged():
  x = jnp.ones((1, 8, 64, 64, 3))
  shapes = {}
  for stride, dil in ((2, 1), (1, 2)):
    m = SlowFast(**TINY_SF, res5_spatial_stride=stride, res5_dilation=dil,
                 return_maps=True)
    slow, fast = jax.eval_shape(lambda x: m.init_with_output(
        jax.random.key(0), x)[0], x)
    shapes[stride] = (slow.shape, fast.shape)
  assert shapes[2] == ((1, 2, 2, 2, 128), (1, 8, 2, 2, 32))   # stride 32
  assert shapes[1] == ((1, 2, 4, 4, 128), (1, 8, 4, 4, 32))   # stride 16
  # The default network, values computed at the commit before these options
  # existed (d7a9a45): same parameter count, same logits.
  tiny = dict(TINY_SF, stem_pool=False)
  m = SlowFast(**tiny)
  x = jax.random.normal(jax.random.key(3), (2, 8, 32, 32, 3))
  v = jax.jit(lambda x: m.init(jax.random.key(0), x))(x)
  v = jax.tree_util.tree_map_with_path(
      lambda p, a: a + 0.1 if "scale" in jax.tree_util.keystr(p) else a, v)
  assert sum(a.size for a in jax.tree.leaves(v["params"])) == 56546
  np.testing.assert_allclose(np.asarray(jax.jit(m.apply)(v, x)), [
      [-1.41871, 0.334074, -0.904387, -0.920369, 0.245247],
      [-0.764133, 0.768126, 0.095205, -0.797233, -0.095738]], atol=2e-5)


def test_models_give_per_box_logits_and_count_one_box_without_boxes():
  boxes, mask = _boxes()
  x = jnp.zeros((2, 8, 64, 64, 3))
  for cfg in (ava_slowfast.get_config(), ava_videomae.get_config()):
    m = det.build_model(cfg.model, K)
    out, v = jax.eval_shape(lambda x: m.init_with_output(
        {"params": jax.random.key(0), "dropout": jax.random.key(0)}, x,
        boxes, mask), x)
    assert out.shape == (2, 4, K)
    alone = jax.eval_shape(lambda v, x: m.apply(v, x), v, x)
    assert alone.shape == (2, 1, K)
  with pytest.raises(VidjaxError, match="config.model.name"):
    det.build_model({"name": "slowfast"}, K)


def _toy_batch(rng, b=8, m=2):
  """Box content tells the label: class 0 bright square, class 1 dark,
  class 2 both halves (multi-label); boxes in random quadrants."""
  video = np.full((b, 4, 32, 32, 3), 128, np.uint8)
  boxes = np.zeros((b, m, 4), np.float32)
  labels = np.zeros((b, m, 3), np.float32)
  corners = [(0, 0), (16, 0), (0, 16), (16, 16)]
  for i in range(b):
    for j, q in enumerate(rng.permutation(4)[:m]):
      x0, y0 = corners[q]
      c = rng.integers(3)
      value = (255, 0)[c] if c < 2 else None
      if value is None:
        video[i, :, y0:y0 + 16, x0:x0 + 8] = 255
        video[i, :, y0:y0 + 16, x0 + 8:x0 + 16] = 0
        labels[i, j, :] = 1
      else:
        video[i, :, y0:y0 + 16, x0:x0 + 16] = value
        labels[i, j, c] = 1
      boxes[i, j] = np.asarray([x0, y0, x0 + 16, y0 + 16]) / 32
  return {"video": video, "boxes": boxes, "labels": labels,
          "box_mask": np.ones((b, m), bool)}


def test_sharded_donated_train_step_learns_box_labels():
  cfg = ava_slowfast.get_config()
  cfg.dataset.num_frames, cfg.dataset.crop_size = 4, 32
  cfg.model = {"name": "ava_single_frame", "widths": (8, 16),
               "stem_stride": 2, "dropout_rate": 0.0}
  schedule = optax.constant_schedule(1e-2)
  tx = optax.adam(schedule)
  model = det.build_model(cfg.model, 3)
  mesh = sharding.make_mesh()
  assert mesh.devices.size == 8
  state = train_step.create_state(model, tx, cfg, jax.random.key(0), 2)
  state = jax.device_put(state, NamedSharding(mesh, P()))
  step = jax.jit(train_step.make_detection_train_step(cfg, schedule),
                 donate_argnums=0)
  evaluate = jax.jit(train_step.make_detection_eval_step(cfg))
  rng = np.random.default_rng(0)
  data = NamedSharding(mesh, P("data"))
  losses = []
  for _ in range(40):
    batch = jax.device_put(_toy_batch(rng), data)
    state, metrics = step(state, batch)
    losses.append(metrics["train/loss"])
  losses = [float(v) for v in losses]
  assert int(state.step) == 40 and int(state.skipped_steps) == 0
  test = _toy_batch(np.random.default_rng(1))
  probs = np.asarray(evaluate(state, jax.device_put(test, data)))
  assert probs.shape == (8, 2, 3)
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
  assert np.mean((probs > 0.5) == (test["labels"] > 0.5)) >= 0.9


def test_model_table_counts_the_paper_variants():
  from tools import model_table
  rows = dict(model_table.config_rows())
  count = lambda n: model_table.row(n, rows[n], False)["params"]  # noqa
  # 80-class AVA heads on SlowFast R50 8x8 (2304 features) and ViT-B (768):
  # the Kinetics-400 models' counts less 320 head rows (+ biases).
  assert count("ava_slowfast:k400") == 33_828_888 == \
      count("slowfast:8x8") - 320 * 2305
  assert count("ava_videomae:k400_vit_b") == 86_288_720 == \
      count("videomae_finetune:k400_vit_b") - 320 * 769
  assert rows["ava_slowfast:k400"].model.res5_spatial_stride == 1
  assert rows["ava_slowfast:k400"].model.res5_dilation == 2
