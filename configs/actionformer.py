"""ActionFormer (Zhang et al., ECCV 2022) on `synthetic_untrimmed`, from pixels.

  python -m vidjax.main --config=configs/actionformer.py --workdir=DIR

One command from a clean checkout (vidjax/tasks/localization/task.py): builds
the embedded untrimmed dataset, trains the window-feature backbone
(`config.backbone`: configs/early_fusion.py on synthetic_motion motion, 600
steps, into DIR/backbone; or give a classification run with
--config.dataset.backbone_run=RUN), caches its window features (8 frames,
frame stride 2, one window every `dataset.window_stride` = 4 frames) with
their timing in DIR/features, trains the detector (checkpoints, resume,
metrics.jsonl / TensorBoard, batch split over the devices) and evaluates it
with the exact evaluator (THUMOS tIoU 0.3:0.7: eval/average_map,
eval/map@t), writing DIR/eval/test_step<N>/predictions.json (ActivityNet
result JSON) and metrics.json. Then `python -m tools.localize --run=DIR
--video=FILE` finds the actions in a video file.

Detector (tools/localization_check.default_config, the measured recipe):
embedding 64, 6 pyramid levels (2x downsampling each: 128 ... 4 steps),
local attention windows of 9 steps, 4 heads; focal loss (alpha 0.25, gamma
2) + 1D DIoU, centre sampling radius 1.5; AdamW 1e-3, 50 warm-up steps,
cosine, weight decay 0.05, clipping at 1; batch 16 whole videos padded to
max_len 128; 300 steps. Real data: --config.dataset.name=thumos14 (or
activitynet) --config.dataset.manual_dir=... --config.dataset.features_dir=...
(pre-extracted features; vidjax/data/untrimmed_public.py) and max_len /
max_segments to fit them (longer training videos are cropped).

Controls (issue #20's bar; benchmarks/RESULTS.md): --config.loss.reg_weight=0
disables the regression head (its loss off, and every point proposes
[t - s, t + s], s its level's stride); --config.dataset.label_permutation=
shuffle (the training instances' labels shuffled among themselves: chance)
or =derangement (every training label c -> (c + 1) mod K: the issue's "labels
permuted"). The final evaluation also reports the detections' chance level,
eval/chance_average_map (+ _std; `eval_chance_draws` seeded draws of
evaluate.chance_map, 0: off).

Variants: "" (the above); "tiny": seconds-long run for the tests (a 2-step
backbone, 4 short videos, a small detector, 4 steps).
"""
import ml_collections

from configs import default

VARIANTS = ("", "tiny")


def get_config(arg: str = "", two_stage: bool = False):
  if arg not in VARIANTS:
    raise ValueError(f"actionformer.py: unknown config argument {arg!r}")
  config = default.get_config()
  config.task = "localization"
  config.batch_size = 16
  config.eval_batch_size = 8
  config.num_train_steps = 300
  config.log_every_steps = 50
  config.eval_every_steps = 300
  config.checkpoint_every_steps = 100
  config.eval_chance_draws = 20  # final eval: the detections' chance level

  d = config.dataset
  d.name = "synthetic_untrimmed"
  d.max_len = 128           # steps per padded video: a multiple of 2^(levels-1)
  d.max_segments = 4        # action instances per video (padding: masked)
  d.window_stride = 4       # stored frames between feature windows
  d.backbone_run = ""       # a vidjax classification run; "": train `backbone`
  d.label_permutation = "none"  # control: "none" | "shuffle" | "derangement"
  # synthetic_untrimmed build settings (SyntheticUntrimmedConfig fields).
  d.synthetic = ml_collections.ConfigDict({
      "train_videos": 256, "test_videos": 64, "min_frames": 256,
      "max_frames": 512, "max_duration": 96, "seed": 0})
  # Real data (activitynet / thumos14): pre-extracted features and timing.
  d.annotation_file = ""
  d.features_dir = ""

  config.backbone = ml_collections.ConfigDict({
      "config": "early_fusion", "dataset": "motion", "steps": 600,
      "tiny": False, "data_dir": "", "train_per_class": -1,
      "test_per_class": -1})

  m = config.model
  m.name = "actionformer_two_stage" if two_stage else "actionformer"
  m.embed_dim = 64
  m.num_levels = 6
  m.num_heads = 4
  m.window_size = 9
  m.dtype = "float32"
  if two_stage:  # TAL-Net-style RoI classifier (two_stage.py)
    m.bins, m.context_bins, m.context = 8, 2, 0.5
    m.classifier_hidden = 128

  config.loss = ml_collections.ConfigDict({
      "alpha": 0.25, "gamma": 2.0, "reg_weight": 1.0, "radius": 1.5,
      "normalizer_momentum": 0.0, "roi_weight": 1.0})

  o = config.optimizer
  o.name = "adamw"
  o.learning_rate = 1e-3
  o.warmup_steps = 50
  o.weight_decay = 0.05
  o.grad_clip_norm = 1.0

  if arg == "tiny":
    config.batch_size = config.eval_batch_size = 8
    config.num_train_steps = 4
    config.log_every_steps = config.checkpoint_every_steps = 2
    config.eval_every_steps = 4
    config.eval_chance_draws = 2
    config.optimizer.warmup_steps = 1
    d.max_len = 32
    d.synthetic.update({"train_videos": 4, "test_videos": 2,
                        "min_frames": 64, "max_frames": 96,
                        "max_duration": 24})
    config.backbone.update({"steps": 2, "tiny": True})
    m.embed_dim, m.num_levels, m.num_heads = 16, 3, 2
    if not two_stage:
      m.embed_layers = m.head_layers = 1
    if two_stage:
      m.classifier_hidden = 16
  return config
