"""Recurrent convolutional network with ConvGRU cells (Ballas et al. 2016,
GRU-RCN): a per-frame 2D ResNet (16, 32) gives 8x8x32 maps, a 3x3 ConvGRU of
32 channels runs over the 8 frames, the last hidden state is averaged over
space into a linear classifier. `:lstm`: a ConvLSTM cell instead.
"""
from configs import default

VARIANTS = ("", "lstm")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"conv_gru.py: unknown config argument {arg!r}; use '' "
                     "or 'lstm'")
  config = default.get_config()
  config.model.name = "conv_gru"
  config.model.widths = (16, 32)
  config.model.blocks_per_stage = 1
  config.model.gru_features = (32,)
  config.model.input_kernel = 3
  config.model.hidden_kernel = 3
  config.model.cell = "lstm" if arg == "lstm" else "gru"
  config.model.readout = "last"
  config.model.scan = False  # unrolled: nn.scan of convs is slow on CPU
  return default.synthetic_recipe(config, 600, warmup_steps=50)
