"""Two-stage mode: class-agnostic proposals, 1D RoIAlign, then a classifier.

The lecture's TAL-Net layout (Chao et al. 2018, "Rethinking the Faster R-CNN
Architecture for Temporal Action Localization", Sec. 3-4): a proposal network
scores class-agnostic segments; each proposal's features are pooled to a
fixed size (here RoIAlign, He et al. 2017, "Mask R-CNN", Sec. 3: no
quantisation, features read by linear interpolation at regularly spaced
points, each bin the mean of its samples, so it is differentiable in the
features), extended by context on both sides (TAL-Net Sec. 4.3: the
classifier sees the proposal and its surroundings), and a small classifier
gives K action classes + background.

* Proposals: the one-stage ActionFormer with one class (`actionformer.py`,
  class-agnostic targets: `targets.assign(..., class_agnostic=True)`).
* `roi_align_1d`: features [B, L, D], RoIs [B, R, 2] in step coordinates
  -> [B, R, context_bins + bins + context_bins, D].
* `TwoStage`: both, one parameter tree. Training RoIs are ground-truth
  segments jittered in centre and length plus random segments, labelled by
  their best tIoU with the ground truth (>= `fg_iou`: that segment's class,
  else background = class K) in `sample_rois`, with fixed shapes.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vidjax.layers.roi_align import interpolate_1d, sample_points
from vidjax.tasks.localization.actionformer import ActionFormer


def roi_align_1d(features, rois, num_steps, bins: int = 8,
                 context_bins: int = 2, context: float = 0.5,
                 samples_per_bin: int = 2):
  """RoIAlign over time (module docstring), with the sampling rule and the
  interpolation of `vidjax.layers.roi_align` (sample_points, interpolate_1d).

  The RoI [a, b] is cut into `bins` equal bins; [a - context (b - a), a] and
  [b, b + context (b - a)] into `context_bins` each. Bin value = mean of
  `samples_per_bin` samples at the bin's (j + 0.5) / n points, read by linear
  interpolation at positions in step units (step i at position i, i.e. the
  layer's aligned rule with RoI [a + 0.5, b + 0.5]). Unlike the 2D reference
  rule, points beyond a video's ends are clamped to its first / last real
  step (`zero_outside=False`, padding past `num_steps` never read): the
  context bins of a proposal at a video's edge repeat the edge step rather
  than read zeros. Returns [B, R, 2 context_bins + bins, D]."""
  a, b = rois[..., 0], rois[..., 1]
  length = jnp.maximum(b - a, 1e-3)
  pieces = ((a - context * length, a, context_bins), (a, b, bins),
            (b, b + context * length, context_bins))
  points = [sample_points(lo, hi - lo, n, features.shape[1], samples_per_bin,
                          valid_length=num_steps[:, None], zero_outside=False)
            for lo, hi, n in pieces if n > 0]        # [B, R, n, s] each
  y = jnp.concatenate([p[0] for p in points], 2)
  weight = jnp.concatenate([p[1] for p in points], 2)
  return interpolate_1d(features, y, weight, points[0][2])


def pairwise_iou(rois, segments):
  """tIoU [B, R, M] of RoIs [B, R, 2] with segments [B, M, 2]."""
  a, b = rois[..., :, None, 0], rois[..., :, None, 1]
  c, d = segments[..., None, :, 0], segments[..., None, :, 1]
  inter = jnp.maximum(jnp.minimum(b, d) - jnp.maximum(a, c), 0.0)
  union = (b - a) + (d - c) - inter
  return inter / jnp.maximum(union, 1e-6)


def sample_rois(rng, segments, labels, segment_mask, num_steps,
                num_classes: int, per_segment: int = 4, random: int = 8,
                jitter: float = 0.25, fg_iou: float = 0.5):
  """Training RoIs [B, M * per_segment + random, 2] and labels (K =
  background) -> (rois, roi_labels, roi_valid)."""
  bsz, m = labels.shape
  k1, k2, k3, k4 = jax.random.split(rng, 4)
  centre = segments.mean(-1)
  length = segments[..., 1] - segments[..., 0]
  shape = (bsz, m, per_segment)
  dc = jax.random.uniform(k1, shape, minval=-jitter, maxval=jitter)
  dl = jnp.exp(jax.random.uniform(k2, shape, minval=-jitter, maxval=jitter))
  c = centre[..., None] + dc * length[..., None]
  half = 0.5 * length[..., None] * dl
  jit_rois = jnp.stack([c - half, c + half], -1).reshape(bsz, -1, 2)
  jit_valid = jnp.repeat(segment_mask, per_segment, 1)
  n = num_steps.astype(jnp.float32)[:, None]
  s = jax.random.uniform(k3, (bsz, random)) * n
  ln = jnp.exp(jax.random.uniform(k4, (bsz, random), minval=0.0,
                                  maxval=jnp.log(jnp.maximum(n / 2, 2.0))))
  rand = jnp.stack([s - 0.5, jnp.minimum(s + ln, n) - 0.5], -1)
  rois = jnp.concatenate([jit_rois, rand], 1)
  valid = jnp.concatenate([jit_valid, jnp.ones((bsz, random), bool)], 1)
  iou = jnp.where(segment_mask[:, None, :], pairwise_iou(rois, segments),
                  -1.0)
  best = jnp.argmax(iou, -1)
  best_iou = jnp.max(iou, -1)
  lab = jnp.take_along_axis(labels, best, 1)
  roi_labels = jnp.where(best_iou >= fg_iou, lab, num_classes)
  return rois, roi_labels.astype(jnp.int32), valid


class ProposalClassifier(nn.Module):
  """RoI features [B, R, bins, D] -> logits [B, R, K + 1] (K: background)."""

  num_classes: int
  hidden: int = 128
  dropout_rate: float = 0.0
  dtype: str = "float32"

  @nn.compact
  def __call__(self, roi_features, train: bool = False):
    dtype = jnp.dtype(self.dtype)
    x = roi_features.reshape(roi_features.shape[:2] + (-1,)).astype(dtype)
    x = nn.LayerNorm(dtype=dtype)(x)
    x = nn.relu(nn.Dense(self.hidden, dtype=dtype)(x))
    x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
    x = nn.relu(nn.Dense(self.hidden, dtype=dtype)(x))
    return nn.Dense(self.num_classes + 1, dtype=jnp.float32,
                    name="head")(x).astype(jnp.float32)


class TwoStage(nn.Module):
  """Class-agnostic ActionFormer proposals + RoIAlign classifier over the
  input features. `__call__(x, mask, rois=None, num_steps=None)`: the
  proposal outputs (one class), and with `rois` [B, R, 2] their
  "roi_logits" [B, R, K + 1]."""

  num_classes: int
  embed_dim: int = 128
  num_levels: int = 6
  num_heads: int = 4
  window_size: int = 19
  stem_layers: int = 1
  dropout_rate: float = 0.0
  input_norm: bool = True
  bins: int = 8
  context_bins: int = 2
  context: float = 0.5
  classifier_hidden: int = 128
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, rois=None, num_steps=None, train: bool = False):
    out = ActionFormer(1, self.embed_dim, self.num_levels, self.num_heads,
                       self.window_size, stem_layers=self.stem_layers,
                       dropout_rate=self.dropout_rate,
                       input_norm=self.input_norm, dtype=self.dtype,
                       name="proposals")(x, mask, train)
    if rois is not None:
      feats = x.astype(jnp.float32)
      if self.input_norm:
        feats = nn.LayerNorm(name="roi_norm")(feats) * mask[..., None]
      if num_steps is None:
        num_steps = mask.sum(-1)
      pooled = roi_align_1d(feats, rois, num_steps, self.bins,
                            self.context_bins, self.context)
      out["roi_logits"] = ProposalClassifier(
          self.num_classes, self.classifier_hidden, self.dropout_rate,
          self.dtype, name="classifier")(pooled, train)
    return out
