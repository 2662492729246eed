"""Feature maps (B, T', H', W', C) of a clip for AVA-style detection.

Each function runs inside the detection model's compact `__call__` and
returns a tuple of maps (one per pathway), which the AVA head pools per box
(vidjax/tasks/detection/head.py):

* `slowfast_maps`: SlowFast (Feichtenhofer et al., ICCV 2019, Sec. 5.1:
  "the spatial stride of res5 is set to 1 (instead of 2), and we use a
  dilation of 2 for its filters ... this increases the spatial resolution of
  res5 by 2x"; PySlowFast configs/AVA/SLOWFAST_32x2_R50_SHORT.yaml:
  SPATIAL_STRIDES [[1, 1], [2, 2], [2, 2], [1, 1]], SPATIAL_DILATIONS
  [[1, 1], [1, 1], [1, 1], [2, 2]], DETECTION.SPATIAL_SCALE_FACTOR 16): the
  pre-pool (slow, fast) maps of vidjax.models.slowfast.SlowFast with
  `res5_spatial_stride` 1 and `res5_dilation` 2, stride 16.
* `token_maps`: ViT / VideoMAE encoders (Tong et al., NeurIPS 2022; the
  AVA fine-tuning of VideoMAE, as mmaction2's ViT `return_feat_map`): the
  encoder's tokens (B, t h w, D) reshaped to (B, t, h, w, D), t = T / pt,
  h = H / ph, w = W / pw (tubelet size (pt, ph, pw)): stride ph.
* `frame_maps`: a 2D ResNet (vidjax.models.single_frame.FrameResNet) on the
  keyframe (the clip's centre frame) only: (B, 1, h, w, D). The control of
  the issue's bar: actions here are defined by motion, so a single frame
  cannot tell them apart.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from vidjax.models.single_frame import FrameResNet
from vidjax.models.slowfast import SlowFast


def slowfast_maps(options, x, *, train: bool):
  """(slow, fast) maps of a SlowFast built from `options` (an object with
  SlowFast's fields: the detection model itself) as submodule "backbone"."""
  skip = {"parent", "name", "num_classes", "return_maps", "dropout_rate"}
  kw = {f.name: getattr(options, f.name) for f in dataclasses.fields(SlowFast)
        if f.name not in skip}
  net = SlowFast(num_classes=1, return_maps=True, dropout_rate=0.0, **kw,
                 name="backbone")
  return tuple(net(x, train=train))


def token_maps(encoder, x, *, train: bool):
  """((B, t, h, w, D),) of a tubelet encoder (B, T, H, W, C) -> (B, N, D)."""
  pt, ph, pw = encoder.patch_size
  b, t, h, w, _ = x.shape
  tokens = encoder(x, train=train)
  return (tokens.reshape(b, t // pt, h // ph, w // pw, tokens.shape[-1]),)


def frame_maps(options, x, *, train: bool):
  """((B, 1, h, w, D),) of FrameResNet (widths, blocks_per_stage,
  stem_stride, stem_pool of `options`) on the centre frame x[:, T // 2]."""
  net = FrameResNet(tuple(options.widths), options.blocks_per_stage,
                    options.stem_stride, stem_pool=options.stem_pool,
                    dtype=jnp.dtype(options.dtype), name="backbone")
  return (net(x[:, x.shape[1] // 2], train=train)[:, None],)
