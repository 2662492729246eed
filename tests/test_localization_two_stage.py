"""Two-stage mode: 1D RoIAlign against hand computations, RoI sampling."""
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.tasks.localization import two_stage


def _features(values):
  return jnp.asarray(values, jnp.float32)[None, :, None]   # [1, L, 1]


def test_roi_align_hand_computation_and_gradient():
  f = _features([0, 1, 4, 9, 16, 25])          # f(i) = i^2
  n = jnp.array([6])
  roi = jnp.array([[[1.0, 2.0]]])
  got = two_stage.roi_align_1d(f, roi, n, bins=1, context_bins=0,
                               samples_per_bin=2)
  # samples at 1.25 and 1.75: 1 + 0.25 * 3 = 1.75, 1 + 0.75 * 3 = 3.25
  assert got.shape == (1, 1, 1, 1)
  assert np.isclose(float(got[0, 0, 0, 0]), 2.5)
  grad = jax.grad(lambda x: two_stage.roi_align_1d(
      x, roi, n, 1, 0, samples_per_bin=2).sum())(f)
  np.testing.assert_allclose(grad[0, :, 0], [0, 0.5, 0.5, 0, 0, 0])
  # two bins of one sample each: points 1.25 and 1.75
  two = two_stage.roi_align_1d(f, roi, n, bins=2, context_bins=0,
                               samples_per_bin=1)
  np.testing.assert_allclose(two[0, 0, :, 0], [1.75, 3.25])


def test_roi_align_context_and_clamping():
  f = _features([0, 1, 4, 9, 16, 25])
  roi = jnp.array([[[2.0, 3.0]]])
  got = two_stage.roi_align_1d(f, roi, jnp.array([6]), bins=1,
                               context_bins=1, context=0.5,
                               samples_per_bin=2)
  # left context [1.5, 2]: 1.625 -> 1 + .625*3, 1.875 -> 1 + .875*3
  left = (1 + 0.625 * 3 + 1 + 0.875 * 3) / 2
  inside = (4 + 0.25 * 5 + 4 + 0.75 * 5) / 2
  right = (9 + 0.125 * 7 + 9 + 0.375 * 7) / 2   # [3, 3.5]
  np.testing.assert_allclose(got[0, 0, :, 0], [left, inside, right])
  # a RoI past the video's 4 real steps reads step 3 (f = 9), not padding
  end = two_stage.roi_align_1d(f, jnp.array([[[3.0, 5.0]]]), jnp.array([4]),
                               bins=1, context_bins=0, samples_per_bin=2)
  assert np.isclose(float(end[0, 0, 0, 0]), 9.0)


def test_sample_rois_labels_by_tiou():
  segs = jnp.array([[[10.0, 20.0], [0.0, 0.0]]])
  labels = jnp.array([[3, -1]])
  smask = jnp.array([[True, False]])
  rois, lab, valid = two_stage.sample_rois(
      jax.random.PRNGKey(0), segs, labels, smask, jnp.array([64]), 5,
      per_segment=4, random=16, jitter=0.1)
  assert rois.shape == (1, 2 * 4 + 16, 2) and lab.shape == (1, 24)
  np.testing.assert_array_equal(valid[0, :8], [True] * 4 + [False] * 4)
  iou = np.asarray(two_stage.pairwise_iou(rois, segs[:, :1]))[0, :, 0]
  want = np.where(iou >= 0.5, 3, 5)
  np.testing.assert_array_equal(lab[0], want)
  assert (np.asarray(lab[0, :4]) == 3).all()   # small jitter: still >= 0.5


def test_two_stage_module_outputs():
  model = two_stage.TwoStage(num_classes=4, embed_dim=16, num_levels=3,
                             num_heads=2, window_size=5, bins=4,
                             context_bins=1, classifier_hidden=8)
  x = jnp.ones((2, 16, 6))
  mask = jnp.ones((2, 16), bool)
  rois = jnp.array([[[1.0, 5.0]] * 3] * 2)
  def run(with_rois):
    variables = model.init(jax.random.PRNGKey(0), x, mask, rois=rois)
    return model.apply(variables, x, mask, rois=rois if with_rois else None)
  out = jax.eval_shape(lambda: run(True))   # shapes only: no compute
  assert out["cls_logits"].shape == (2, 28, 1)
  assert out["roi_logits"].shape == (2, 3, 5)
  assert "roi_logits" not in jax.eval_shape(lambda: run(False))
