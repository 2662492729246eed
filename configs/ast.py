"""AST: the Audio Spectrogram Transformer (Gong, Chung & Glass, Interspeech
2021), a ViT over log-mel patches. Model: vidjax/models/audio_visual.py
("ast"); task: vidjax/tasks/audio_visual/ (config.task "audio_visual").

Default: audio only, on the embedded `synthetic_av` "fusion" clips with
`config.objective="voice"`: the label is the colour class of the sounding
object, which fixes its voice's pitch band (vidjax/data/av_render.py
F0_BANDS); the test clips' pitches are held-out bins within the bands.
2 s -> 201 x 64 log-mel (10 ms hop) in 16x16 patches (12 x 4), 4 layers of
width 64, for a 2-core CPU.

`:audioset`: AST-B as the paper trains it on AudioSet (527 classes,
multi-label, mAP): the Kaldi fbank AST uses (vidjax.audio.frontend preset
"ast_kaldi": 25 ms Hann frames every 10 ms, 128 mel bins, ln), 1024 frames
(10.24 s: AST pads 10 s clips to 1024 frames), 16x16 patches every 10
(fstride = tstride = 10: 12 x 101 = 1212 patches), ViT-B (12 layers,
D 768), inputs normalised with AST's AudioSet statistics ((x + 4.27) /
(2 x 4.57)); Adam lr 1e-5 (ImageNet-initialised in the paper), batch 12,
5 epochs. One CLS token (the paper's DeiT initialisation adds a
distillation token). On the user's AudioSet files (the build stores 10.255
s of 16 kHz audio a clip, and 8^2 frames once a second, which AST ignores;
clips without audio are counted in the build report and kept silent):
  python -m vidjax.main --config=configs/ast.py:audioset \
    --config.dataset.manual_dir=/data/audioset \
    --config.dataset.csv=balanced_train_segments.csv \
    --config.dataset.test_csv=eval_segments.csv \
    --config.dataset.class_labels=class_labels_indices.csv \
    --config.dataset.data_dir=/data/tfds --workdir=/runs/ast_audioset
"""
from configs import default
from configs import mbt

VARIANTS = ("", "audioset")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"ast.py: unknown config argument {arg!r}; use one of "
                     f"{VARIANTS}")
  config = default.get_config()
  m = config.model
  m.name = "ast"
  m.audio_posemb = "learned"   # | "separable" (time + frequency embeddings)
  m.dropout_rate = m.attention_dropout_rate = m.stochastic_depth = 0.0
  if arg == "audioset":
    from vidjax.audio import frontend  # noqa: PLC0415
    fbank = frontend.preset("ast_kaldi").to_dict()
    samples = 400 + 1023 * 160   # 1024 kaldi frames
    mbt.audio_visual_data(config, "audioset", samples / 16000, 1, 8,
                          fbank, (-4.2677393, 2 * 4.5689974))
    mbt.user_clips(config, 1.0, 8)  # audio only: a token 8^2 frame a second
    config.dataset.multilabel = True
    m.hidden_size, m.num_heads, m.mlp_dim, m.num_layers = 768, 12, 3072, 12
    m.audio_patch_size, m.audio_patch_stride = (16, 16), (10, 10)
    m.classifier = "token"
    config.batch_size = config.eval_batch_size = 12
    config.num_train_epochs = 5.0
    o = config.optimizer
    o.name, o.learning_rate, o.weight_decay = "adamw", 1e-5, 0.0
    m.dtype = "bfloat16"  # compute; params and optimizer state float32
    return config
  mbt.synthetic_data(config, "fusion")
  config.objective = "voice"
  m.hidden_size, m.num_heads, m.mlp_dim, m.num_layers = 64, 4, 128, 4
  m.audio_patch_size = m.audio_patch_stride = (16, 16)
  m.classifier = "token"
  config.batch_size, config.eval_batch_size = 32, 64
  config.num_train_steps = 600
  config.log_every_steps = 50
  config.eval_every_steps = config.checkpoint_every_steps = 300
  o = config.optimizer
  o.name, o.learning_rate, o.warmup_steps = "adamw", 1e-3, 50
  o.weight_decay, o.grad_clip_norm = 0.05, 1.0
  return config
