"""The AVA detection head and its loss.

Feichtenhofer et al., ICCV 2019, "SlowFast Networks for Video Recognition",
Sec. 5 (AVA): "the region-of-interest (RoI) features are extracted at the
last feature map of res5 ... we extend each 2D RoI at a frame into a 3D RoI
by replicating it along the temporal axis ... compute RoI features by
RoIAlign spatially, and global average pooling temporally. The RoI features
are then max-pooled and fed to a per-class, sigmoid-based classifier";
Gu et al., CVPR 2018, "AVA: A Video Dataset of Spatio-temporally Localized
Atomic Visual Actions" (multi-label, per-person boxes given by a detector).

Per pathway map (B, T', H', W', C): temporal mean -> (B, H', W', C) ->
RoIAlign (vidjax.layers.roi_align, `roi_size` x `roi_size`, aligned,
`sampling_ratio` 0 = adaptive as detectron2's op; spatial_scale = map size /
input size = 1 / stride) -> spatial max -> (B, M, C); pathways concatenated,
dropout, one linear layer -> per-class logits [B, M, K] (sigmoid at eval).

`pooling="global"` is the control: every box gets the clip's spatially
max-pooled map (no RoI), so actors of one clip share their prediction.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import optax

from vidjax.errors import VidjaxError
from vidjax.layers.roi_align import roi_align

POOLINGS = ("roi", "global")


def full_frame_boxes(batch: int):
  """One box covering the frame per clip: ([B, 1, 4], mask [B, 1]) (used
  when a detection model is called on a clip alone, e.g. to count it)."""
  boxes = jnp.tile(jnp.asarray([[[0.0, 0.0, 1.0, 1.0]]], jnp.float32),
                   (batch, 1, 1))
  return boxes, jnp.ones((batch, 1), bool)


def pool_boxes(fmap, boxes, mask, image_hw: Sequence[int], pooling: str,
               roi_size: int = 7, sampling_ratio: int = 0,
               aligned: bool = True):
  """(B, T', H', W', C) map, normalised boxes [B, M, 4] -> [B, M, C]."""
  if pooling not in POOLINGS:
    raise VidjaxError(f"config.model.pooling={pooling!r}: expected one of "
                      f"{POOLINGS}")
  x = fmap.mean(axis=1).astype(jnp.float32)           # temporal average
  b, h, w, c = x.shape
  m = boxes.shape[1]
  if pooling == "global":
    return jnp.broadcast_to(x.max(axis=(1, 2))[:, None], (b, m, c))
  img_h, img_w = image_hw
  if img_h * w != img_w * h:
    raise VidjaxError(f"feature map {h}x{w} is not a uniform scaling of "
                      f"the {img_h}x{img_w} input")
  scale = w / img_w                                    # 1 / stride
  pixels = boxes * jnp.asarray([img_w, img_h, img_w, img_h], jnp.float32)
  cap = max(1, math.ceil(max(h, w) / roi_size))
  rois = roi_align(x, pixels, mask, roi_size, spatial_scale=scale,
                   sampling_ratio=sampling_ratio, aligned=aligned,
                   adaptive_cap=cap if sampling_ratio <= 0 else None)
  return rois.max(axis=(2, 3))                         # spatial max pool


class AvaHead(nn.Module):
  """maps (tuple of (B, T', H', W', C)), boxes [B, M, 4], mask [B, M] ->
  logits [B, M, num_classes] float32 (0 on padded boxes)."""
  num_classes: int
  pooling: str = "roi"
  roi_size: int = 7
  sampling_ratio: int = 0
  aligned: bool = True
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, maps, boxes, mask, image_hw, *, train: bool):
    feats = jnp.concatenate(
        [pool_boxes(f, boxes, mask, image_hw, self.pooling, self.roi_size,
                    self.sampling_ratio, self.aligned) for f in maps], -1)
    feats = nn.Dropout(self.dropout_rate)(feats, deterministic=not train)
    logits = nn.Dense(self.num_classes, dtype=jnp.float32, name="head",
                      kernel_init=nn.initializers.normal(0.01))(feats)
    return jnp.where(mask[..., None], logits, 0.0)


def detection_loss(logits, labels, mask):
  """Multi-label binary cross-entropy (per-class sigmoid), mean over the
  classes and the real boxes (padded boxes contribute nothing)."""
  bce = optax.sigmoid_binary_cross_entropy(
      logits.astype(jnp.float32), labels.astype(jnp.float32)).mean(-1)
  w = mask.astype(jnp.float32)
  return (bce * w).sum() / jnp.maximum(w.sum(), 1.0)
