"""MoViNets (Kondratyuk et al., CVPR 2021, "MoViNets: Mobile Video Networks for
Efficient Video Recognition"; vidjax/models/movinet.py).

`configs/movinet.py`: a tiny causal (stream) MoViNet (variant "tiny": three
stages, 0.03M backbone parameters) on the embedded `synthetic_motion`
dataset, 8x32x32 clips, for a 2-core CPU. Trained on clips like any model;
`python -m tools.stream --run=DIR --video=FILE` then runs it frame by frame
with stream buffers (tools/stream.py).

Kinetics-600 variants (the release's 50-frame clips at stride 5; 600
classes; vidjax has no Kinetics-600 builder, so these are architecture
entries of tools.model_table: parameters and multiply-adds):
* `:a0`, `:a1`, `:a2`: the causal stream models (causal convs with stream
  buffers, cumulative-average SE and head), 50x172x172 (A0, A1) and
  50x224x224 (A2), the release's input sizes;
* `:a0_base`: A0 with centred temporal padding and clip averages (the
  paper's base model).
Counts (600 classes, `vidjax.costs.kernel_gmacs`): A0 3.11M parameters, 2.65
G multiply-adds (published 3.1M / 2.7 "GFLOPs": they are multiply-adds);
A1 4.69M, 5.91 G (published 4.6M / 6.0); A2 5.25M, 11.61 G at the README's
50x224x224 (published 4.8M / 10: those figures do not describe the released
A2, whose block specs vidjax's equal and whose 20 MB checkpoint matches
5.25M parameters; vidjax/models/movinet.py docstring,
benchmarks/published_figures.json). The stream checkpoints of the release's
2021-07 update use (2+1)D convs and "2plus3d" SE with hard-swish:
`--config.model.conv_type=2plus1d --config.model.se_type=2plus3d
--config.model.activation=hard_swish --config.model.gating=hard_sigmoid`.
Recipe of the released configs: random resized crops (area 8-100%, aspect
1/2-2) of frames with short side 192 (256 for A2's 224 crops), flip; test
one centre crop of one clip; batch 1024, RMSprop (lr 1.8, cosine, 2145
warm-up steps, 85785 steps), label smoothing 0.1, dropout 0.2, weight decay
3e-5. vidjax has AdamW / SGD: SGD momentum 0.9 with that schedule stands in
for RMSprop (an assumption, not the release).
"""
from configs import default, recipes

VARIANTS = ("", "a0", "a1", "a2", "a0_base")
PAPER = {"a0": 172, "a1": 172, "a2": 224, "a0_base": 172}


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "movinet"
  config.model.causal = True
  config.model.conv_type = "3d"
  config.model.se_type = "3d"
  config.model.activation = "swish"
  config.model.gating = "sigmoid"
  config.model.head_width = 2048
  config.model.rezero_init = 0.0
  config.model.impl = "auto"
  config.model.dtype = "float32"
  if arg in PAPER:
    return _kinetics600(config, arg)
  if arg:
    raise ValueError(f"movinet.py: unknown config argument {arg!r}; use one "
                     f"of {VARIANTS}")
  config.model.variant = "tiny"
  config.model.head_width = 128
  config.model.dropout_rate = 0.0
  # Blocks start as residual units (the release's 0 would leave them off for
  # most of a 600-step AdamW run: the scalar moves ~lr per step).
  config.model.rezero_init = 1.0
  return default.synthetic_recipe(config, 600, warmup_steps=50)


def _kinetics600(config, arg: str):
  size = PAPER[arg]
  config.model.variant = arg.split("_")[0]
  config.model.causal = not arg.endswith("_base")
  config.model.dropout_rate = 0.2
  config.model.impl = "conv"  # accelerators; counts every multiply-add
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  recipes.storage(config, 192 if size == 172 else 256)
  d = config.dataset
  d.name = "kinetics600"
  d.num_frames = 50
  d.frame_stride = 5
  d.crop_size = size
  d.crop_mode = "resized"
  d.crop_scale = (0.08, 1.0)
  d.crop_ratio = (0.5, 2.0)
  d.flip = True
  d.test_resize_short = d.resize_short
  config.label_smoothing = 0.1
  config.batch_size = 1024
  config.num_train_steps = 85_785
  config.log_every_steps = 100
  config.eval_every_steps = 10_000
  config.checkpoint_every_steps = 2000
  config.num_test_clips = 1
  config.num_test_crops = 1
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1.8
  config.optimizer.warmup_steps = 2145
  config.optimizer.weight_decay = 3e-5
  config.optimizer.grad_clip_norm = 1.0
  return config
