"""MBT: audio-visual fusion through attention bottlenecks (Nagrani et al.,
NeurIPS 2021), its late / early fusion and single-modality baselines, and
the audio-visual synchronisation head (Owens & Efros, ECCV 2018).
Model: vidjax/models/audio_visual.py; task: vidjax/tasks/audio_visual/.

Default: bottleneck MBT on the embedded `synthetic_av` "which" data (two
objects of different looks, one sounds with the voice of its look; label =
its side, left / right: only the voice-to-look or onset-to-flash match
tells; training rows mirrored with the label swapped), a small model for a
2-core CPU: 2 x 4 layers of width 64, fusion from layer 1 through 4
bottleneck tokens, video 16 x 32^2 in 2x16x16 tubelets (8 x 2 x 2 tokens:
one per quadrant and 0.25 s), audio 2 s -> 201 x 64 log-mel (10 ms hop) in
25x16 patches (8 x 4 tokens: one per 0.25 s, the tubelets' time span),
2000 steps of 32. Measured (benchmarks/RESULTS.md, #22): every MBT variant
tried stays at chance on "which" (0.50; late / video-only / audio-only
0.50 too), where Owens & Efros' early-fusion CNN (configs/av_sync.py:which)
reaches 1.00: the fusion bar (MBT >= 0.90) is not met by a from-scratch
MBT at this size (the paper starts both streams from ImageNet ViT-B).
Diagnosis (#22, benchmarks/RESULTS.md "Why MBT stays at chance"): the streams are not broken. The
audio stream alone names the sounding voice (test 0.90 at 300 steps). A
2x16x16 tubelet carries its object's colour linearly (ridge readout 0.82,
tests/test_mbt_video_tokens.py) but only through position-specific
weights (its channel means: 0.36), and the video stream alone does not
learn the left object's colour in 300 steps (0.285, chance); 8x4x4
tubelets (video_patch_size=(8, 4, 4): 2 x 8 x 8 tokens, channel means
0.87) learn it (0.61 at 300 steps). Still, MBT on "which" stays at chance
with 8x4x4 tubelets from scratch (800 steps) and from streams pretrained by
a late-fusion run on (voice, left look, right look) (600 steps), and
through the CLI with 8x4x4 tubelets and a 0.02 head (`model.head_init_std`,
vidjax's ViT's from-scratch choice; default 0, the paper's zero head):
0.500 at step 1000, train loss 0.693 flat.
Synchronisation: configs/av_sync.py (0.96); `:sync` here is MBT with a
binary head. Variants (everything else equal):

* `:late`, `:early`, `:video_only`, `:audio_only`: config.model.fusion;
* `:sync`: aligned vs shifted (>= 0.25 s) audio, 2 classes
  (config.objective="sync"); `:sync_noise`: its control, every waveform
  replaced by white noise of the same RMS (chance is 0.5);
* `:tiny`: the default at test size (64 + 32 examples, a few steps);
* `:audioset`, `:vggsound`: the paper's MBT-B (ViT-B streams, fusion layer
  8, 4 bottlenecks, RGB frames in 2x16x16 tubelets of 224^2, 8 s of
  128-bin log-mel at 100 frames/s in 16x16 patches; scenic's
  balanced_audioset_base.py: SGD momentum lr 0.5, cosine, label smoothing
  0.3, stochastic depth 0.3, 50 epochs, batch 64, gap classifier), on the
  user's AudioSet (527 classes, multi-label: sigmoid loss, eval/map) /
  VGGSound (309 classes, top-1) files. Frames: 32 at 4 fps over the
  audio's 8 s, stored at 224^2 (the paper: 32 at stride 2 of 25 fps, 2.56
  s; fps=12.5, frame_stride=2 samples so, storing 100 frames a clip). The
  build (once, under data_dir) names missing, corrupt and silent clips in
  its report. Run on the downloaded files (layouts: vidjax/data/audioset.py):
    python -m vidjax.main --config=configs/mbt.py:audioset \
      --config.dataset.manual_dir=/data/audioset \
      --config.dataset.csv=balanced_train_segments.csv \
      --config.dataset.test_csv=eval_segments.csv \
      --config.dataset.class_labels=class_labels_indices.csv \
      --config.dataset.data_dir=/data/tfds --workdir=/runs/mbt_audioset
    python -m vidjax.main --config=configs/mbt.py:vggsound \
      --config.dataset.manual_dir=/data/vggsound \
      --config.dataset.csv=vggsound.csv \
      --config.dataset.data_dir=/data/tfds --workdir=/runs/mbt_vggsound
"""
from configs import default

VARIANTS = ("", "late", "early", "video_only", "audio_only", "sync",
            "sync_noise", "tiny", "audioset", "vggsound")

# The toy front end (vidjax.audio.frontend.LogMelConfig fields): librosa
# framing, 32 ms Hann frames every 10 ms, 64 Slaney mels, dB.
SYNTHETIC_FRONTEND = dict(
    name="synthetic_av", sample_rate=16000, n_fft=512, win_length=400,
    hop_length=160, window="hann", framing="librosa", center=True,
    pad_mode="constant", remove_dc=False, preemphasis=0.0, power=2.0,
    n_mels=64, fmin=0.0, fmax=None, htk=False, norm="slaney",
    triangles="hz", log="db", amin=1e-10, ref=1.0, top_db=80.0)
# MBT's (paper Sec. 4.2): 25 ms windows, 10 ms hop, 128 mel bins.
MBT_FRONTEND = dict(SYNTHETIC_FRONTEND, name="mbt", n_mels=128, log="ln",
                    amin=1e-6, top_db=None)


def audio_visual_data(config, name: str, seconds: float, frames: int,
                      crop: int, frontend: dict, normalization):
  """The task's shared data fields (configs/ast.py uses them too)."""
  config.task = "audio_visual"
  config.objective = "classification"   # | "sync"
  config.audio_frontend = dict(frontend)
  config.audio_normalization = tuple(normalization)  # log-mel (mean, std)
  d = config.dataset
  d.name = name
  d.sample_rate = frontend["sample_rate"]
  d.audio_samples = int(round(seconds * frontend["sample_rate"]))
  d.num_frames, d.frame_stride, d.crop_size = frames, 1, crop
  d.multilabel = False
  d.sync = False                        # objective "sync": True
  d.sync_min_shift = 0.25               # s, either way
  d.audio_control = ""                  # "" | "noise"
  d.hflip = False                       # mirror training rows (av_loader)
  return config


def user_clips(config, fps: float, size: int):
  """AudioSet / VGGSound over the user's files (vidjax/data/audioset.py;
  configs/ast.py uses it too): the build stores clip_seconds (the audio's
  seconds) of frames at `fps`, short side `size`, and the audio at
  config.dataset.sample_rate."""
  d = config.dataset
  d.manual_dir = ""     # the clips folder (searched recursively)
  d.csv = ""            # AudioSet: balanced_train_segments.csv (default) or
  #                       unbalanced_train_segments.csv; VGGSound: vggsound.csv
  d.test_csv = ""       # AudioSet: eval_segments.csv
  d.class_labels = ""   # AudioSet: class_labels_indices.csv
  #                       (as given, or relative to manual_dir; "": default)
  d.untrimmed = False   # <YTID>.mp4 files hold the whole video: cut [start, end)
  d.clip_seconds = d.audio_samples / d.sample_rate
  d.fps, d.resize_short = float(fps), int(size)
  d.audio.sample_rate = d.sample_rate
  d.audio.missing = "silence"  # | "refuse": no / bad audio track
  return config


def synthetic_data(config, kind: str = "fusion", train: int = 2048,
                   test: int = 256):
  # (mean, std) of the log-mel over synthetic_av train clips: -35.6, 6.6
  # ("fusion"; "which": -36.0, 6.5).
  audio_visual_data(config, "synthetic_av", 2.0, 16, 32, SYNTHETIC_FRONTEND,
                    (-35.6, 6.6))
  d = config.dataset
  d.config, d.train_examples, d.test_examples = kind, train, test
  d.fps = 8.0                           # the build's frame rate
  return config


def tiny(config):
  """The test size of a synthetic_av run: seconds on a CPU."""
  config.dataset.train_examples, config.dataset.test_examples = 64, 32
  config.batch_size, config.eval_batch_size = 16, 16
  config.num_train_steps = 4
  config.optimizer.warmup_steps = 1
  config.log_every_steps = config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  return config


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"mbt.py: unknown config argument {arg!r}; use one of "
                     f"{VARIANTS}")
  config = default.get_config()
  m = config.model
  m.name = "mbt"
  m.fusion = "bottleneck"  # | "early" | "late" | "video_only" | "audio_only"
  m.audio_posemb = "learned"  # | "separable"
  m.dropout_rate = m.attention_dropout_rate = m.stochastic_depth = 0.0
  m.head_init_std = 0.0  # 0: the paper's zero-initialised head
  if arg in ("audioset", "vggsound"):
    audio_visual_data(config, arg, 8.0, 32, 224, MBT_FRONTEND,
                      (1.102, 2.762))  # scenic's spec_mean / spec_stddev
    user_clips(config, 4.0, 224)  # stores the model's 32 x 224^2 frames
    config.dataset.multilabel = arg == "audioset"
    m.hidden_size, m.num_heads, m.mlp_dim, m.num_layers = 768, 12, 3072, 12
    m.fusion_layer, m.num_bottlenecks = 8, 4
    m.video_patch_size = (2, 16, 16)
    m.audio_patch_size = m.audio_patch_stride = (16, 16)
    m.classifier = "gap"
    m.stochastic_depth = 0.3
    config.label_smoothing = 0.3
    config.batch_size = config.eval_batch_size = 64
    config.num_train_epochs = 50.0
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.5
    config.optimizer.momentum = 0.9
    config.optimizer.grad_clip_norm = 1.0
    config.optimizer.warmup_epochs = 2.5
    m.dtype = "bfloat16"  # compute; params and optimizer state float32
    return config
  synthetic_data(config, "which")
  config.dataset.hflip = True   # mirrored rows: the side label swaps too
  m.hidden_size, m.num_heads, m.mlp_dim, m.num_layers = 64, 4, 128, 4
  m.fusion_layer, m.num_bottlenecks = 1, 4
  m.video_patch_size = (2, 16, 16)
  m.audio_patch_size = m.audio_patch_stride = (25, 16)
  m.classifier = "token"
  config.batch_size, config.eval_batch_size = 32, 64
  config.num_train_steps = 2000
  config.log_every_steps = 50
  config.eval_every_steps = config.checkpoint_every_steps = 500
  o = config.optimizer
  o.name, o.learning_rate, o.warmup_steps = "adamw", 1e-3, 100
  o.weight_decay, o.grad_clip_norm = 0.05, 1.0
  if arg in ("late", "early", "video_only", "audio_only"):
    m.fusion = arg
  if arg in ("sync", "sync_noise"):
    config.objective = "sync"
    config.dataset.sync = True
    config.dataset.audio_control = "noise" if arg == "sync_noise" else ""
  if arg == "tiny":
    tiny(config)
  return config
