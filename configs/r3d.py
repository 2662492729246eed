"""R3D-18 (Tran et al. 2018, "A Closer Look at Spatiotemporal Convolutions").

`configs/r3d.py`: a narrow R3D (widths 16..128, one block per stage) on the
embedded `synthetic_motion` dataset, 8x32x32 clips, for a 2-core CPU.
`configs/r3d.py:k400`: R3D-18 on Kinetics-400, 16 frames, 112x112 crops:
33.4M parameters. Recipe after the paper (Sec. 4.1): SGD, lr 0.01 (the paper
divides it by 10 every 10 epochs; here cosine), 45 epochs, batch 32/GPU.
"""
from configs import default, recipes

VARIANTS = ("", "k400")
BLOCK = "3d"
NAME = "r3d"


def get_config(arg: str = ""):
  return build(arg, NAME, BLOCK)


def build(arg: str, name: str, block: str):
  """Shared by configs/r3d.py and configs/r2plus1d.py."""
  config = default.get_config()
  config.model.name = name
  config.model.block = block
  config.model.temporal_kernel = 3
  config.model.temporal_stride = True
  config.model.temporal_padding = "zeros"
  if block == "2plus1d":
    # Tran et al.'s M_i for each conv would give 33.4M params; the published
    # 31.5M / 40.5 G (torchvision r2plus1d_18) reuse a block's first M.
    config.model.mid_rule = "block_input"
  config.model.dropout_rate = 0.0
  config.model.dtype = "float32"
  if arg == "k400":
    return _k400(config)
  if arg:
    raise ValueError(f"{name}.py: unknown config argument {arg!r}; use '' or "
                     "'k400'")
  config.model.widths = (16, 32, 64, 128)
  config.model.blocks_per_stage = (1, 1, 1, 1)
  config.model.stem_width = 16
  if block == "2plus1d":
    config.model.stem_mid_width = 16
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _k400(config):
  # Frames stored at short side 128 (the paper's 128x171), random 112 crops,
  # flip; test: centre 112 crops of 10 clips.
  recipes.storage(config, recipes.RESNET3D_SHORT_SIDE)
  config.dataset.name = "kinetics400"
  config.dataset.num_frames = 16
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 112
  config.dataset.flip = True
  config.model.widths = (64, 128, 256, 512)
  config.model.blocks_per_stage = (2, 2, 2, 2)
  config.model.stem_width = 64
  if config.model.block == "2plus1d":
    config.model.stem_mid_width = 45  # the paper's (2+1)D stem
  config.batch_size = 32
  config.num_train_epochs = 45.0
  config.log_every_steps = 100
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 1000
  config.num_test_clips = 10
  config.num_test_crops = 1
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 1e-4
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
