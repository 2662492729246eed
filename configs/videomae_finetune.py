"""VideoMAE finetuning / classification (Tong et al. 2022).

Loads a pretrained encoder with `--config.init_from.checkpoint_path=DIR`
(a pretraining run, or `python -m tools.export_checkpoint`'s encoder-only
output): every `encoder/...` parameter is copied by name; `fc_norm` and the
head start fresh. Mean pooling + fc_norm + head (init scale 0.001), drop path
0.1, layer-wise lr decay 0.75, label smoothing 0.1, AdamW b2 0.999, wd 0.05,
5 warm-up epochs, cosine to min lr 1e-6 x batch / 256.

`configs/videomae_finetune.py`: the small encoder of
`configs/videomae_pretrain.py` on the embedded `synthetic_motion` (no mixing
or RandAugment on these 32x32 clips; no layer decay, measured in the config).
Paper variants (the release's run_class_finetuning.py and its
scripts/<dataset>/.../finetune.sh; base lr x batch / 256; augmentation
`configs/recipes.videomae_finetune`: Inception crop, flip (not SSv2),
RandAugment m7 n4, random erasing 0.25, mixup 0.8 / cutmix 1.0, label
smoothing 0.1; test 5 x 3 views on K400, 2 x 3 on SSv2):
* `k400_vit_s`: ViT-S, batch 384, base lr 5e-4, 150 epochs, repeated aug 2.
* `k400_vit_b`: ViT-B, batch 512, base lr 1e-3, 100 epochs (after the
  800-epoch pretraining), repeated aug 1.
* `k400_vit_l`: ViT-L, batch 128, base lr 2e-3, 35 epochs, repeated aug 2.
* `ssv2_vit_b`: ViT-B, batch 512, base lr 5e-4, 50 epochs, frame stride 2.
Drop path is 0.1 in every release script (its default; the L script sets
none). These are the model-table rows: params 22/87/305M and 57/180/597
GFLOPs per 16x224^2 view in the paper (tests/test_models_videomae.py).
"""
from configs import default, recipes
from configs import videomae_pretrain as pretrain

VARIANTS = ("", "k400_vit_s", "k400_vit_b", "k400_vit_l", "ssv2_vit_b")

# size: (batch, base lr, epochs, repeated augmentation) from the scripts.
_K400 = {"s": (384, 5e-4, 150.0, 2), "b": (512, 1e-3, 100.0, 1),
         "l": (128, 2e-3, 35.0, 2)}
_SSV2 = {"b": (512, 5e-4, 50.0, 1)}


def get_config(arg: str = ""):
  config = default.get_config()
  config.task = "classification"
  config.model.name = "videomae"
  config.model.use_mean_pooling = True
  config.model.head_init_scale = 0.001
  config.model.stochastic_depth = 0.1
  config.optimizer.layer_decay = 0.75
  config.label_smoothing = 0.1
  if arg in VARIANTS[1:]:
    return _paper(config, *arg.split("_vit_"))
  if arg not in ("", "local"):
    raise ValueError(f"videomae_finetune.py: unknown config argument {arg!r}; "
                     f"use one of {VARIANTS}")
  pretrain.set_tiny_encoder(config.model)
  # No layer-wise lr decay on this 4-block encoder: 0.75 held both the
  # pretrained and the scratch encoder back (60 videos/class, 600 steps:
  # scratch 74.9% -> 82.0%, pretrained 44.9% -> 79.0%; issue #17).
  config.optimizer.layer_decay = 0.0
  return default.synthetic_recipe(config, num_train_steps=1200,
                                  warmup_steps=100)


def _paper(config, dataset: str, size: str):
  pretrain.set_video_input(config, dataset)
  ssv2 = dataset == "ssv2"
  recipes.videomae_finetune(config, ssv2=ssv2)
  pretrain.set_encoder(config.model, size)
  batch, base_lr, epochs, repeats = (_SSV2 if ssv2 else _K400)[size]
  config.dataset.repeated_aug = repeats
  config.batch_size = batch
  config.num_train_epochs = epochs
  config.log_every_steps = 100
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 1000
  opt = config.optimizer
  opt.name = "adamw"
  opt.b1, opt.b2 = 0.9, 0.999
  opt.weight_decay = 0.05
  opt.learning_rate = base_lr * batch / 256
  opt.end_lr_factor = 1e-6 / base_lr
  opt.warmup_epochs = 5.0
  opt.schedule = "cosine"
  opt.grad_clip_norm = 0.0
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  # Fits the paper batch on 8 GPUs of 80 GB and a TPU v4-16 (8 x 32 GiB):
  # tools.memory_table, benchmarks/RESULTS.md "Memory at paper batch".
  config.model.scan_layers = True
  config.model.remat = True
  config.grad_accum_steps = {"s": 1, "b": 2, "l": 1}[size]
  return config
