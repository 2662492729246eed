"""Inception-v1 with BatchNorm applied per frame (vidjax/models/inception.py):
I3D's 2D parent (Carreira & Zisserman 2017; Szegedy et al. 2015, GoogLeNet).

`configs/inception2d.py`: a quarter-width net (0.35M parameters) on the
embedded `synthetic_motion` dataset (8x32x32 clips; logits averaged over the
frames), the paper's layout as in configs/i3d.py; it is the 2D parent of
that config's I3D (same parameter names). On `synthetic_motion/motion` a per-frame model
should sit near chance (no single frame tells the class).
`configs/inception2d.py:imagenet`: the ImageNet network I3D inflates (TF-slim
Inception-v1: 3x3 kernels in the "5x5" branch, BatchNorm): one 224x224 frame,
1000 classes, 6,617,624 parameters (GoogLeNet's Tab. 1 with 5x5 kernels:
6,998,552; the paper's table sums to 6.8M), 1.50 G multiply-adds. Recipe: SGD
momentum 0.9, lr 0.1, weight decay 4e-5, cosine over 90 epochs, batch 256
(ours; ImageNet is not a vidjax dataset, so the variant is for counting).
"""
from configs import default

VARIANTS = ("", "imagenet")


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "inception2d"
  config.model.branch2_kernel = 3
  config.model.conv1_stride = 2
  config.model.final_pool = (2, 7, 7)
  config.model.bn_scale = False
  config.model.dtype = "float32"
  if arg == "imagenet":
    return _imagenet(config)
  if arg not in ("", "motion", "appearance"):
    raise ValueError(f"inception2d.py: unknown config argument {arg!r}; use "
                     "'', 'motion', 'appearance' or 'imagenet'")
  config.dataset.config = arg or "motion"
  config.model.width_multiplier = 0.25
  config.model.stem_pools = 2
  config.model.dropout_rate = 0.2
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _imagenet(config):
  config.dataset.name = "imagenet"
  config.dataset.num_frames = 1
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 224
  config.dataset.crop_mode = "resized"
  config.dataset.flip = True
  config.model.width_multiplier = 1.0
  config.model.stem_pools = 2
  config.model.dropout_rate = 0.4
  config.batch_size = 256
  config.num_train_epochs = 90.0
  config.log_every_steps = 100
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 1000
  config.num_test_clips = 1
  config.num_test_crops = 1
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 0.1
  config.optimizer.weight_decay = 4e-5
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
