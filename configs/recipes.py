"""The papers' data recipes: storage, training augmentation and test views.

Each function sets the data fields of `config` (configs/default.py:
config.dataset.* storage, augmentation, crop sizes and flip, label smoothing
and the test views) to a published recipe and returns the config; models,
optimisers and schedules stay with the model's own config.

Storage ("prepared once"): every recipe stores its dataset at the short
side its pipeline reads from, at the native frame rate (the papers sample
frames at the source rate; Kinetics is mostly 25-30 fps), so that no
recipe upsamples its stored frames (vidjax/data/frame_sizes.py refuses
more than config.dataset.max_upsample = 1.15x before anything is built):
* Kinetics at short side 320 (KINETICS_SHORT_SIDE), as VideoMAE's release
  stores it; it covers the [256, 320] short-side jitter of SlowFast, NL I3D
  and TimeSformer and ViViT's 256 x 0.9-1.33 scale jitter. One prepared copy
  serves every 224-crop Kinetics config.
* Kinetics at 128 for the 112-crop 3D ResNets (R3D, R(2+1)D): Tran et al.
  2018 resize frames to 128x171 before cropping 112.
* Something-Something v2 at its native height, 240 (VideoMAE keeps it).
* UCF-101 at 256: Simonyan & Zisserman 2014 rescale the smallest side to
  256 before cropping 224.

Sources:
* ViViT: Arnab et al. 2021, "ViViT: A Video Vision Transformer" (Sec. 4.1,
  App. A) and the official scenic configs (projects/vivit/configs/
  kinetics400/vivit_base_k400.py), which use DMVR's scale jitter and colour
  augmentation.
* VideoMAE finetuning: Tong et al. 2022, "VideoMAE: Masked Autoencoders are
  Data-Efficient Learners for Self-Supervised Video Pre-Training" (App.,
  finetuning table) and its run_class_finetuning.py defaults/scripts
  (--aa rand-m7-n4-mstd0.5-inc1, --reprob 0.25, --mixup 0.8, --cutmix 1.0,
  --smoothing 0.1, --num_sample 2, --short_side_size 224, 5 x 3 test views
  on Kinetics, 2 x 3 on SSv2; no flip on SSv2).
* SlowFast / PySlowFast Kinetics: Feichtenhofer et al. 2019, "SlowFast
  Networks for Video Recognition" (Sec. 4): a 224 crop from a video whose
  short side is sampled in [256, 320], horizontal flip; test 10 clips x 3
  crops of 256 after resizing the short side to 256 (the release's
  TEST_CROP_SIZE 256). Wang et al. 2018 (non-local, Sec. 4) train I3D-R50
  the same way and test fully convolutionally at short side 256.
* TSM / TSN: Lin et al. 2019 train with TSN's multi-scale crop (Wang et al.
  2016: crops of 1, .875, .75, .66 x the short side of frames resized to
  256, resized to 224) and flip; the 10-clip test uses 3 crops of 256 at
  short side 256 ("full resolution").
"""

# Not a model config: tools/model_table iterates VARIANTS, so it lists no row.
VARIANTS = ()

KINETICS_SHORT_SIDE = 320
RESNET3D_SHORT_SIDE = 128
SSV2_SHORT_SIDE = 240
UCF101_SHORT_SIDE = 256


def storage(config, short_side: int):
  """The stored short side (px) at the native frame rate (see the module
  docstring); one prepared dataset per (dataset, short side)."""
  config.dataset.resize_short = short_side
  config.dataset.fps = 0.0
  config.dataset.worker_processes = -1  # decode clips in one process per core
  return config


def vivit_kinetics(config):
  """ViViT on Kinetics: short side 256, per-axis scale jitter 0.9-1.33, random
  224 crop, flip, colour jitter p 0.8 (DMVR strengths: brightness 32/255,
  saturation and contrast 0.6-1.4, hue 0.2), colour drop p 0.1; no mixup or
  label smoothing. Test: 4 clips x 3 crops at short side 256."""
  storage(config, KINETICS_SHORT_SIDE)
  d = config.dataset
  d.crop_size = 224
  d.train_resize_short, d.train_resize_short_max = 256, 0
  d.scale_jitter = (0.9, 1.33)
  d.crop_mode = "random"
  d.flip = True
  d.color_jitter, d.color_grayscale = 0.8, 0.1
  d.color_brightness, d.color_contrast = 32 / 255, 0.4
  d.color_saturation, d.color_hue = 0.4, 0.2
  d.test_resize_short, d.test_crop_size = 256, 0
  config.num_test_clips, config.num_test_crops = 4, 3
  return config


def videomae_finetune(config, ssv2: bool = False):
  """VideoMAE finetuning: Inception crop (area 0.08-1, aspect 3/4-4/3) to
  224, flip (not on SSv2), RandAugment rand-m7-n4-mstd0.5-inc1, random
  erasing 0.25, mixup 0.8 / cutmix 1.0 (switch 0.5, every step), repeated
  augmentation 2, label smoothing 0.1. Test: short side 224, 5 x 3 views
  (2 x 3 on SSv2). Also MViTv2's recipe (the same timm augmentation)."""
  storage(config, SSV2_SHORT_SIDE if ssv2 else KINETICS_SHORT_SIDE)
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
  d.test_resize_short, d.test_crop_size = 224, 0
  config.num_test_clips = 2 if ssv2 else 5
  config.num_test_crops = 3
  return config


def slowfast_kinetics(config):
  """PySlowFast's Kinetics recipe (SlowFast, non-local I3D-R50): short side
  uniform in [256, 320], random 224 crop, flip; no colour augmentation or
  mixing. Test: 10 clips x 3 crops of 256 at short side 256 (the nets are
  fully convolutional)."""
  return _cnn_kinetics(config, resize_short_max=320, crop_mode="random")


def tsn_kinetics(config):
  """TSM's (TSN's) Kinetics recipe: frames resized to short side 256, TSN
  multi-scale crop (1, .875, .75, .66 of the short side, at 13 fixed
  positions) resized to 224, flip. Test: 10 clips x 3 crops of 256 at short
  side 256 (TSM's "full resolution" 10-clip protocol)."""
  return _cnn_kinetics(config, resize_short_max=0, crop_mode="multiscale")


def _cnn_kinetics(config, resize_short_max: int, crop_mode: str):
  """The CNN recipes' shared part: 224 crops from short side 256 (up to
  `resize_short_max` when set), flip, and the 10 x 3 test of 256 crops."""
  storage(config, KINETICS_SHORT_SIDE)
  d = config.dataset
  d.crop_size = 224
  d.train_resize_short, d.train_resize_short_max = 256, resize_short_max
  d.scale_jitter = (1.0, 1.0)
  d.crop_mode = crop_mode
  d.flip = True
  d.test_resize_short, d.test_crop_size = 256, 256
  config.num_test_clips, config.num_test_crops = 10, 3
  return config
