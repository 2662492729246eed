"""TimeSformer, divided space-time attention (Bertasius et al., ICML 2021).

`configs/timesformer.py`: a small model on the embedded `synthetic_motion`
dataset (8x32x32 clips, 8x8 patches), trained like
`configs/vivit_factorized.py`'s default.
`configs/timesformer.py:k400`: TimeSformer (base) on Kinetics-400 as in the
paper's Sec. 4: 8 frames sampled 1/32, 224 crop, 16x16 patches, hidden 768,
12 layers, 12 heads, MLP 3072; SGD momentum 0.9, weight decay 1e-4, lr 0.005,
15 epochs; data as the release's TimeSformer_divST_8x32_224 config
(PySlowFast's Kinetics pipeline, `recipes.slowfast_kinetics`: short side in
[256, 320], 224 crops, flip; test 1 clip x 3 crops of 224 at short side 224). Differences: the paper divides the lr by
10 at epochs 11 and 14 (this codebase has cosine / constant schedules: cosine
here), and starts from ImageNet-pretrained ViT weights (use
`init_from.checkpoint_path`); batch 8 is the authors' released setting.
"""
from configs import default, recipes

VARIANTS = ("", "k400")  # rows of tools/model_table


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "timesformer"
  config.model.attention_type = "divided_space_time"
  config.model.dropout_rate = 0.0
  config.model.attention_dropout_rate = 0.0
  config.model.stochastic_depth = 0.0
  config.model.attention_impl = "auto"  # einsum on CPU, cuDNN on GPU, splash on TPU
  config.model.remat = False
  config.model.dtype = "float32"
  if arg == "k400":
    return _k400(config)
  if arg != "":
    raise ValueError(f"timesformer.py: unknown config argument {arg!r}; "
                     "use '' or 'k400'")
  config.model.patch_size = 8
  config.model.hidden_size = 64
  config.model.num_heads = 4
  config.model.mlp_dim = 256
  config.model.num_layers = 2
  config.model.head_init_std = 0.02  # small random head: faster from scratch
  return default.synthetic_recipe(config)


def _k400(config):
  recipes.slowfast_kinetics(config)  # the release's PySlowFast pipeline
  config.dataset.test_resize_short, config.dataset.test_crop_size = 224, 0
  config.dataset.name = "kinetics400"
  config.dataset.num_frames = 8
  config.dataset.frame_stride = 32
  config.dataset.mean = (0.45, 0.45, 0.45)
  config.dataset.std = (0.225, 0.225, 0.225)
  config.model.patch_size = 16
  config.model.hidden_size = 768
  config.model.num_heads = 12
  config.model.mlp_dim = 3072
  config.model.num_layers = 12
  config.model.head_init_std = 0.0
  # ImageNet start as the release (vidjax/init_image.py: temporal attention
  # copied from the spatial one, temporal_fc and time embedding zero): a
  # transformers ViT-B/16 folder (e.g. google/vit-base-patch16-224):
  # python -m tools.convert_checkpoint --source=HF_DIR --out=VIT, then
  # --config.init_from.checkpoint_path=VIT (the ViT's exact GELU: also
  # --config.model.approximate_gelu=False --config.model.layer_norm_eps=1e-12).
  config.batch_size = 8
  config.num_train_epochs = 15.0
  config.log_every_steps = 100
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 1000
  config.num_test_clips = 1
  config.num_test_crops = 3
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.learning_rate = 0.005
  config.optimizer.warmup_steps = 0
  config.optimizer.weight_decay = 1e-4
  config.optimizer.grad_clip_norm = 0.0
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
