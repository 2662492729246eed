"""Focal and 1D DIoU losses of the detector: hand-computed values."""
import math

import jax.numpy as jnp
import numpy as np

from vidjax.tasks.localization import losses


def _focal(x, t, alpha=0.25, gamma=2.0):
  p = 1 / (1 + math.exp(-x))
  pt = p if t else 1 - p
  at = alpha if t else 1 - alpha
  return -at * (1 - pt) ** gamma * math.log(pt)


def test_focal_loss_hand_values():
  x = jnp.array([0.0, 0.0, 2.0, -3.0])
  t = jnp.array([1.0, 0.0, 1.0, 0.0])
  got = np.asarray(losses.sigmoid_focal_loss(x, t))
  # logit 0, positive: 0.25 * 0.5^2 * log 2
  assert np.isclose(got[0], 0.25 * 0.25 * math.log(2), rtol=1e-6)
  assert np.isclose(got[1], 0.75 * 0.25 * math.log(2), rtol=1e-6)
  want = [_focal(a, b) for a, b in zip([0, 0, 2, -3], [1, 0, 1, 0])]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_focal_without_weighting_is_binary_cross_entropy_and_stable():
  x = jnp.array([-4.0, 0.5, 3.0])
  t = jnp.array([0.0, 1.0, 0.0])
  got = losses.sigmoid_focal_loss(x, t, alpha=-1, gamma=0.0)
  p = 1 / (1 + np.exp(-np.array([-4.0, 0.5, 3.0])))
  bce = -(np.array([0, 1, 0]) * np.log(p) + np.array([1, 0, 1])
          * np.log(1 - p))
  np.testing.assert_allclose(got, bce, rtol=1e-5)
  big = losses.sigmoid_focal_loss(jnp.array([100.0]), jnp.array([0.0]))
  assert np.isclose(float(big[0]), 0.75 * 100.0, rtol=1e-5)  # (1-p_t)=1


def test_diou_1d_hand_values():
  pred = jnp.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
  target = jnp.array([[1.0, 1.0], [1.0, 3.0], [2.0, 0.0]])
  got = np.asarray(losses.diou_loss_1d(pred, target))
  # identical: 0. [t-1, t+1] vs [t-1, t+3]: IoU 2/4, centres 1 apart,
  # enclosing 4: 1 - 0.5 + 1/16. [t, t+1] vs [t-2, t]: IoU 0, centres
  # t+0.5 / t-1 (1.5 apart), enclosing 3: 1 + 2.25/9.
  np.testing.assert_allclose(got, [0.0, 0.5625, 1.25], atol=1e-6)


def _targets(positive, valid, cls, reg):
  return {"positive": jnp.asarray(positive, bool),
          "point_mask": jnp.asarray(valid, bool),
          "cls": jnp.asarray(cls, jnp.float32),
          "reg": jnp.asarray(reg, jnp.float32)}


def test_detection_loss_normalised_by_positives_and_masked():
  logits = jnp.zeros((1, 4, 2))
  offsets = jnp.array([[[1.0, 1.0], [1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]])
  tg = _targets([[1, 1, 0, 1]], [[1, 1, 1, 0]],
                [[[1, 0], [0, 1], [0, 0], [1, 1]]],
                [[[1, 1], [1, 3], [0, 0], [0, 0]]])
  total, parts = losses.detection_loss(logits, offsets, tg)
  # 2 valid positives (point 3 is padding); focal over 3 valid points x 2
  # classes: 2 positive entries + 4 negative ones, at logit 0.
  pos_term = 0.25 * 0.25 * math.log(2)
  neg_term = 0.75 * 0.25 * math.log(2)
  assert float(parts["num_pos"]) == 2
  assert np.isclose(float(parts["cls_loss"]), (2 * pos_term + 4 * neg_term)
                    / 2, rtol=1e-6)
  assert np.isclose(float(parts["reg_loss"]), (0.0 + 0.5625) / 2, rtol=1e-6)
  assert np.isclose(float(total), float(parts["cls_loss"])
                    + float(parts["reg_loss"]), rtol=1e-6)
  _, fixed = losses.detection_loss(logits, offsets, tg, normalizer=10.0)
  assert np.isclose(float(fixed["reg_loss"]), 0.5625 / 10, rtol=1e-6)


def test_ema_normaliser():
  assert np.isclose(float(losses.ema_normalizer(100.0, 5.0, 0.9)), 90.5)
  assert np.isclose(float(losses.ema_normalizer(1.0, 0.0, 0.5)), 1.0)
