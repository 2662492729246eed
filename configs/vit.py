"""Image ViT per frame (Dosovitskiy et al. 2021), logits averaged over frames.

`configs/vit.py`: a small ViT (8x8 patches of 32x32 frames, width 64, 4
layers) on `synthetic_motion/appearance`, where one frame tells the class;
`configs/vit.py:motion` the same on `motion`, where it should sit near chance
(a per-frame model cannot see motion). Such a run can initialise a ViViT
(`init_from.checkpoint_path`, see vidjax/init_adapt.py) with the same
patch size and width.
`configs/vit.py:s16|b16|l16`: ViT-S/16, B/16, L/16 on ImageNet (1 frame,
224 crop, 1000 classes) with the paper's from-scratch ImageNet recipe (Tab. 3
and App. B.1: Adam(W) b1 0.9 b2 0.999, batch 4096, base lr 3e-3, cosine,
weight decay 0.3, dropout 0.1, 10k warm-up steps, 300 epochs, global-norm
clip 1; inputs scaled to [-1, 1]). ViT-S/16 is not in the ViT paper (it is
DeiT-S, Touvron et al. 2021, trained there with heavy augmentation this
codebase lacks); it shares the recipe here. Tab. 1 sizes: see
vidjax/models/vit.py.
"""
from configs import default

VARIANTS = ("", "motion", "s16", "b16", "l16")  # rows of tools/model_table

_PAPER = {"s16": "S", "b16": "B", "l16": "L"}


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "vit"
  config.model.classifier = "token"
  if arg in _PAPER:
    return _imagenet(config, _PAPER[arg])
  if arg not in ("", "appearance", "motion"):
    raise ValueError(f"vit.py: unknown config argument {arg!r}; use one of "
                     f"{VARIANTS}")
  config.dataset.config = arg or "appearance"
  config.model.patch_size = 8
  config.model.hidden_size = 64
  config.model.num_heads = 4
  config.model.mlp_dim = 256
  config.model.num_layers = 4
  config.model.head_init_std = 0.02  # small random head: faster from scratch
  return default.synthetic_recipe(config, 1200, warmup_steps=100)


def _imagenet(config, size: str):
  from vidjax.models.vit import SIZES
  hidden, layers, heads, mlp = SIZES[size]
  config.dataset.name = "imagenet"
  config.dataset.num_frames = 1
  config.dataset.frame_stride = 1
  config.dataset.crop_size = 224
  config.dataset.flip = True
  config.dataset.mean = (0.5, 0.5, 0.5)
  config.dataset.std = (0.5, 0.5, 0.5)
  config.model.patch_size = 16
  config.model.hidden_size = hidden
  config.model.num_layers = layers
  config.model.num_heads = heads
  config.model.mlp_dim = mlp
  config.model.dropout_rate = 0.1
  config.model.head_init_std = 0.0
  config.batch_size = 4096
  config.eval_batch_size = 1024
  config.num_train_epochs = 300.0
  config.log_every_steps = 100
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 2000
  config.num_test_clips = 1
  config.num_test_crops = 1
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 10_000
  config.optimizer.weight_decay = 0.3
  config.optimizer.grad_clip_norm = 1.0
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  # Fits the paper batch on 8 GPUs of 80 GB and a TPU v4-16 (8 x 32 GiB):
  # tools.memory_table, benchmarks/RESULTS.md "Memory at paper batch".
  config.model.scan_layers = True
  config.model.remat = True
  config.grad_accum_steps = 2 if size == "L" else 1
  return config
