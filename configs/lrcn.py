"""LRCN, CNN + LSTM (Donahue et al. 2015): per-frame 2D ResNet (16, 32, 64)
maps (4x4x64), flattened into fc6 (256, ReLU; the paper's LSTM input) ->
LSTM (64 units) -> per-step linear predictions, averaged over the
8 steps (`:last`: the last step's prediction only).

Random crops, as Donahue et al. train (227-px crops of 256-px frames): the
32-px crop is taken from frames resized to 40 px (test: the centre crop of
the same 40 px), so the position-specific fc6 sees each motion at many
places. Without it fc6 memorises positions: on `synthetic_motion/motion`,
1200 steps of a plain loop over 3,200 videos, test top-1 went 40.3% ->
62.0% with the crops (train 99.9% -> 66%: no longer overfitting), and
62.0% with `:last` alone (issue #17).
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
  config = default.synthetic_recipe(config, 600, warmup_steps=50)
  config.dataset.train_resize_short = 40
  config.dataset.test_resize_short = 40
  config.dataset.max_upsample = 1.25  # 32 -> 40 px on synthetic_motion
  return config
