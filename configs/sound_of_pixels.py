"""Visually guided source separation, mix-and-separate (Zhao et al., ECCV
2018, "The Sound of Pixels"; object-conditioned as Gao & Grauman, ICCV
2019, "Co-Separating Sounds of Visual Objects"). Model:
vidjax/models/separation.py (`separation_unet`); task:
vidjax/tasks/separation/ (`config.task = "separation"`).

`configs/sound_of_pixels.py` (default): a 4-level U-Net (widths 16..128)
on the 64-bin log-frequency magnitude of synthetic_av/separation's 2 s
mixtures (16 kHz, STFT 512 / hop 160 / window 400: VisualVoice's), FiLM by
each object's RoIAligned visual features (4 of the 16 frames), ratio masks,
weighted BCE; for a 2-core CPU. Evaluated on the 256 test mixtures (voices
at held-out pitches): SDR / SI-SDR improvement over the mixture, the oracle
ideal ratio mask and the other-object condition (tools/separation_check.py).
Measured through `python -m vidjax.main` (300 steps, 512 test sources):
SDRi 25.55 dB, SI-SDRi 20.69 dB, other object's condition SDRi -47.52 dB,
oracle IRM SDR 30.52 dB (bars >= 6, <= 0, >= 15); 100 steps gave 20.9 dB
SDRi (on 64 sources). 245 s of CPU time (26 min wall on a loaded 2-core
machine).

`:binary`: SoP's default binary masks instead.
`:tiny`: the tests' (separation_tones: 0.5 s tones, 4 frames; a 2-level
U-Net; 4 steps).
`:music`: the paper's sizes for MUSIC-style solo videos (SoP's
train_MUSIC.sh: 11025 Hz, 65535-sample clips (6 s), STFT 1022 / hop 256,
256 log-frequency bins, unet7 (64, 128, 256, 512, 512, 512, 512), binary
masks, weighted BCE, 2-source mixtures, 3 frames at stride 24 of 8 fps, 224
crops; the visual net here is a 4-stage 2D ResNet, not their dilated
ResNet-18). vidjax has no MUSIC loader yet: this variant's preflight runs
(the paper-size model is traced) and the data step refuses with one line.
"""
import ml_collections

from configs import default

VARIANTS = ("", "binary", "tiny", "music")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"sound_of_pixels.py: unknown config argument {arg!r}; "
                     f"use one of {VARIANTS}")
  config = default.get_config()
  config.task = "separation"
  d = config.dataset
  d.name, d.config = "synthetic_av", "separation"
  d.num_frames, d.frame_stride, d.crop_size = 16, 1, 32  # the stored clip
  d.clip_samples = 32000
  d.fps = 8.0                # synthetic_av's (a builder field: 0 is refused)
  config.separation = ml_collections.ConfigDict({
      "num_sources": 2, "loss": "bce", "remix_gain": 0.0})
  config.model = ml_collections.ConfigDict({
      "name": "separation_unet", "sample_rate": 16000, "n_fft": 512,
      "win_length": 400, "hop_length": 160, "pad_mode": "reflect",
      "freq_bins": 64, "log_freq": True, "widths": (16, 32, 64, 128),
      "mask": "ratio", "conditioning": "film", "visual_widths": (16, 32),
      "visual_frames": 4, "visual_stem_stride": 1, "roi_size": 2,
      "dtype": "float32"})
  config.batch_size = 16
  config.eval_batch_size = 32
  config.num_train_steps = 300
  config.log_every_steps = 50
  config.eval_every_steps = 300        # the final evaluation only
  config.checkpoint_every_steps = 100
  o = config.optimizer
  o.name, o.learning_rate, o.warmup_steps = "adamw", 2e-3, 50
  o.weight_decay, o.grad_clip_norm = 1e-4, 1.0
  if arg == "binary":
    config.model.mask = "binary"
  if arg == "tiny":  # tests: instant data, a few steps
    d.name, d.config = "separation_tones", ""
    d.train_size, d.test_size = 16, 8
    d.num_frames, d.clip_samples = 4, 8000      # 0.5 s clips of 4 frames
    m = config.model
    m.freq_bins, m.widths, m.visual_widths, m.visual_frames = 32, (8, 16), (8,), 2
    config.batch_size = config.eval_batch_size = 8
    config.num_train_steps = 4
    o.warmup_steps = 1
    config.log_every_steps = config.eval_every_steps = 2
    config.checkpoint_every_steps = 2
  if arg == "music":
    d.name, d.config = "music", ""
    d.path = ""               # the user's folder / CSV of solo videos
    d.num_frames, d.frame_stride, d.crop_size = 3, 24, 224
    d.clip_samples = 65535
    d.fps = 8.0
    m = config.model
    m.sample_rate, m.n_fft, m.win_length, m.hop_length = 11025, 1022, 1022, 256
    m.pad_mode = "constant"
    m.freq_bins, m.widths = 256, (64, 128, 256, 512, 512, 512, 512)
    m.mask = "binary"
    m.visual_widths, m.visual_frames = (64, 128, 256, 512), 3
    m.visual_stem_stride, m.roi_size = 2, 7
    config.batch_size = config.eval_batch_size = 32
    config.num_train_steps = 100000
    config.log_every_steps = 100
    config.eval_every_steps = config.checkpoint_every_steps = 5000
    o.learning_rate, o.warmup_steps = 1e-3, 1000
  return config
