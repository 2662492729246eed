"""SlowFast R50 (Feichtenhofer et al. 2019, "SlowFast Networks").

`configs/slowfast.py`: a narrow SlowFast (alpha 4: slow 2 frames, fast 8;
beta 1/4; inner widths 8..64, one bottleneck per stage, no stem pool for
32x32 crops) on the embedded `synthetic_motion` dataset, for a 2-core CPU.
`configs/slowfast.py:4x16` and `:8x8`: SlowFast R50 on Kinetics-400. One
32-frame clip sampled at stride tau / alpha = 2 (fast pathway 32 frames;
slow 4 frames for alpha 8, 8 for alpha 4), beta 1/8, time-strided
convolution laterals (5x1x1; 7x1x1 for 8x8 as the released config). 34.5M /
34.6M parameters. G multiply-adds per view: 36.1 / 65.7 at the paper's
256x256 test crops (the published figures, the test views here), 27.6 /
50.3 at the 224x224 training crop (what tools/model_table shows). Recipe (Sec. 4 and
appendix A.2, from scratch): SGD momentum 0.9, weight decay 1e-4, lr 1.6 at
batch 1024 -> 0.1 at batch 64 (linear scaling), 34 warm-up epochs, half-period
cosine, 196 epochs, dropout 0.5; data `recipes.slowfast_kinetics` (short
side in [256, 320], 224 crops, flip; test 10 clips x 3 crops of 256).
"""
from configs import default, recipes

VARIANTS = ("", "4x16", "8x8")
PAPER = {"4x16": dict(alpha=8, lateral_kernel=5),
         "8x8": dict(alpha=4, lateral_kernel=7)}


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "slowfast"
  config.model.beta_inv = 8
  config.model.lateral = "conv"  # "conv" | "time_to_channel" | "time_sample"
  config.model.lateral_channel_ratio = 2
  config.model.slow_temporal_kernels = (1, 1, 3, 3)
  config.model.fast_temporal_kernels = (3, 3, 3, 3)
  config.model.slow_stem_temporal_kernel = 1
  config.model.fast_stem_temporal_kernel = 5
  config.model.dtype = "float32"
  if arg in PAPER:
    return _k400(config, **PAPER[arg])
  if arg:
    raise ValueError(f"slowfast.py: unknown config argument {arg!r}; use '', "
                     "'4x16' or '8x8'")
  config.model.alpha = 4
  config.model.beta_inv = 4
  config.model.lateral_kernel = 5
  config.model.widths = (8, 16, 32, 64)
  config.model.blocks_per_stage = (1, 1, 1, 1)
  config.model.stem_width = 16
  config.model.stem_pool = False
  config.model.fast_stem_temporal_kernel = 3
  config.model.dropout_rate = 0.0
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _k400(config, alpha: int, lateral_kernel: int):
  default.resnet50_kinetics_recipe(config)
  recipes.slowfast_kinetics(config)
  config.dataset.name = "kinetics400"
  config.dataset.num_frames = 32
  config.dataset.frame_stride = 2   # tau / alpha: 16 / 8 and 8 / 4
  config.model.alpha = alpha
  config.model.lateral_kernel = lateral_kernel
  # ImageNet start (vidjax/init_image.py): a transformers ResNet-50 folder
  # (e.g. microsoft/resnet-50) or a torchvision / timm resnet50 state dict
  # you have: python -m tools.convert_checkpoint --source=PATH --out=R50,
  # then --config.init_from.checkpoint_path=R50 (the Slow
  # pathway; the paper itself trains Kinetics from scratch).
  config.num_train_epochs = 196.0
  config.eval_every_steps = 10_000
  config.checkpoint_every_steps = 2000
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_epochs = 34.0
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
