"""I3D-R50 and NL-I3D-R50 (Wang et al. 2018, "Non-local Neural Networks").

`configs/i3d_r50.py`: a narrow I3D ResNet (inner widths 8..64, one bottleneck
per stage, 3x1x1 first convs in stages 2-4, no stem pool for 32x32 crops,
pool2 halving time: 8 -> 4 frames) with one embedded-Gaussian non-local block
after stage 2's block, on the embedded `synthetic_motion` dataset, 8x32x32
clips, for a 2-core CPU.
`configs/i3d_r50.py:k400`: the paper's I3D_{3x1x1} ResNet-50 baseline on
Kinetics-400: 32 frames at stride 2 (64 consecutive frames), 224x224 crops,
conv1 5x7x7 stride 2 in time, pool1/pool2 halving time: 28.0M parameters,
33.1 G multiply-adds per view. Recipe (Sec. 4, "Training"): SGD momentum
0.9, weight decay 1e-4, batch 64, lr 0.01 (the paper divides it by 10 at
150k and 300k of 400k iterations, from ImageNet weights; here cosine over
400k steps), dropout 0.5; data `recipes.slowfast_kinetics` (short side
jittered in [256, 320], 224 crops, flip; test fully convolutionally at short
side 256: 10 clips x 3 crops of 256).
`configs/i3d_r50.py:nl_k400`: NL I3D-R50, the same with 5 non-local blocks
(2 in res3, 3 in res4, every other residual block): 35.4M parameters, 41.3 G.
"""
from configs import default, recipes

VARIANTS = ("", "k400", "nl_k400")
NONLOCAL_5_BLOCKS = ((), (1, 3), (1, 3, 5), ())


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "i3d_r50"
  config.model.nonlocal_mode = "embedded_gaussian"
  config.model.nonlocal_sub_sample = True
  config.model.temporal_padding = "zeros"
  config.model.dtype = "float32"
  if arg in ("k400", "nl_k400"):
    return _k400(config, arg == "nl_k400")
  if arg:
    raise ValueError(f"i3d_r50.py: unknown config argument {arg!r}; use '', "
                     "'k400' or 'nl_k400'")
  config.model.widths = (8, 16, 32, 64)
  config.model.blocks_per_stage = (1, 1, 1, 1)
  config.model.stem_width = 16
  config.model.stem_temporal_kernel = 1
  config.model.stem_temporal_stride = 1
  config.model.stem_pool = False
  config.model.pool1_temporal_stride = 1
  config.model.pool2_temporal_stride = 2
  config.model.temporal_kernels = ((1,), (3,), (3,), (3,))
  config.model.nonlocal_blocks = ((), (0,), (), ())
  config.model.dropout_rate = 0.0
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _k400(config, nonlocal_blocks: bool):
  default.resnet50_kinetics_recipe(config)
  recipes.slowfast_kinetics(config)
  config.dataset.name = "kinetics400"
  config.dataset.num_frames = 32
  config.dataset.frame_stride = 2
  config.model.stem_temporal_kernel = 5
  config.model.stem_temporal_stride = 2
  config.model.pool1_temporal_stride = 2
  config.model.pool2_temporal_stride = 2
  config.model.temporal_kernels = ((3,), (3, 1), (3, 1), (1, 3))
  config.model.nonlocal_blocks = NONLOCAL_5_BLOCKS if nonlocal_blocks else ()
  # ImageNet start (vidjax/init_image.py): a transformers ResNet-50 folder
  # (e.g. microsoft/resnet-50) or a torchvision / timm resnet50 state dict
  # you have: python -m tools.convert_checkpoint --source=PATH --out=R50,
  # then --config.init_from.checkpoint_path=R50;
  # 2D kernels inflated as I3D (repeat, divide by kt; or "center").
  config.init_from.kernel_inflation = "mean"
  config.num_train_steps = 400_000
  config.eval_every_steps = 20_000
  config.checkpoint_every_steps = 5000
  config.optimizer.learning_rate = 0.01
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
