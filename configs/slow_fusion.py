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
`configs/slow_fusion.py:own_videos`: training from scratch on a few hundred
of one's own videos (issue #15): `--config.dataset.path=DIR` holding
DIR/<class>/<videos> (`video_folder`). The same network on RGB + optical
flow (modality "rgb+flow", Farneback, computed once and cached) of frames
stored at 15 fps with a 48-px short side (8 frames at stride 2: ~1 s of any
camera's frame rate), the whole short side cropped at train, 4 clips x 3
crops at test, no flip (it would swap left/right motion classes). Its own
function below says why each choice; measured in benchmarks/RESULTS.md
("Own videos (issue #15)").
Not a `VARIANTS` row: its class count is the user's data's.
"""
from configs import default

VARIANTS = ("", "lecture", "sports1m")
OWN_VIDEOS = "own_videos"  # data-dependent class count: not a model_table row

LECTURE_LAYERS = ("conv3x3x3:16", "maxpool4x4x4", "conv3x3x3:32")
KARPATHY_SLOW_FUSION_LAYERS = (
    "conv4x11x11/2x3x3:96", "lrn", "maxpool1x2x2",
    "conv2x5x5/2x1x1:256", "lrn", "maxpool1x2x2",
    "conv2x3x3/2x1x1:384", "conv1x3x3:384", "conv1x3x3:256", "maxpool1x2x2")


def get_config(arg: str = ""):
  if arg not in VARIANTS + (OWN_VIDEOS,):
    raise ValueError(f"slow_fusion.py: unknown config argument {arg!r}; use "
                     f"one of {VARIANTS + (OWN_VIDEOS,)}")
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
  if arg == OWN_VIDEOS:
    return _own_videos(config)
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
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config


def _own_videos(config):
  """Slow fusion on RGB + optical flow of one's own videos (issue #15).

  Measured on `python -m tools.make_real_motion` clips (real footage, classes
  by camera motion; benchmarks/RESULTS.md): on 32-px RGB crops the small
  defaults fit their few hundred training clips (train loss -> 0.02-0.08) but
  generalise poorly (ViViT 58%, slow fusion 70% test); what helped:
  * frames stored at 48 px, 8 frames spanning ~1 s (motion between sampled
    frames is then more than sub-pixel): RGB 77% on 300 held-out clips;
  * a stored frame rate of 15 fps, so that the stride spans the same time
    for 25, 30 or 60 fps cameras (and the flow between stored frames is
    larger): flow 85% -> 88%;
  * optical flow (Simonyan & Zisserman 2014: trained from scratch on little
    data, the flow stream beats the RGB one by far): 85-88% flow alone, 87%
    RGB + flow, which keeps the appearance for classes that need it; no
    flow mean subtraction (configs/two_stream.py uses it: it removes camera
    motion, which may be what the classes are);
  * flow bound 10 px (uint8 steps of 0.08 px; 48-px frames rarely move more
    between two stored frames), std 0.02 (1 px ~ 2.5 after normalising);
  * 1200 steps instead of 600: 89% vs 87% (4 x 3 test views).
  Colour jitter + Inception crops (scale 0.4-1) did not help (76% vs 77%).
  """
  config = default.synthetic_recipe(config, 1200, warmup_steps=50)
  d = config.dataset
  d.name = "video_folder"
  d.fps = 15.0
  d.resize_short = d.train_resize_short = d.test_resize_short = 48
  d.crop_size = 48
  d.num_frames, d.frame_stride = 8, 2
  d.flip = False
  d.modality = "rgb+flow"
  d.flow_algorithm = "farneback"
  d.flow_bound = 10.0
  d.mean = (0.5,) * 5
  d.std = (0.25, 0.25, 0.25, 0.02, 0.02)
  config.batch_size = 32
  config.num_test_clips = 4
  config.num_test_crops = 3
  return config
