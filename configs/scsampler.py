"""SCSampler (Korbar, Tran, Torresani, ICCV 2019) on long synthetic videos.

  python -m vidjax.main --config=configs/scsampler.py --workdir=DIR

One command from a clean checkout (vidjax/tasks/long_video/task.py): builds
`synthetic_untrimmed` in its single-action setting (below: ONE action
instance, so one label, per 384-416-frame video, 42-96 frames of it: 10-25%
of the frames; the rest is the object idling), trains the expensive clip
classifier (`config.classifier`: configs/early_fusion.py on synthetic_motion
motion, 600 steps, into DIR/classifier; or give a classification run with
--config.classifier_run=RUN), caches the 24 candidate clips of every video
(8 frames at stride 2, spread evenly; their usefulness = at least half
inside the action; the classifier's probabilities on the test videos) in
DIR/clips, trains the cheap sampler (an MLP on low-resolution
frame-difference statistics, vidjax/tasks/long_video/saliency.py) and
reports, per strategy (dense, uniform-k, random-k, scsampler-k for k in
`long_video.ks`, oracle), video accuracy, the classifier clips run and the
multiply-adds, with the sampler's clip-saliency ROC-AUC (DIR/eval/
test_step<N>/metrics.json and table.txt; `python -m tools.sampler_check
--run=DIR` prints the table and the issue's bars).

Variants: "" (the above); "tiny": a seconds-long run for the tests (a 2-step
classifier, 4 + 4 short videos, 8 candidates, 4 sampler steps). The task
reads synthetic_untrimmed only: untrimmed videos of the user's (a video
label list) have no loader yet.
"""
import ml_collections

from configs import default

VARIANTS = ("", "tiny")

# synthetic_untrimmed's single-action setting (SyntheticUntrimmedConfig
# fields; built once into its own folder, the default build unchanged).
SINGLE_ACTION = {"min_instances": 1, "max_instances": 1, "min_frames": 384,
                 "max_frames": 416, "min_duration": 42, "max_duration": 96}


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"scsampler.py: unknown config argument {arg!r}")
  config = default.get_config()
  config.task = "long_video"
  config.batch_size = 64
  config.eval_batch_size = 256
  config.num_train_steps = 400
  config.log_every_steps = 100
  config.eval_every_steps = 400
  config.checkpoint_every_steps = 200

  d = config.dataset
  d.name = "synthetic_untrimmed"
  d.synthetic = ml_collections.ConfigDict({
      **SINGLE_ACTION, "train_videos": 96, "test_videos": 100, "seed": 0})

  config.long_video = ml_collections.ConfigDict({
      "num_candidates": 24,  # candidate clips per video
      "ks": (1, 2, 4),       # clips the samplers pick
      "sampler_res": 8})     # the sampler's grey frames: 8 x 8

  config.classifier_run = ""  # a vidjax classification run; "": train it
  config.classifier = ml_collections.ConfigDict({
      "config": "early_fusion", "dataset": "motion", "steps": 600,
      "tiny": False, "data_dir": "", "train_per_class": -1,
      "test_per_class": -1})

  config.model = ml_collections.ConfigDict({
      "name": "saliency_mlp", "hidden": 32, "num_layers": 1, "dropout": 0.0})

  o = config.optimizer
  o.name = "adamw"
  o.learning_rate = 1e-2
  o.warmup_steps = 20
  o.weight_decay = 1e-4
  o.grad_clip_norm = 1.0

  if arg == "tiny":
    config.batch_size = config.eval_batch_size = 8
    config.num_train_steps = 4
    config.log_every_steps = config.checkpoint_every_steps = 2
    config.eval_every_steps = 4
    config.optimizer.warmup_steps = 1
    d.synthetic.update({"train_videos": 4, "test_videos": 4,
                        "min_frames": 64, "max_frames": 80,
                        "min_duration": 16, "max_duration": 24})
    config.long_video.update({"num_candidates": 8, "ks": (2,)})
    config.classifier.update({"steps": 2, "tiny": True})
    config.model.hidden = 8
  return config
