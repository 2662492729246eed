"""TSM (Lin et al. 2019, "TSM: Temporal Shift Module").

`configs/tsm.py`: a narrow TSM ResNet (inner widths 8..64, one bottleneck per
stage, no stem pool for 32x32 crops) on the embedded `synthetic_motion`
dataset, 8x32x32 clips, for a 2-core CPU.
`configs/tsm.py:k400`: TSM-R50 on Kinetics-400: 8 frames, 224x224 crops,
residual shift of 1/8 + 1/8 channels in every block: 24.3M parameters (those
of ResNet-50: the shift has none), 32.7 G multiply-adds per view (paper: 33).
Recipe (Sec. 4.1): SGD momentum 0.9, batch 64, lr 0.01 (the paper divides it
by 10 at epochs 40 and 80 of 100 from ImageNet weights; here cosine), weight
decay 1e-4, dropout 0.5; data `recipes.tsn_kinetics` (Kinetics stored at
short side 320; TSN multi-scale crops of frames resized to 256, flip; test
10 clips x 3 crops of 256). The paper samples one frame per segment of the
whole video (TSN); here 8 frames at stride 8 (its "dense sampling" setting).
`--config.model.shift_place=inplace` shifts the block input instead, `none`
gives the TSN baseline with the same parameters.
"""
from configs import default, recipes

VARIANTS = ("", "k400")


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "tsm"
  config.model.shift_place = "residual"
  config.model.shift_div = 8
  config.model.dtype = "float32"
  if arg == "k400":
    return _k400(config)
  if arg:
    raise ValueError(f"tsm.py: unknown config argument {arg!r}; use '' or "
                     "'k400'")
  config.model.widths = (8, 16, 32, 64)
  config.model.blocks_per_stage = (1, 1, 1, 1)
  config.model.stem_width = 16
  config.model.stem_pool = False
  config.model.dropout_rate = 0.0
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _k400(config):
  default.resnet50_kinetics_recipe(config)
  recipes.tsn_kinetics(config)
  config.dataset.name = "kinetics400"
  config.dataset.num_frames = 8
  config.dataset.frame_stride = 8
  # ImageNet start (vidjax/init_image.py): a transformers ResNet-50 folder
  # (e.g. microsoft/resnet-50) or a torchvision / timm resnet50 state dict
  # you have: python -m tools.convert_checkpoint --source=PATH --out=R50,
  # then --config.init_from.checkpoint_path=R50 (TSM's
  # weights are the 2D ResNet's, loaded as they are).
  config.num_train_epochs = 100.0
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 1000
  config.optimizer.learning_rate = 0.01
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
