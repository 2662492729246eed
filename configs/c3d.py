"""C3D (Tran et al. 2015).

`configs/c3d.py`: a narrow C3D (with BatchNorm) on the embedded
`synthetic_motion` dataset, 8x32x32 clips, for a 2-core CPU.
`configs/c3d.py:sports1m`: the paper's network and recipe on Sports-1M: 16
consecutive frames, 112x112 crops, widths 64..512, fc 4096, dropout 0.5, no
BatchNorm; SGD momentum 0.9, batch 30, lr 0.003 (the paper divides it by 10
every 150K iterations and stops at 1.9M; here cosine over 1.9M steps).
80.0M parameters (487 classes), 38.5 G multiply-adds per clip.
"""
from configs import default

VARIANTS = ("", "sports1m")


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "c3d"
  if arg == "sports1m":
    return _sports1m(config)
  if arg:
    raise ValueError(f"c3d.py: unknown config argument {arg!r}; use '' or "
                     "'sports1m'")
  config.model.widths = (16, 32, 64, 64, 128, 128, 128, 128)
  config.model.fc_dim = 256
  config.model.dropout_rate = 0.2
  config.model.batch_norm = True
  config.model.dtype = "float32"
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _sports1m(config):
  config.dataset.name = "sports1m"
  config.dataset.num_frames = 16
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 112
  config.dataset.flip = True
  config.model.widths = (64, 128, 256, 256, 512, 512, 512, 512)
  config.model.fc_dim = 4096
  config.model.dropout_rate = 0.5
  config.model.batch_norm = False
  config.batch_size = 30
  config.num_train_steps = 1_900_000
  config.log_every_steps = 100
  config.eval_every_steps = 50_000
  config.checkpoint_every_steps = 10_000
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 0.003
  config.optimizer.weight_decay = 0.0
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
