"""Owens & Efros' early-fusion audio-visual network (ECCV 2018, "Audio-
Visual Scene Analysis with Self-Supervised Multisensory Features"): are
these frames and this audio aligned? Model: vidjax/models/av_sync.py
("av_sync"); task: vidjax/tasks/audio_visual/ (config.objective "sync").

Default: synchronisation on the embedded `synthetic_av` "which" build (its
events are circular, so a circularly shifted track differs from an aligned
one only in how its onsets line up with the flashes): every training row
aligned or shifted by a whole number of frames >= 0.25 s either way
(av_loader), the test split taken once aligned and once shifted (chance
0.5). Width 32, video 16 x 32^2 -> 8 steps of 8 x 8, audio 2 s -> 201 x 64
log-mel strided to the same 8 steps, 2 fused residual blocks at 4 x 4 (width 16, 32 fused); AdamW 1e-3,
1000 steps of 32.

Variants:
* `:noise`: the control, every waveform (train and test) replaced by
  white noise of the same RMS (chance);
* `:which`: the same network as a classifier on "which" (the sounding
  object's side);
* `:tiny`: test size (64 + 32 examples, a few steps).
"""
from configs import default
from configs import mbt

VARIANTS = ("", "noise", "which", "tiny")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"av_sync.py: unknown config argument {arg!r}; use one "
                     f"of {VARIANTS}")
  config = default.get_config()
  mbt.synthetic_data(config, "which")
  m = config.model
  m.name = "av_sync"
  m.width, m.temporal_stride, m.fused_blocks = 16, 2, 2
  if arg == "which":
    config.dataset.hflip = True   # mirrored rows: the side label swaps too
  else:
    config.objective = "sync"
    config.dataset.sync = True
  config.dataset.audio_control = "noise" if arg == "noise" else ""
  config.batch_size, config.eval_batch_size = 32, 64
  config.num_train_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = config.checkpoint_every_steps = 250
  o = config.optimizer
  o.name, o.learning_rate, o.warmup_steps = "adamw", 1e-3, 50
  o.weight_decay, o.grad_clip_norm = 0.05, 1.0
  if arg == "tiny":
    mbt.tiny(config)
  return config
