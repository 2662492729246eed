"""LRCN, CNN + LSTM (Donahue et al. 2015): per-frame 2D ResNet (16, 32, 64)
maps (4x4x64), flattened into fc6 (256, ReLU; the paper's LSTM input) ->
LSTM (64 units) -> per-step linear predictions, averaged over the
8 steps (`:last`: the last step's prediction only).
"""
from configs import default

VARIANTS = ("", "last")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"lrcn.py: unknown config argument {arg!r}; use '' or "
                     "'last'")
  config = default.get_config()
  config.model.name = "lrcn"
  config.model.widths = (16, 32, 64)
  config.model.blocks_per_stage = 1
  config.model.frame_feature = "fc6"   # "pool": the spatial mean (no where)
  config.model.fc_dim = 256
  config.model.hidden_size = 64
  config.model.readout = arg or "mean"
  config.model.dropout_rate = 0.0
  config.model.scan = True
  return default.synthetic_recipe(config, 600, warmup_steps=50)
