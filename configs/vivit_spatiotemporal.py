"""ViViT model 1, joint spatio-temporal attention (Arnab et al. 2021, Sec. 3.3).

`configs/vivit_spatiotemporal.py`: a small model on the embedded
`synthetic_motion` dataset (8x32x32 clips), trained like
`configs/vivit_factorized.py`'s default.
`configs/vivit_spatiotemporal.py:k400`: ViViT-B/16x2 (32x224x224, 12 layers,
hidden 768, 12 heads, MLP 3072) with the paper's Kinetics-400 recipe
(`configs.vivit_factorized._k400`, Tab. 7), base lr 0.1.

`small_recipe` and `k400_single_encoder` are shared with the model-3 and
model-4 configs, whose models take the same options minus `classifier` and
`scan_layers`.
"""
from configs import default
from configs.vivit_factorized import _k400

VARIANTS = ("", "k400")  # rows of tools/model_table


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "vivit_spatiotemporal"
  config.model.classifier = "token"
  config.model.scan_layers = False
  if arg == "k400":
    config = k400_single_encoder(config)
    # Fits the paper batch on 8 GPUs of 80 GB and a TPU v4-16 (8 x 32 GiB):
    # tools.memory_table, benchmarks/RESULTS.md "Memory at paper batch".
    config.model.scan_layers = True
    config.model.remat = True
    config.grad_accum_steps = 1
    return config
  if arg != "":
    raise ValueError(f"vivit_spatiotemporal.py: unknown config argument "
                     f"{arg!r}; use '' or 'k400'")
  return small_recipe(config)


def _common_model_options(config):
  config.model.dropout_rate = 0.0
  config.model.attention_dropout_rate = 0.0
  config.model.stochastic_depth = 0.0
  config.model.attention_impl = "auto"  # einsum on CPU, cuDNN on GPU, splash on TPU
  config.model.remat = False
  config.model.dtype = "float32"


def small_recipe(config):
  """Tiny model + synthetic_motion training (as vivit_factorized.py's)."""
  _common_model_options(config)
  config.model.patch_size = (2, 8, 8)
  config.model.hidden_size = 64
  config.model.num_heads = 4
  config.model.mlp_dim = 256
  config.model.num_layers = 4
  config.model.head_init_std = 0.02  # small random head: faster from scratch
  return default.synthetic_recipe(config)


def k400_single_encoder(config):
  """ViViT-B/16x2 K400 recipe for the single-encoder models (1, 3, 4)."""
  _common_model_options(config)
  config = _k400(config)  # data, ViViT-B widths, SGD recipe, 4x3 views
  del config.model.spatial_layers  # model-2 options
  del config.model.temporal_layers
  config.model.num_layers = 12
  config.optimizer.learning_rate = 0.1  # paper's base lr (B-FE uses 0.05)
  config.model.dtype = "bfloat16"  # compute; params, optimizer state float32
  return config
