"""AVA-style action detectors: (video, boxes, mask) -> logits [B, M, K].

A backbone's feature maps (backbones.py) + the AVA head (head.py): temporal
average, RoIAlign per person box, spatial max, dropout, linear; per-class
sigmoid at eval (Feichtenhofer et al., ICCV 2019, Sec. 5; Gu et al., CVPR
2018). Registered models (config.model.name; every other config.model field
is an option, an unknown one a one-line VidjaxError):

* "ava_slowfast" (`AvaSlowFast`): every SlowFast option (vidjax/models/
  slowfast.py) with res5 unstrided and dilated by default; `dropout_rate`
  (0.5, PySlowFast's DROPOUT_RATE) is the head's.
* "ava_videomae" (`AvaVideoMAE`): every VideoMAE encoder option (vidjax/
  models/videomae.py; parameter tree `encoder/...` as the pretraining and
  fine-tuning models, so their encoders load by name) and
  `head_dropout_rate`.
* "ava_single_frame" (`AvaSingleFrame`): a 2D ResNet on the keyframe (the
  control that motion-defined actions defeat).

Head options of all three: pooling ("roi" | "global", the control),
roi_size (7), sampling_ratio (0: adaptive), aligned (True).

Boxes are normalised (x1, y1, x2, y2) [B, M, 4] with a mask [B, M]; called
with the clip alone the model classifies one full-frame box per clip
(logits [B, 1, K]): what tools.model_table counts.
"""
from __future__ import annotations

from typing import Tuple

import flax.linen as nn

from vidjax import registry
from vidjax.errors import VidjaxError
from vidjax.models.slowfast import SlowFast
from vidjax.models.videomae import VideoMAEOptions
from vidjax.registry import register_model
from vidjax.tasks.detection import backbones
from vidjax.tasks.detection.head import POOLINGS, AvaHead, full_frame_boxes

NAMES = ("ava_slowfast", "ava_videomae", "ava_single_frame")
# The AVA head has one output per action of the label map: 80 in AVA v2.x
# (60 evaluated, the whitelist); PySlowFast MODEL.NUM_CLASSES 80.
AVA_NUM_CLASSES = 80


def _detect(module, maps, x, boxes, mask, dropout_rate, train):
  if module.pooling not in POOLINGS:
    raise VidjaxError(f"config.model.pooling={module.pooling!r}: expected "
                      f"one of {POOLINGS}")
  if boxes is None:
    boxes, mask = full_frame_boxes(x.shape[0])
  elif mask is None:
    raise VidjaxError("detection model: boxes given without their mask")
  return AvaHead(module.num_classes, module.pooling, module.roi_size,
                 module.sampling_ratio, module.aligned, dropout_rate,
                 name="roi_head")(maps, boxes, mask, x.shape[2:4],
                                  train=train)


@register_model("ava_slowfast")
class AvaSlowFast(SlowFast):
  """SlowFast AVA detector (module docstring)."""
  res5_spatial_stride: int = 1
  res5_dilation: int = 2
  pooling: str = "roi"
  roi_size: int = 7
  sampling_ratio: int = 0
  aligned: bool = True

  @nn.compact
  def __call__(self, x, boxes=None, mask=None, *, train: bool = False):
    maps = backbones.slowfast_maps(self, x, train=train)
    return _detect(self, maps, x, boxes, mask, self.dropout_rate, train)


@register_model("ava_videomae")
class AvaVideoMAE(VideoMAEOptions):
  """ViT / VideoMAE AVA detector (module docstring)."""
  head_dropout_rate: float = 0.5
  pooling: str = "roi"
  roi_size: int = 7
  sampling_ratio: int = 0
  aligned: bool = True

  @nn.compact
  def __call__(self, x, boxes=None, mask=None, *, train: bool = False):
    self.check_input(x.shape[1:])
    maps = backbones.token_maps(self.make_encoder(True), x, train=train)
    return _detect(self, maps, x, boxes, mask, self.head_dropout_rate, train)


@register_model("ava_single_frame")
class AvaSingleFrame(nn.Module):
  """Keyframe-only 2D ResNet AVA detector (the control)."""
  num_classes: int
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  stem_pool: bool = False
  dropout_rate: float = 0.5
  dtype: str = "float32"
  pooling: str = "roi"
  roi_size: int = 7
  sampling_ratio: int = 0
  aligned: bool = True

  @nn.compact
  def __call__(self, x, boxes=None, mask=None, *, train: bool = False):
    maps = backbones.frame_maps(self, x, train=train)
    return _detect(self, maps, x, boxes, mask, self.dropout_rate, train)


def build_model(model_config, num_classes: int):
  """The detector named by model_config.name (registry.build_model's
  checks: an unknown option is a one-line VidjaxError naming it)."""
  name = model_config.get("name", "")
  if name not in NAMES:
    raise VidjaxError(f"config.model.name={name!r} is not a detection "
                      f"model; known: {', '.join(NAMES)}")
  return registry.build_model(model_config, num_classes)


def num_classes(dataset_config) -> int:
  """The head's class count without loading data: 80 for AVA (PySlowFast's
  head; the 60-class whitelist is applied by the evaluator), the
  synthetic_ava actions otherwise."""
  if dataset_config.name == "ava":
    return AVA_NUM_CLASSES
  from vidjax.data import ava_render
  return ava_render.NUM_ACTIONS


def configured_model(config):
  """(model, clip shape without batch) of a detection config, no data."""
  d = config.dataset
  return (build_model(config.model, num_classes(d)),
          (d.num_frames, d.crop_size, d.crop_size, 3))
