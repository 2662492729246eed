"""SlowFast AVA action detector (Feichtenhofer et al., ICCV 2019, Sec. 5;
AVA: Gu et al., CVPR 2018). Model: vidjax/tasks/detection/model.py.

`configs/ava_slowfast.py`: a narrow SlowFast (as configs/slowfast.py's
default: alpha 4, beta 1/4, widths 8..64, one block per stage; with the
stem pool: 3.4x faster than without on this CPU) with res5 unstrided and
dilated (feature stride 16: 4x4 maps of 64x64 clips), on the
embedded `synthetic_ava` (8 frames at stride 2 centred on each keyframe,
GT boxes in training; test boxes `dataset.eval_boxes` "gt" | "detector"
with score >= 0.8), for a 2-core CPU (tools.detection_check). 2000 steps:
frame-mAP@0.5 0.206 / 0.802 / 0.853 at steps 200 / 1000 / 2000 through
`python -m vidjax.main` (GT boxes; ~11 min here); 600 steps gave 0.500.

`configs/ava_slowfast.py:tiny`: the default on a tiny synthetic_ava build
(4 + 2 videos of 32 frames, 32x32; 8-frame clips), 4 steps: the tests'.

`configs/ava_slowfast.py:single_frame`: the default recipe with a 2D
ResNet on the keyframe only (`ava_single_frame`, same head): the control of
the issue's bar (the actions are motion-defined). The other control is the
default with `--config.model.pooling=global` (every actor of a clip gets the
clip's max-pooled feature). Through `python -m vidjax.main` at 2000 steps
(GT boxes): single frame 0.177 (bar <= 0.45), global pooling 0.315 (bar
<= 0.50).

`configs/ava_slowfast.py:k400`: SlowFast R50 8x8 for AVA v2.2 as PySlowFast's
configs/AVA/SLOWFAST_32x2_R50_SHORT.yaml: 32 frames at stride 2 (alpha 4:
slow 8 frames; beta 1/8; 7x1x1 laterals), res5 spatial stride 1, dilation 2
(feature stride 16), RoIAlign 7x7, 80-class sigmoid head (60 evaluated:
the label map's whitelist), dropout 0.5, 224 crops; SGD lr 0.1 (batch 64),
weight decay 1e-7, 5 warm-up epochs, 20 epochs; initialised from a
Kinetics-400 SlowFast 8x8 (--config.init_from.checkpoint_path). 33.9M
parameters (SlowFast R50 8x8's 34.6M less the 400- vs 80-class head).
"""
import ml_collections

from configs import default
from configs import slowfast as slowfast_config

VARIANTS = ("", "k400", "tiny", "single_frame")


def detection_data(config, num_frames: int, frame_stride: int, crop: int):
  """Dataset keys read by vidjax.tasks.detection.data (shared with
  configs/ava_videomae.py)."""
  d = config.dataset
  d.name = "synthetic_ava"
  d.num_frames, d.frame_stride, d.crop_size = num_frames, frame_stride, crop
  d.max_boxes = 0            # the most boxes of any keyframe
  d.box_crop_scale = (0.6, 1.0)
  d.flip = True
  d.eval_boxes = "gt"        # "gt" | "detector"
  d.detection_score_thresh = 0.8
  return config


def single_frame_model(dropout_rate: float):
  """The keyframe-only control's model options (vidjax/tasks/detection/
  model.py, "ava_single_frame"): widths 16..64, as tools.detection_check."""
  return ml_collections.ConfigDict({
      "name": "ava_single_frame", "widths": (16, 32, 64),
      "blocks_per_stage": 1, "stem_stride": 2, "stem_pool": False,
      "dropout_rate": dropout_rate, "pooling": "roi", "roi_size": 7,
      "sampling_ratio": 0, "aligned": True})


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"ava_slowfast.py: unknown config argument {arg!r}; "
                     f"use one of {VARIANTS}")
  config = slowfast_config.get_config("8x8" if arg == "k400" else "")
  config.task = "detection"
  m = config.model
  m.name = "ava_slowfast"
  m.res5_spatial_stride, m.res5_dilation = 1, 2
  m.pooling = "roi"          # "roi" | "global" (control)
  m.roi_size, m.sampling_ratio, m.aligned = 7, 0, True
  if arg == "k400":
    detection_data(config, 32, 2, 224)
    config.dataset.name = "ava"
    m.dropout_rate = 0.5
    config.batch_size = 64
    config.num_train_epochs = 20.0
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.1
    config.optimizer.weight_decay = 1e-7
    config.optimizer.warmup_epochs = 5.0
    return config
  config = default.synthetic_recipe(config, 2000, warmup_steps=50)
  detection_data(config, 8, 2, 64)
  m.stem_pool = True         # feature stride 16 (4x4 maps), as the paper's
  m.dropout_rate = 0.2
  config.batch_size = 16
  if arg == "single_frame":
    config.model = single_frame_model(m.dropout_rate)
  if arg == "tiny":  # tests: a few small videos, 4 steps (seconds on a CPU)
    d = config.dataset
    d.train_videos, d.test_videos, d.video_frames = 4, 2, 32
    d.resolution, d.crop_size, d.num_frames, d.frame_stride = 32, 32, 8, 1
    config.batch_size = config.eval_batch_size = 8
    config.num_train_steps = 4
    config.optimizer.warmup_steps = 1
    config.log_every_steps = config.eval_every_steps = 2
    config.checkpoint_every_steps = 2
  return config
