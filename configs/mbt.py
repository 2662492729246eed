"""MBT: audio-visual fusion through attention bottlenecks (Nagrani et al.,
NeurIPS 2021), its late / early fusion and single-modality baselines, and
the audio-visual synchronisation head (Owens & Efros, ECCV 2018).
Model: vidjax/models/audio_visual.py; task: vidjax/tasks/audio_visual/.

Default: bottleneck MBT on the embedded `synthetic_av` "which" data (two
objects of different looks, one sounds with the voice of its look; label =
its side, left / right: only the voice-to-look or onset-to-flash match
tells; training rows mirrored with the label swapped), a small model for a
2-core CPU: 2 x 4 layers of width 64, fusion from layer 2 through 4
bottleneck tokens, video 16 x 32^2 in 4x8x8 tubelets (4 x 4 x 4 tokens),
audio 2 s -> 201 x 64 log-mel (10 ms hop) in 25x16 patches (8 x 4 tokens),
1000 steps of 32 at AdamW 3e-4.

As in the paper, whose streams start from ImageNet-21k ViT-B and AST-style
audio models, the fusion run starts from pretrained streams, each trained
alone on a question its modality answers (three CLI runs; tools.av_check
runs them in order):

  python -m vidjax.main --config=configs/mbt.py:looks --workdir=runs/looks
  python -m vidjax.main --config=configs/mbt.py:voice --workdir=runs/voice
  python -m vidjax.main --config=configs/mbt.py --workdir=runs/mbt \
    --config.init_from.checkpoint_path=runs/looks,runs/voice

* `:looks`: the video stream alone (`fusion="video_only"`) names both
  objects' colour classes, left and right (`objective="looks"`, 16
  classes), with position embeddings drawn at std 1.0
  (`model.posemb_init_std`; ViT's 0.02 left the side unlearnt: the stream
  named the pair of colours but not which was where, test 0.51 vs 0.85 at
  600 steps, benchmarks/RESULTS.md);
* `:voice`: the audio stream alone names the sounding voice's colour class
  (`objective="voice"`);
* the fusion run loads each stream by name from its run (init_from with
  two comma-separated checkpoints; the bottleneck tokens and the head start
  fresh). The head starts at std 0.02 (`model.head_init_std`; the paper's
  zero head passes no gradient to the streams, and on "which" no stream
  feature alone correlates with the label, so a zero-head run sits on the
  0.693 plateau), and the learning rate is 3e-4 (at 1e-3 the same run
  stayed on the plateau for 1000+ steps).
Measured: benchmarks/RESULTS.md (#22). From scratch (no init_from) every
MBT variant stays at chance on "which" (0.50), where Owens & Efros'
early-fusion CNN (configs/av_sync.py:which) reaches 1.00 from scratch.
Synchronisation: configs/av_sync.py (0.96); `:sync` here is MBT with a
binary head. Variants (everything else equal):

* `:late`, `:early`, `:video_only`, `:audio_only`: config.model.fusion
  (the baselines, from the same pretrained streams);
* `:looks`, `:voice`: the streams' pretraining runs (above);
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
            "sync_noise", "looks", "voice", "tiny", "audioset", "vggsound")

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
  m.fusion_layer, m.num_bottlenecks = 2, 4
  m.video_patch_size = (4, 8, 8)      # 4 x 4 x 4 tokens
  m.audio_patch_size = m.audio_patch_stride = (25, 16)
  m.classifier = "token"
  m.head_init_std = 0.02  # a zero head gets no gradient here (docstring)
  config.batch_size, config.eval_batch_size = 32, 64
  config.num_train_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = config.checkpoint_every_steps = 250
  o = config.optimizer
  # Fine-tuning from the pretrained streams (init_from, docstring): 3e-4;
  # at 1e-3 the same run sits on the 0.693 plateau for 1000+ steps.
  o.name, o.learning_rate, o.warmup_steps = "adamw", 3e-4, 100
  o.weight_decay, o.grad_clip_norm = 0.05, 1.0
  if arg in ("late", "early", "video_only", "audio_only"):
    m.fusion = arg
  if arg in ("sync", "sync_noise"):
    config.objective = "sync"
    config.dataset.sync = True
    config.dataset.audio_control = "noise" if arg == "sync_noise" else ""
  if arg == "looks":  # the video stream's pretraining
    m.fusion, config.objective = "video_only", "looks"
    m.posemb_init_std = 1.0
    config.num_train_steps, o.learning_rate = 1000, 1e-3
  if arg == "voice":  # the audio stream's pretraining
    m.fusion, config.objective = "audio_only", "voice"
    config.num_train_steps, o.learning_rate = 600, 1e-3
  if arg == "tiny":
    tiny(config)
  return config
