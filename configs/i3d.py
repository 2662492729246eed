"""I3D (Carreira & Zisserman 2017, "Quo Vadis, Action Recognition? A New Model
and the Kinetics Dataset"): Inception-v1 inflated to 3D (vidjax/models/inception.py).

`configs/i3d.py`: a quarter-width I3D (width_multiplier 0.25: 0.78M
parameters, 30 M multiply-adds per 8x32x32 clip) on the embedded
`synthetic_motion` dataset, for a 2-core CPU: the paper's layout and strides
unchanged, so the maps are 4x4 at mixed 3b/3c, 2x2 at 4b-4f and 1x1x1 at
5b/5c (their 3x3x3 convs see only their centre tap). `stem_pools=1` (drop
max pool 2a) keeps a 2x2 map there but costs 71 M multiply-adds; measured
on the busy shared 2-core machine, one batch-64 train step took ~0.50
CPU-seconds with stem_pools=2 and ~1.4 with stem_pools=1.
`configs/i3d.py:k400`: the paper's RGB I3D on Kinetics-400: 64 consecutive
frames, short side 256 -> 224x224 random crops, left-right flips; 12.69M
parameters, 111 G multiply-adds per 64x224x224 clip. Recipe after the paper's
implementation details: SGD momentum 0.9, 110k steps (the paper drops the lr
10x when validation loss saturates and tunes it on validation; here lr 0.1,
cosine, batch 64, weight decay 1e-4: assumptions). Testing: the paper runs
the net over the whole video (centre 224 crops) and averages the logits; here
10 uniformly spaced 64-frame clips x 1 centre crop.
"""
from configs import default, recipes

VARIANTS = ("", "k400")


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "i3d"
  config.model.branch2_kernel = 3
  config.model.conv1_stride = 2
  config.model.conv1_temporal_stride = 2
  config.model.final_pool = (2, 7, 7)
  config.model.temporal_padding = "zeros"
  config.model.bn_scale = False
  config.model.dtype = "float32"
  if arg == "k400":
    return _k400(config)
  if arg:
    raise ValueError(f"i3d.py: unknown config argument {arg!r}; use '' or "
                     "'k400'")
  config.model.width_multiplier = 0.25
  config.model.stem_pools = 2
  config.model.dropout_rate = 0.2
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _k400(config):
  recipes.storage(config, recipes.KINETICS_SHORT_SIDE)
  config.dataset.name = "kinetics400"
  config.dataset.num_frames = 64
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 224
  config.dataset.train_resize_short = 256
  config.dataset.test_resize_short = 256
  config.dataset.flip = True
  config.model.width_multiplier = 1.0
  config.model.stem_pools = 2
  config.model.dropout_rate = 0.4
  config.batch_size = 64
  config.num_train_steps = 110_000
  config.log_every_steps = 100
  config.eval_every_steps = 10_000
  config.checkpoint_every_steps = 1000
  config.num_test_clips = 10
  config.num_test_crops = 1
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 0.1
  config.optimizer.weight_decay = 1e-4
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
