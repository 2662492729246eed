"""Fields every vidjax config shares; variants import this and change a few.

Durations are in steps; `num_train_epochs` > 0 overrides `num_train_steps`
(and `optimizer.warmup_epochs` > 0 overrides `optimizer.warmup_steps`) using
the training split's size, for paper recipes stated in epochs.
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.batch_size = 64            # global, over all devices and hosts
  config.eval_batch_size = 128      # views per eval step, global
  config.num_train_steps = 1000
  config.num_train_epochs = -1.0    # > 0: overrides num_train_steps
  config.log_every_steps = 50
  config.eval_every_steps = 500     # plus a final eval at the end
  config.checkpoint_every_steps = 500  # plus a final save at the end
  config.keep_checkpoints = 3
  config.num_test_clips = 4         # uniformly spaced temporal clips per video
  config.num_test_crops = 1         # 1 (centre) or 3 (left/centre/right)
  config.label_smoothing = 0.0
  config.num_devices = -1           # -1: every device; else the first N (one host)
  config.max_consecutive_nonfinite = 10

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "synthetic_motion"
  config.dataset.config = "motion"  # synthetic_motion builder config
  config.dataset.data_dir = ""      # "": the TFDS default data dir
  config.dataset.train_per_class = -1  # synthetic_motion size; -1: default
  config.dataset.test_per_class = -1
  config.dataset.num_frames = 8     # frames per clip
  config.dataset.frame_stride = 2   # take every k-th stored frame
  config.dataset.crop_size = 32
  config.dataset.flip = False       # off for direction-sensitive classes
  config.dataset.mean = (0.5, 0.5, 0.5)
  config.dataset.std = (0.25, 0.25, 0.25)
  config.dataset.num_workers = 4    # threads reading and sampling clips
  config.dataset.prefetch = 4       # batches ready ahead of the train step

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

  config.init_from = ml_collections.ConfigDict()
  config.init_from.checkpoint_path = ""  # a run's workdir or checkpoint step dir
  return config


def synthetic_recipe(config, num_train_steps: int = 2400,
                     warmup_steps: int = 100):
  """The small CPU recipe every model's default config shares.

  8 frames at stride 2, 32x32 crops of `synthetic_motion`, batch 64, AdamW
  2e-3 with warm-up and cosine decay, weight decay 0.05, clipping at 1.
  """
  config.dataset.num_frames = 8
  config.dataset.frame_stride = 2
  config.dataset.crop_size = 32
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
