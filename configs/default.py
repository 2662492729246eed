"""Fields every vidjax config shares; variants import this and change a few.

Durations are in steps; `num_train_epochs` > 0 overrides `num_train_steps`
(and `optimizer.warmup_epochs` > 0 overrides `optimizer.warmup_steps`) using
the training split's size, for paper recipes stated in epochs.
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  # "classification" (cross-entropy on labels) | "videomae_pretrain" (masked
  # video reconstruction, vidjax/pretrain_step.py; model videomae_pretrain)
  # | "localization" (temporal action detection on window features,
  # vidjax/tasks/localization/task.py; configs/actionformer.py). Each is a
  # Task of the one training loop (vidjax/tasks/base.py).
  config.task = "classification"
  config.seed = 0
  config.batch_size = 64            # global, over all devices and hosts
  # k > 1: k micro-batches of batch_size/k scanned in one step, gradients
  # averaged, one update (vidjax/steps.py); batch_size % (k x devices) == 0.
  config.grad_accum_steps = 1
  config.eval_batch_size = 128      # views per eval step, global
  config.num_train_steps = 1000
  config.num_train_epochs = -1.0    # > 0: overrides num_train_steps
  config.log_every_steps = 50
  config.eval_every_steps = 500     # plus a final eval at the end
  config.checkpoint_every_steps = 500  # plus a final save at the end
  config.keep_checkpoints = 3
  config.num_test_clips = 4         # uniformly spaced temporal clips per video
  config.num_test_crops = 1         # 1 (centre) or 3 (left/centre/right)
  config.eval_max_videos = 0        # > 0: evaluate only this many test
                                    # videos, evenly spaced (quick checks)
  config.label_smoothing = 0.0
  config.aux_loss_weight = 0.01     # x sown auxiliary losses (MoE balancing;
                                    # Fedus et al. 2021 use 0.01); 0 for others
  config.num_devices = -1           # -1: every device; else the first N (one host)
  config.max_consecutive_nonfinite = 10
  config.inject_nan_at_steps = ()  # testing: make these steps' inputs NaN
  # Train state placement (vidjax/sharding.py): "replicate" | "fsdp" (params
  # and optimizer state split over the devices, leaves >= fsdp_min_size_mb;
  # 1 MiB, not big_vision's 4, so ViT-B's 2.25 MiB attention kernels split).
  config.sharding = "replicate"
  config.fsdp_min_size_mb = 1.0
  # Profiling and utilisation (vidjax/train.py): "first,count" (or a tuple)
  # traces those steps on process 0 to WORKDIR/profile (TensorBoard's
  # profile tab); "": off. device_peak_flops: one device's FLOP/s for
  # train/mfu; 0: by device kind (vidjax/costs.py; none on CPU: no MFU).
  config.profile_steps = ""
  config.device_peak_flops = 0.0
  # Persistent XLA compilation cache (vidjax/main.py): "": the environment's
  # JAX_COMPILATION_CACHE_DIR, else ~/.cache/vidjax/jax; "none": off. On pods
  # use a directory every host sees (e.g. gs://bucket/jax_cache).
  config.compilation_cache_dir = ""

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "synthetic_motion"
  config.dataset.config = "motion"  # synthetic_motion builder config
  config.dataset.data_dir = ""      # "": the TFDS default data dir
  config.dataset.train_per_class = -1  # synthetic_motion size; -1: default
  config.dataset.test_per_class = -1
  # synthetic_motion background: "textured" (default) or "plain" (flat, no
  # noise; vidjax/data/synthetic_render.py)
  config.dataset.synthetic_background = "textured"
  config.dataset.num_frames = 8     # frames per clip
  config.dataset.frame_stride = 2   # take every k-th stored frame
  config.dataset.crop_size = 32
  config.dataset.flip = False       # off for direction-sensitive classes
  config.dataset.mean = (0.5, 0.5, 0.5)
  config.dataset.std = (0.25, 0.25, 0.25)
  # The classes of the model's head, in head order, for an init_from
  # checkpoint whose meta does not name them (a converted checkpoint's
  # config.py sets its id2label); the head is matched to the data's classes
  # by name (vidjax/head_remap.py). (): the checkpoint's own names, if any.
  config.dataset.class_names = ()
  config.dataset.num_workers = 4    # threads reading and sampling clips
  config.dataset.prefetch = 4       # batches ready ahead of the train step
  # Clip decoding/augmentation in worker processes (vidjax/data/clip_workers.py;
  # same batches): 0 = the threads above (small CPU configs), N processes, or
  # -1 = one per core (paper-scale inputs).
  config.dataset.worker_processes = 0

  # Input modality (two-stream inputs; vidjax/data/optical_flow.py): "rgb" (3
  # channels), "flow" (2: the quantised x, y optical flow from each sampled
  # stored frame to the next stored one) or "rgb+flow" (5: RGB then flow, per
  # frame). Flow is computed once per dataset with OpenCV and cached as a TFDS
  # build (`video_flow`). dataset.mean/std need one value per channel; flow is
  # uint8 with 128 = zero, so use mean 0.5 and a std fitted to the data
  # (synthetic_motion, bound 20: std ~0.01).
  config.dataset.modality = "rgb"   # "rgb" | "flow" | "rgb+flow"
  config.dataset.flow_algorithm = "farneback"  # "farneback" | "tvl1"
  config.dataset.flow_bound = 20.0  # px; flow is clipped to +-bound in uint8

  # Sampling and augmentation (vidjax/data/augment.py; recipes of ViViT,
  # VideoMAE and SlowFast in configs/recipes.py). Every op is the same on all
  # frames of a clip. The defaults are a plain random crop of the stored
  # frames: no resize, jitter, colour, RandAugment, erasing or mixing.
  config.dataset.train_resize_short = 0   # short side before cropping; 0: stored
  config.dataset.train_resize_short_max = 0  # > short: uniform in [short, max]
  config.dataset.scale_jitter = (1.0, 1.0)  # per-axis resize factors (ViViT .9-1.33)
  config.dataset.crop_mode = "random"     # "random" | "resized" (Inception) | "multiscale" (TSN)
  config.dataset.crop_scale = (0.08, 1.0)  # "resized": crop area fraction range
  config.dataset.crop_ratio = (0.75, 4 / 3)  # "resized": aspect (w/h) range
  config.dataset.color_jitter = 0.0       # probability per clip (DMVR order)
  config.dataset.color_brightness = 32 / 255  # additive delta, fraction of range
  config.dataset.color_contrast = 0.4     # factor in [1 - x, 1 + x]
  config.dataset.color_saturation = 0.4   # factor in [1 - x, 1 + x]
  config.dataset.color_hue = 0.2          # shift in [-x, x] turns
  config.dataset.color_grayscale = 0.0    # probability ("colour drop")
  config.dataset.randaugment_num_ops = 0  # N; 0: off
  config.dataset.randaugment_magnitude = 9.0  # M on the 0-10 scale
  config.dataset.randaugment_magnitude_std = 0.0  # per-op M ~ N(M, std)
  config.dataset.randaugment_prob = 0.5   # each op applied with this prob (timm)
  config.dataset.random_erasing_prob = 0.0  # one rectangle, all frames
  config.dataset.mixup_alpha = 0.0        # > 0: mixup with Beta(a, a)
  config.dataset.cutmix_alpha = 0.0       # > 0: cutmix with Beta(a, a)
  config.dataset.mix_prob = 1.0           # probability a step is mixed
  config.dataset.mix_switch_prob = 0.5    # cutmix instead of mixup when both on
  config.dataset.repeated_aug = 1         # k: each video k times per batch
  config.dataset.test_resize_short = 0    # test: short side before the crops; 0: stored
  config.dataset.test_crop_size = 0       # test crops (px); 0: crop_size. CNNs
                                          # test larger, fully convolutionally
  # A resize of the stored frames by more than this factor (up) is an error
  # before anything is built: store a larger short side (resize_short).
  config.dataset.max_upsample = 1.15

  # Real-video datasets (video_folder / public): vidjax/data/video_folder.py.
  # name="video_folder": path=DIR/<class>/<videos>, split by train_list(+test_list)
  # (UCF-style "Class/file [n]" lines), or csv (path,label[,split]), else every
  # 5th file per class (test_fraction). name=ucf101|hmdb51|kinetics400|
  # something_something_v2: manual_dir holds the extracted official archives
  # (vidjax/data/public_datasets.py), split = official split number. Videos are
  # decoded once into per-frame JPEGs (a TFDS build under data_dir, named by a
  # hash of the files + resize_short/fps/jpeg_quality); unusable files are
  # skipped and named in the build report.
  config.dataset.path = ""          # video_folder: DIR with one folder per class
  config.dataset.train_list = ""    # video_folder: UCF-style train list ("": none)
  config.dataset.test_list = ""     # "": every class-folder video not in train_list
  config.dataset.csv = ""           # video_folder: path,label[,split] CSV
  config.dataset.test_fraction = 0.2  # no lists/csv: deterministic test share
  config.dataset.manual_dir = ""    # public datasets: folder of the official files
  config.dataset.split = 1          # official split (ucf101/hmdb51: 1-3)
  config.dataset.resize_short = 128  # stored short side (px); 0: native size
  config.dataset.fps = 0.0          # stored frame rate; 0: native
  config.dataset.jpeg_quality = 90  # stored JPEG quality (1-100)
  config.dataset.min_frames = -1    # fewer stored frames: skipped; -1: num_frames
  config.dataset.build_workers = 0  # decoding processes at build; 0: one per core
  # Audio tracks (issue #22; vidjax/audio/decode.py): stored beside the frames
  # (int16 mono at sample_rate) and batch["audio"] = each clip's window.
  config.dataset.audio = ml_collections.ConfigDict()
  config.dataset.audio.enabled = False  # False: no audio decoded or batched
  config.dataset.audio.sample_rate = 16000  # Hz, resampled by PyAV
  config.dataset.audio.missing = "silence"  # no/bad track: "silence"|"refuse"
  config.dataset.audio.features = "waveform"  # "waveform" | "log_mel"
  config.dataset.audio.log_mel = "ast_kaldi"  # vidjax.audio.frontend.PRESETS
  config.dataset.audio.window_fps = 0.0  # window = frames*stride/this s; 0: fps

  config.model = ml_collections.ConfigDict()
  config.model.name = ""

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adamw"   # "adamw" | "sgd"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"  # "cosine" | "constant"
  config.optimizer.warmup_steps = 0
  config.optimizer.warmup_epochs = -1.0
  config.optimizer.end_lr_factor = 0.0  # cosine ends at learning_rate * this
  config.optimizer.weight_decay = 0.0   # decoupled; kernels only
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.grad_clip_norm = 0.0  # 0: no clipping
  config.optimizer.layer_decay = 0.0     # layer-wise lr decay; 0 or 1: off

  config.init_from = ml_collections.ConfigDict()
  config.init_from.checkpoint_path = ""  # a run's workdir or checkpoint step dir
  # Adapting the loaded params (vidjax/init_adapt.py): a 2D patch kernel
  # (image ViT) -> tubelet kernel: "central_frame" | "average" | "repeat";
  # position embeddings of another token grid: "resize" | "none", spatially
  # "bilinear" | "bicubic".
  config.init_from.tubelet_init = "central_frame"
  config.init_from.posemb = "resize"
  config.init_from.posemb_method = "bilinear"
  # A 2D ResNet (converted ImageNet ResNet-50) -> I3D-R50 / SlowFast: 2D
  # kernels become kt x k x k ones, "mean" (I3D: repeat, divide by kt) |
  # "center" (vidjax/init_image.py).
  config.init_from.kernel_inflation = "mean"
  return config


def synthetic_recipe(config, num_train_steps: int = 2400,
                     warmup_steps: int = 100):
  """The small CPU recipe every model's default config shares.

  8 frames at stride 2, 32x32 crops of `synthetic_motion`, batch 64, AdamW
  2e-3 with warm-up and cosine decay, weight decay 0.05, clipping at 1.

  On real videos (`--config.dataset.name=video_folder`, public datasets) the
  crop sees the whole frame: frames are stored with their short side at the
  crop size (area-averaged once at build, so no aliasing) and resized to it
  at train and test, so the random (test: centre) 32-px crop spans the whole
  short side, not a 32-px window of 128-px frames (issue #15). On
  `synthetic_motion`, rendered at 32x32, these are exact no-ops (the builder
  ignores resize_short; a resize to the same size is a slice).
  """
  config.dataset.num_frames = 8
  config.dataset.frame_stride = 2
  config.dataset.crop_size = 32
  config.dataset.resize_short = 32
  config.dataset.train_resize_short = 32
  config.dataset.test_resize_short = 32
  config.batch_size = 64
  config.num_train_steps = num_train_steps
  config.eval_every_steps = max(num_train_steps // 3, 1)
  config.checkpoint_every_steps = max(num_train_steps // 3, 1)
  config.log_every_steps = 50
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = warmup_steps
  config.optimizer.weight_decay = 0.05
  config.optimizer.grad_clip_norm = 1.0
  return config


def resnet50_kinetics_recipe(config):
  """What the ResNet-50 video papers' Kinetics configs share (TSM, I3D-R50 /
  non-local, SlowFast): ResNet-50 widths and depths with a max-pooled stem,
  dropout 0.5, batch 64, SGD momentum 0.9 with weight decay 1e-4. Each config
  then sets its own frames, schedule, learning rate and data recipe
  (configs/recipes.py: slowfast_kinetics or tsn_kinetics).
  """
  config.model.widths = (64, 128, 256, 512)
  config.model.blocks_per_stage = (3, 4, 6, 3)
  config.model.stem_width = 64
  config.model.stem_pool = True
  config.model.dropout_rate = 0.5
  config.batch_size = 64
  config.log_every_steps = 100
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  return config
