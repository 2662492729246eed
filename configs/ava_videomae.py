"""ViT / VideoMAE AVA action detector (Tong et al., NeurIPS 2022, AVA
fine-tuning; head as Feichtenhofer et al. 2019 Sec. 5). The encoder's tokens
are reshaped to a (T/2, H/p, W/p, D) map, pooled per box by the AVA head
(vidjax/tasks/detection/model.py, "ava_videomae").

`configs/ava_videomae.py`: the tiny encoder of configs/videomae_pretrain.py
(tubelets 2x8x8, width 64, 4 blocks) on the embedded `synthetic_ava`
(8 frames at stride 2, 64x64: an 8x8 token map), 600 steps: frame-mAP@0.5
0.211 through `python -m vidjax.main` (GT boxes; 0.186 / 0.206 at steps 200 /
400, the same after a kill at step 200 and a rerun). Far below SlowFast's
(0.500 at 600 steps, 0.853 at 2000): the from-scratch ViT learns no motion
within 600 steps (train loss 0.405 at step 600, the single-frame control's
0.409; SlowFast 0.282), so it scores like the controls (0.18-0.32).

`configs/ava_videomae.py:k400_vit_b`: VideoMAE ViT-B for AVA v2.2 (the
MCG-NJU VideoMAE-Action-Detection release; mmaction2 configs/detection/
videomae): 16 frames at stride 4, 224 crops (a 14x14 token map, stride 16),
80-class sigmoid head, AdamW 1.25e-4 (batch 64), weight decay 0.05, layer
decay 0.75, 20 epochs, drop path 0.2; initialised from a Kinetics-400
VideoMAE encoder (--config.init_from.checkpoint_path). Published: 26.7 mAP
(K400 self-supervised only), 31.8 (+ K400 supervised fine-tuning).
"""
from configs import default
from configs import videomae_pretrain as pretrain
from configs.ava_slowfast import detection_data

VARIANTS = ("", "k400_vit_b")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"ava_videomae.py: unknown config argument {arg!r}; "
                     f"use one of {VARIANTS}")
  config = default.get_config()
  config.task = "detection"
  m = config.model
  m.name = "ava_videomae"
  m.head_dropout_rate = 0.5
  m.pooling = "roi"
  m.roi_size, m.sampling_ratio, m.aligned = 7, 0, True
  if arg:
    pretrain.set_encoder(m, "b")
    detection_data(config, 16, 4, 224)
    config.dataset.name = "ava"
    m.stochastic_depth = 0.2
    m.dtype = "bfloat16"
    config.batch_size = 64
    config.num_train_epochs = 20.0
    opt = config.optimizer
    opt.name, opt.learning_rate, opt.weight_decay = "adamw", 1.25e-4, 0.05
    opt.layer_decay = 0.75
    opt.warmup_epochs = 2.0
    return config
  pretrain.set_tiny_encoder(m)
  config = default.synthetic_recipe(config, 600, warmup_steps=50)
  detection_data(config, 8, 2, 64)
  m.head_dropout_rate = 0.2
  config.batch_size = 16
  config.optimizer.learning_rate = 1e-3
  return config
