"""X3D (Feichtenhofer, CVPR 2020, "X3D: Expanding Architectures for
Efficient Video Recognition"; vidjax/models/x3d.py).

`configs/x3d.py`: a small X3D on the embedded `synthetic_motion` dataset for
a 2-core CPU: X3D's base network unexpanded in depth (depth_factor 1: res2-5
of 1, 2, 5, 3 blocks), base width 8 (width factor 2: stage widths 16, 32, 64,
128, inner widths 36, 72, 144, 288), head 256 wide, no dropout, each
block's last BN scale starting at 1 (not 0: see get_config); 8x32x32 clips
(maps 16x16 after the stem, 1x1 at res5; time never strided). 0.53M
parameters, 11.9 M multiply-adds per clip; the shared CPU recipe
(`default.synthetic_recipe`) for 900 steps (at 600, two CLI runs of the same
config gave 83.5% and 75.6% test top-1 on motion: CPU runs are not
bit-reproducible; 900 steps: 85.6%).

`:xs`, `:s`, `:m`, `:l`: the model zoo's X3D-XS/S/M/L on Kinetics-400
(PySlowFast configs/Kinetics/X3D_*.yaml): frames x sampling stride 4x12,
13x6, 16x5, 16x5; training crops 160, 160, 224, 312 from a short side
uniform in [182, 228], [182, 228], [256, 320], [356, 446]; flip. Test: 10
clips x 3 crops of 182 / 182 / 256 / 356 at that short side (the zoo's
30-view top-1: 69.5 / 73.5 / 76.2 / 77.5). SGD momentum 0.9 (Nesterov), lr
0.1 at batch 128 (L: 0.05 at 64), 35 warm-up epochs (PySlowFast starts the
warm-up at 0.01, vidjax at 0), cosine over 300 epochs (L: 256), weight
decay 5e-5 (vidjax: kernels only; PySlowFast: every non-BN parameter),
dropout 0.5. Stored short side: Kinetics 320 (KINETICS_SHORT_SIDE) for
XS/S/M; 446 for L, whose jitter reaches 446 (320 would upsample 1.39x).
Per view (tools/model_table, training input): 3.79M / 3.79M / 3.79M /
6.15M parameters, 0.605 / 1.96 / 4.73 / 18.37 G multiply-adds (zoo: 3.8 /
3.8 / 3.8 / 6.2 M, 0.60 / 1.96 / 4.73 / 18.37 GFLOPs).
"""
from configs import default, recipes
from vidjax.models.x3d import VARIANTS as ZOO

VARIANTS = ("", "xs", "s", "m", "l")
X3D_L_SHORT_SIDE = 446


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "x3d"
  config.model.dim_c1 = 12
  config.model.width_factor = 2.0
  config.model.depth_factor = 2.2
  config.model.bottleneck_factor = 2.25
  config.model.dim_c5 = 2048
  config.model.se_ratio = 1 / 16
  config.model.zero_init_last_bn = True  # PySlowFast ZERO_INIT_FINAL_BN
  config.model.depthwise_impl = "auto"
  config.model.dtype = "float32"
  if arg in ZOO:
    return _k400(config, arg)
  if arg:
    raise ValueError(f"x3d.py: unknown config argument {arg!r}; use '', "
                     "'xs', 's', 'm' or 'l'")
  config.model.dim_c1 = 8
  config.model.depth_factor = 1.0
  config.model.dim_c5 = 256
  config.model.dropout_rate = 0.0
  # Blocks start with their last BN scale at 1: with PySlowFast's 0 the
  # branches open slowly (CLI, 600 steps: 52.6% test top-1 vs 83.5 / 75.6%).
  config.model.zero_init_last_bn = False
  return default.synthetic_recipe(config, 900, warmup_steps=50)


def _k400(config, arg: str):
  fields, (frames, stride, crop, test_crop) = ZOO[arg]
  for key, value in fields.items():
    config.model[key] = value
  config.model.dropout_rate = 0.5
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  recipes.storage(config, X3D_L_SHORT_SIDE if arg == "l"
                  else recipes.KINETICS_SHORT_SIDE)
  d = config.dataset
  d.name = "kinetics400"
  d.num_frames, d.frame_stride = frames, stride
  d.crop_size = crop
  d.train_resize_short = {160: 182, 224: 256, 312: 356}[crop]
  d.train_resize_short_max = {160: 228, 224: 320, 312: 446}[crop]
  d.scale_jitter = (1.0, 1.0)
  d.crop_mode = "random"
  d.flip = True
  d.test_resize_short, d.test_crop_size = test_crop, test_crop
  config.num_test_clips, config.num_test_crops = 10, 3
  config.batch_size = 64 if arg == "l" else 128
  config.num_train_epochs = 256.0 if arg == "l" else 300.0
  config.log_every_steps = 100
  config.eval_every_steps = 10_000
  config.checkpoint_every_steps = 2000
  o = config.optimizer
  o.name, o.momentum, o.nesterov = "sgd", 0.9, True
  o.learning_rate = 0.05 if arg == "l" else 0.1
  o.warmup_epochs = 35.0
  o.weight_decay = 5e-5
  return config
