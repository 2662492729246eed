"""Losses of the one-stage detector: sigmoid focal loss and 1D DIoU.

* Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection",
  Eq. 5): per class, FL = -alpha_t (1 - p_t)^gamma log(p_t) with p = sigmoid(x),
  p_t = p for a positive target and 1 - p otherwise, alpha_t = alpha / 1 - alpha
  likewise (alpha = 0.25, gamma = 2 in the paper and in ActionFormer).
* 1D DIoU (Zheng et al. 2020, "Distance-IoU Loss", Eq. 7, in one dimension as
  ActionFormer, Zhang et al. 2022, Sec. 3.3 uses it): a point's predicted and
  target segments are given as distances (left, right) from the same point t,
  i.e. [t - l, t + r]. L = 1 - IoU + rho^2 / c^2, rho the distance between
  the two centres and c the length of the smallest segment enclosing both.
* `detection_loss`: both summed over the valid points (focal: every class of
  every valid point; DIoU: the positive points) and divided by a normaliser,
  the number of positives (at least 1) or, as in ActionFormer's release, an
  exponential moving average of it (`ema_normalizer`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def sigmoid_focal_loss(logits, targets, alpha: float = 0.25,
                       gamma: float = 2.0):
  """Elementwise focal loss of logits vs {0, 1} (or soft) targets, float32.

  alpha < 0 turns the class weighting off (alpha_t = 1)."""
  x = logits.astype(jnp.float32)
  t = targets.astype(jnp.float32)
  # log(1 + exp(-|x|)) form: stable binary cross-entropy of sigmoid(x).
  ce = jnp.maximum(x, 0.0) - x * t + jnp.log1p(jnp.exp(-jnp.abs(x)))
  p = jax.nn.sigmoid(x)
  p_t = p * t + (1.0 - p) * (1.0 - t)
  loss = ce * (1.0 - p_t) ** gamma
  if alpha >= 0:
    loss = loss * (alpha * t + (1.0 - alpha) * (1.0 - t))
  return loss


def diou_loss_1d(pred, target, eps: float = 1e-8):
  """1 - IoU + (centre distance / enclosing length)^2 of segments given as
  (left, right) distances [..., 2] from the same point; shape [...]."""
  pred = pred.astype(jnp.float32)
  target = target.astype(jnp.float32)
  lp, rp = pred[..., 0], pred[..., 1]
  lt, rt = target[..., 0], target[..., 1]
  inter = jnp.maximum(jnp.minimum(lp, lt) + jnp.minimum(rp, rt), 0.0)
  union = (lp + rp) + (lt + rt) - inter
  iou = inter / jnp.maximum(union, eps)
  enclose = jnp.maximum(lp, lt) + jnp.maximum(rp, rt)
  # centres relative to the point: (r - l) / 2
  rho = 0.5 * ((rp - lp) - (rt - lt))
  return 1.0 - iou + jnp.square(rho) / jnp.maximum(jnp.square(enclose), eps)


def ema_normalizer(previous, num_pos, momentum: float = 0.9):
  """ActionFormer's loss normaliser: m * previous + (1 - m) * max(num_pos, 1)
  (its release starts from 100 and uses m = 0.9)."""
  return momentum * previous + (1.0 - momentum) * jnp.maximum(num_pos, 1.0)


def detection_loss(cls_logits, offsets, targets: dict, alpha: float = 0.25,
                   gamma: float = 2.0, reg_weight: float = 1.0,
                   normalizer=None) -> tuple:
  """(total, parts) of one batch.

  Args:
    cls_logits: [B, P, K] logits of the pyramid's points.
    offsets: [B, P, 2] predicted (left, right) distances (level-stride units).
    targets: `targets.assign`'s dict: cls [B, P, K], reg [B, P, 2],
      positive [B, P], point_mask [B, P].
    normalizer: scalar to divide by (e.g. an EMA); default max(#positives, 1).
  Returns:
    total loss, {"cls_loss", "reg_loss", "num_pos", "normalizer"}.
  """
  valid = targets["point_mask"].astype(jnp.float32)
  pos = (targets["positive"] & targets["point_mask"]).astype(jnp.float32)
  num_pos = pos.sum()
  norm = jnp.maximum(num_pos, 1.0) if normalizer is None else normalizer
  focal = sigmoid_focal_loss(cls_logits, targets["cls"], alpha, gamma)
  cls_loss = (focal.sum(-1) * valid).sum() / norm
  reg = diou_loss_1d(offsets, targets["reg"])
  reg_loss = jnp.where(pos > 0, reg, 0.0).sum() / norm
  total = cls_loss + reg_weight * reg_loss
  return total, {"cls_loss": cls_loss, "reg_loss": reg_loss,
                 "num_pos": num_pos, "normalizer": jnp.asarray(norm)}
