"""Two-stream network (Simonyan & Zisserman 2014) on RGB + optical flow.

`configs/two_stream.py`: the embedded `synthetic_motion` dataset with modality
"rgb+flow" (5 channels per frame: RGB, then Farneback flow quantised to
uint8 with 128 = zero, see vidjax/data/optical_flow.py), 8 consecutive frames
(frame_stride 1, so the stacked flow is the flow between the clip's
consecutive frames) at 32x32. Spatial stream on the centre frame, temporal
stream on the 7 flow fields (14 channels), each a 2D ResNet (16, 32, 64);
softmax-average fusion. Variants: `:linear` (learned linear fusion on the
concatenated features), `:rgb` and `:flow` (one stream alone).
`configs/two_stream.py:ucf101`: paper-size inputs (224x224, L = 10 flow
fields -> 20 channels, 11 frames so that the centre frame is frame 5) with
ResNet-18 streams (NOT the paper's CNN-M-2048, whose parameter count the
paper does not give), dropout 0.9 on the features as the paper uses for
the temporal net; SGD momentum 0.9, batch 256, lr 1e-2 as in the paper.
"""
from configs import default, recipes

VARIANTS = ("", "linear", "rgb", "flow", "ucf101")

# Flow channels: q / 255 with q = 128 + 127 * flow / bound, so zero flow is
# 128/255. Measured on synthetic_motion/motion (Farneback, bound 20 px, 64
# training videos): flow channel means 0.502, stds 0.009 (RGB stds ~0.15).
FLOW_MEAN = 128.0 / 255.0
FLOW_STD = 0.01


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"two_stream.py: unknown config argument {arg!r}; use "
                     f"one of {VARIANTS}")
  config = default.get_config()
  config.model.name = "two_stream"
  config.model.widths = (16, 32, 64)
  config.model.blocks_per_stage = 1
  config.model.stem_stride = 2
  config.model.fusion = "linear" if arg == "linear" else "average"
  config.model.streams = arg if arg in ("rgb", "flow") else "both"
  config.model.flow_mean_subtraction = True
  config.model.dropout_rate = 0.0
  config.dataset.modality = "rgb+flow"
  config.dataset.flow_algorithm = "farneback"
  config.dataset.mean = (0.5, 0.5, 0.5, FLOW_MEAN, FLOW_MEAN)
  config.dataset.std = (0.25, 0.25, 0.25, FLOW_STD, FLOW_STD)
  if arg == "ucf101":
    return _ucf101(config)
  config = default.synthetic_recipe(config, 600, warmup_steps=50)
  config.dataset.frame_stride = 1
  return config


def _ucf101(config):
  # Smallest side rescaled to 256, random 224 crops, flip (Sec. 6); the
  # paper tests 25 evenly spaced frames x (4 corners + centre, flipped);
  # here 25 clips x 3 crops (vidjax's crop sets: 1 or 3).
  recipes.storage(config, recipes.UCF101_SHORT_SIDE)
  config.num_test_clips, config.num_test_crops = 25, 3
  config.dataset.name = "ucf101"
  config.dataset.num_frames = 11
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 224
  config.dataset.flip = True
  config.dataset.flow_algorithm = "tvl1"
  config.model.widths = (64, 128, 256, 512)
  config.model.blocks_per_stage = 2
  config.model.stem_kernel = 7
  config.model.stem_pool = True
  config.model.dropout_rate = 0.9
  config.batch_size = 256
  config.num_train_steps = 80_000
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-2
  config.optimizer.weight_decay = 5e-4
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
