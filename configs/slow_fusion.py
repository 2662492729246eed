"""Slow fusion 3D CNN (Karpathy et al. 2014; lecture 10).

`configs/slow_fusion.py`: three 3x3x3 conv (+BN, ReLU) + 2x2x2 max-pool
stages of widths 16, 32, 64 on 8x32x32 clips (the first conv has spatial
stride 2, as the 2D models' stems do, to keep a CPU step cheap): time
shrinks 8 -> 4 -> 2 -> 1 as space does (16 -> 8 -> 4 -> 2); global average
pool, linear.
`configs/slow_fusion.py:lecture`: the lecture's worked example, conv 3x3x3 ->
pool 4x4x4 -> conv 3x3x3 on 20-frame clips (temporal receptive fields 3 ->
6 -> 14; the lecture's 64x64 frames are 32x32 here so that it trains on the
embedded dataset, which does not change the temporal fields).
`configs/slow_fusion.py:sports1m`: Karpathy et al.'s slow-fusion network on
Sports-1M: 10-frame 170x170 clips, conv1 temporal extent 4 stride 2, conv2
and conv3 extent 2 stride 2 (valid in time: 10 -> 4 -> 2 -> 1), the tower
C(96,11,3)-N-P-C(256,5,1)-N-P-C(384,3,1)-C(384,3,1)-C(256,3,1)-P-FC(4096)-
FC(4096), no BatchNorm. The paper gives no parameter count; spatial padding
is our choice ((k-1)//2, so 170 -> 57 -> 28 -> 14 -> 7), which sets fc1's
input (7x7x256).
"""
from configs import default

VARIANTS = ("", "lecture", "sports1m")

LECTURE_LAYERS = ("conv3x3x3:16", "maxpool4x4x4", "conv3x3x3:32")
KARPATHY_SLOW_FUSION_LAYERS = (
    "conv4x11x11/2x3x3:96", "lrn", "maxpool1x2x2",
    "conv2x5x5/2x1x1:256", "lrn", "maxpool1x2x2",
    "conv2x3x3/2x1x1:384", "conv1x3x3:384", "conv1x3x3:256", "maxpool1x2x2")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"slow_fusion.py: unknown config argument {arg!r}; use "
                     f"one of {VARIANTS}")
  config = default.get_config()
  config.model.name = "slow_fusion"
  config.model.layers = ("conv3x3x3/1x2x2:16", "maxpool2x2x2",
                         "conv3x3x3:32", "maxpool2x2x2", "conv3x3x3:64",
                         "maxpool2x2x2")
  config.model.temporal_padding = "same"
  config.model.batch_norm = True
  config.model.head = "avg"
  config.model.fc_dims = ()
  config.model.dropout_rate = 0.0
  if arg == "sports1m":
    return _sports1m(config)
  config = default.synthetic_recipe(config, 600, warmup_steps=50)
  if arg == "lecture":
    config.model.layers = LECTURE_LAYERS
    config.dataset.num_frames = 20
    config.dataset.frame_stride = 1
  return config


def _sports1m(config):
  config.dataset.name = "sports1m"
  config.dataset.num_frames = 10
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 170
  config.dataset.flip = True
  config.model.layers = KARPATHY_SLOW_FUSION_LAYERS
  config.model.temporal_padding = "valid"
  config.model.batch_norm = False
  config.model.head = "flatten"
  config.model.fc_dims = (4096, 4096)
  config.model.dropout_rate = 0.5
  # Downpour SGD, momentum 0.9, weight decay 5e-4, lr 1e-3 (the paper).
  config.batch_size = 32
  config.num_train_steps = 1_000_000
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 5e-4
  return config
