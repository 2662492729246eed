"""VideoMAE masked-autoencoder pretraining (Tong et al. 2022).

`configs/videomae_pretrain.py`: a small ViT pretrained on the embedded
`synthetic_motion` clips (labels unused) on a CPU in minutes (mask 0.9 of its
4x4 tubelet grid: 2 visible tubes; 0.75 measured no better, issue #17 in
benchmarks/RESULTS.md; tools/videomae_learning.py); then

    python -m tools.export_checkpoint --workdir=RUN --out=ENC
    python -m vidjax.main --config=configs/videomae_finetune.py --workdir=FT \
        --config.init_from.checkpoint_path=ENC

Paper variants (the release's run_mae_pretraining.py defaults and its
scripts/<dataset>/..._tubemasking_ratio_0.9_epoch_*/pretrain.sh): 16 frames,
224 crop, tubelet 2x16x16, tube masking 0.9, normalised-pixel targets,
TSN multi-scale crop, AdamW b1 0.9 b2 0.95, weight decay 0.05, base lr
1.5e-4 x batch / 256 (min lr 1e-5 x batch / 256 -> end_lr_factor 1/15),
40 warm-up epochs, cosine, no gradient clipping, ImageNet mean/std.
* `k400_vit_s`: ViT-S (384, 12 layers, 6 heads), decoder 4 x 192 (3 heads),
  frame stride 4, flip, batch 1024 (32 x 32 GPUs), 1600 epochs.
* `k400_vit_b`: ViT-B (768, 12, 12), decoder 4 x 384 (6 heads), stride 4,
  flip, batch 2048 (32 x 64 GPUs), 800 epochs.
* `k400_vit_l`: ViT-L (1024, 24, 16), decoder 12 x 512 (8 heads), stride 4,
  flip, batch 512 (8 x 64 GPUs), 1600 epochs.
* `ssv2_vit_b`: ViT-B on Something-Something v2, stride 2, no flip (classes
  are direction-sensitive), batch 2048, 800 epochs.
The release warms up from 1e-6 x batch / 256, here from 0.

Masking off (the issue's speed comparison: a step at 0.9 vs one at 0.0,
`python -m tools.benchmark --config=configs/videomae_pretrain.py:k400_vit_b
--config.model.mask_ratio=0.0`): every token goes through the encoder and
the decoder reconstructs all of them.
"""
from configs import default, recipes

VARIANTS = ("", "k400_vit_s", "k400_vit_b", "k400_vit_l", "ssv2_vit_b")

# ViT encoders: hidden size, layers, heads (MLP 4x); decoders: width, heads,
# layers (MLP 4x), as in the release's pretrain_videomae_{small,base,large}.
ENCODERS = {"s": (384, 12, 6), "b": (768, 12, 12), "l": (1024, 24, 16),
            "h": (1280, 32, 16)}
DECODERS = {"s": (192, 3, 4), "b": (384, 6, 4), "l": (512, 8, 12),
            "h": (640, 8, 12)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def set_encoder(model, size: str):
  """Sets the ViT-`size` encoder fields of `config.model`."""
  hidden, layers, heads = ENCODERS[size]
  model.scan_layers = False  # True + remat: recompute each block's
  model.remat = False        # activations in backward (see the README)
  model.patch_size = (2, 16, 16)
  model.hidden_size, model.num_layers, model.num_heads = hidden, layers, heads
  model.mlp_dim = 4 * hidden


def set_tiny_encoder(model):
  """The small CPU encoder shared with configs/videomae_finetune.py."""
  model.patch_size = (2, 8, 8)
  model.hidden_size, model.num_layers, model.num_heads = 64, 4, 4
  model.mlp_dim = 256


def set_video_input(config, dataset: str):
  """16 frames at 224 of Kinetics-400 (stride 4, flip) or SSv2 (2, no flip)."""
  recipes.storage(config, recipes.KINETICS_SHORT_SIDE if dataset == "k400"
                  else recipes.SSV2_SHORT_SIDE)
  d = config.dataset
  d.name = {"k400": "kinetics400", "ssv2": "something_something_v2"}[dataset]
  d.num_frames, d.crop_size = 16, 224
  d.frame_stride = 4 if dataset == "k400" else 2
  d.flip = dataset == "k400"
  d.mean, d.std = IMAGENET_MEAN, IMAGENET_STD


def get_config(arg: str = ""):
  config = default.get_config()
  config.task = "videomae_pretrain"
  config.model.name = "videomae_pretrain"
  config.model.mask_ratio = 0.9
  config.model.mask_type = "tube"  # | "random" (VideoMAE Tab. 1c, #17)
  config.model.norm_pix_loss = True
  if arg in VARIANTS[1:]:
    return _paper(config, *arg.split("_vit_"))
  if arg not in ("", "local"):
    raise ValueError(f"videomae_pretrain.py: unknown config argument {arg!r}; "
                     f"use one of {VARIANTS}")
  set_tiny_encoder(config.model)
  config.model.decoder_hidden_size = 32
  config.model.decoder_num_heads = 2
  config.model.decoder_num_layers = 2
  config.model.decoder_mlp_dim = 128
  default.synthetic_recipe(config, num_train_steps=1200, warmup_steps=100)
  config.optimizer.b2 = 0.95
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = 0.0
  config.num_test_clips = 1
  return config


def _paper(config, dataset: str, size: str):
  set_video_input(config, dataset)
  config.dataset.crop_mode = "multiscale"
  set_encoder(config.model, size)
  width, heads, layers = DECODERS[size]
  config.model.decoder_hidden_size = width
  config.model.decoder_num_heads = heads
  config.model.decoder_num_layers = layers
  config.model.decoder_mlp_dim = 4 * width
  config.batch_size = {"s": 1024, "b": 2048, "l": 512}[size]
  config.num_train_epochs = {"s": 1600.0, "b": 800.0, "l": 1600.0}[size]
  config.log_every_steps = 100
  config.eval_every_steps = 10000
  config.checkpoint_every_steps = 1000
  config.num_test_clips, config.num_test_crops = 1, 1
  opt = config.optimizer
  opt.name = "adamw"
  opt.b1, opt.b2 = 0.9, 0.95
  opt.weight_decay = 0.05
  opt.learning_rate = 1.5e-4 * config.batch_size / 256
  opt.end_lr_factor = 1e-5 / 1.5e-4
  opt.warmup_epochs = 40.0
  opt.schedule = "cosine"
  opt.grad_clip_norm = 0.0
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  # Fits the paper batch on 8 GPUs of 80 GB and a TPU v4-16 (8 x 32 GiB):
  # tools.memory_table, benchmarks/RESULTS.md "Memory at paper batch".
  config.model.scan_layers = True
  config.model.remat = True
  config.grad_accum_steps = {"s": 1, "b": 4, "l": 2}[size]
  return config
