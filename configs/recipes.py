"""Training-augmentation and test-view recipes of the papers, as config setters.

Each function sets the input-pipeline fields of `config` (configs/default.py:
config.dataset.* augmentation fields, crop size, flip, label smoothing and
the test views) to a published recipe and returns the config; models,
optimisers and schedules stay with the model's own config. Sources:

* ViViT: Arnab et al. 2021, "ViViT: A Video Vision Transformer" (Sec. 4.1,
  App. A) and the official scenic configs (projects/vivit/configs:
  kinetics400/vivit_base_k400.py, something_something_v2/
  vivit_large_factorised_encoder.py), which use DMVR's scale jitter and
  colour augmentation.
* VideoMAE finetuning: Tong et al. 2022, "VideoMAE: Masked Autoencoders are
  Data-Efficient Learners for Self-Supervised Video Pre-Training" (App.,
  finetuning table) and its run_class_finetuning.py defaults/scripts
  (--aa rand-m7-n4-mstd0.5-inc1, --reprob 0.25, --mixup 0.8, --cutmix 1.0,
  --smoothing 0.1, --num_sample 2, --short_side_size 224, 5 x 3 test views
  on Kinetics, 2 x 3 on SSv2; no flip on SSv2).
* SlowFast: Feichtenhofer et al. 2019, "SlowFast Networks for Video
  Recognition" (Sec. 4, "Training"/"Inference"): a 224 crop from a video
  whose short side is sampled in [256, 320], horizontal flip; test 10 clips
  x 3 crops of 256 after resizing the short side to 256.
"""

# Not a model config: tools/model_table iterates VARIANTS, so it lists no row.
VARIANTS = ()


def vivit_kinetics(config):
  """ViViT on Kinetics: short side 256, per-axis scale jitter 0.9-1.33, random
  224 crop, flip, colour jitter p 0.8 (DMVR strengths: brightness 32/255,
  saturation and contrast 0.6-1.4, hue 0.2), colour drop p 0.1; no mixup or
  label smoothing. Test: 4 clips x 3 crops at short side 256."""
  d = config.dataset
  d.crop_size = 224
  d.train_resize_short, d.train_resize_short_max = 256, 0
  d.scale_jitter = (0.9, 1.33)
  d.crop_mode = "random"
  d.flip = True
  d.color_jitter, d.color_grayscale = 0.8, 0.1
  d.color_brightness, d.color_contrast = 32 / 255, 0.4
  d.color_saturation, d.color_hue = 0.4, 0.2
  d.test_resize_short = 256
  config.num_test_clips, config.num_test_crops = 4, 3
  return config


def vivit_ssv2(config):
  """ViViT on Something-Something v2 (scenic ViViT-L FE config): short side
  288, scale jitter 0.9-1.33, random 256 crop, no colour jitter, RandAugment
  (2 ops, magnitude 20 on the /10 scale of TF's RandAugment), mixup alpha
  0.3, label smoothing 0.3. Flip stays off (SSv2 classes are left/right
  sensitive). Test: 4 clips x 3 crops at short side 288."""
  d = config.dataset
  d.crop_size = 256
  d.train_resize_short, d.train_resize_short_max = 288, 0
  d.scale_jitter = (0.9, 1.33)
  d.crop_mode = "random"
  d.flip = False
  d.color_jitter, d.color_grayscale = 0.0, 0.0
  d.randaugment_num_ops, d.randaugment_magnitude = 2, 20.0
  d.randaugment_magnitude_std, d.randaugment_prob = 0.0, 0.5
  d.mixup_alpha, d.cutmix_alpha, d.mix_prob = 0.3, 0.0, 1.0
  config.label_smoothing = 0.3
  d.test_resize_short = 288
  config.num_test_clips, config.num_test_crops = 4, 3
  return config


def videomae_finetune(config, ssv2: bool = False):
  """VideoMAE finetuning: Inception crop (area 0.08-1, aspect 3/4-4/3) to
  224, flip (not on SSv2), RandAugment rand-m7-n4-mstd0.5-inc1, random
  erasing 0.25, mixup 0.8 / cutmix 1.0 (switch 0.5, every step), repeated
  augmentation 2, label smoothing 0.1. Test: short side 224, 5 x 3 views
  (2 x 3 on SSv2)."""
  d = config.dataset
  d.crop_size = 224
  d.train_resize_short, d.train_resize_short_max = 0, 0
  d.scale_jitter = (1.0, 1.0)
  d.crop_mode = "resized"
  d.crop_scale, d.crop_ratio = (0.08, 1.0), (0.75, 4 / 3)
  d.flip = not ssv2
  d.randaugment_num_ops, d.randaugment_magnitude = 4, 7.0
  d.randaugment_magnitude_std, d.randaugment_prob = 0.5, 0.5
  d.random_erasing_prob = 0.25
  d.mixup_alpha, d.cutmix_alpha = 0.8, 1.0
  d.mix_prob, d.mix_switch_prob = 1.0, 0.5
  d.repeated_aug = 2
  config.label_smoothing = 0.1
  d.test_resize_short = 224
  config.num_test_clips = 2 if ssv2 else 5
  config.num_test_crops = 3
  return config


def slowfast_kinetics(config):
  """SlowFast on Kinetics: short side uniform in [256, 320], random 224 crop,
  flip; no colour augmentation or mixing. Test: 10 clips x 3 crops of 256
  at short side 256 (here the crop size is the training one, 224)."""
  d = config.dataset
  d.crop_size = 224
  d.train_resize_short, d.train_resize_short_max = 256, 320
  d.scale_jitter = (1.0, 1.0)
  d.crop_mode = "random"
  d.flip = True
  d.test_resize_short = 256
  config.num_test_clips, config.num_test_crops = 10, 3
  return config


RECIPES = {
    "vivit_kinetics": vivit_kinetics,
    "vivit_ssv2": vivit_ssv2,
    "videomae_finetune": videomae_finetune,
    "videomae_finetune_ssv2": lambda c: videomae_finetune(c, ssv2=True),
    "slowfast_kinetics": slowfast_kinetics,
}
