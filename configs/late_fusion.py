"""Late fusion of a per-frame 2D ResNet (Karpathy et al. 2014; lecture 10).

`configs/late_fusion.py`: per-frame feature maps (4x4x64 at 32x32 input)
flattened and concatenated over the 8 frames into an MLP (128 hidden,
dropout 0.5) -- Karpathy et al.'s "late fusion" with fully connected layers.
`configs/late_fusion.py:pool`: features averaged over space and time into a
linear classifier (the lecture's late fusion with pooling; the same function
family as `single_frame.py`).
"""
from configs import default

VARIANTS = ("", "pool")


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"late_fusion.py: unknown config argument {arg!r}; use "
                     "'' or 'pool'")
  config = default.get_config()
  config.model.name = "late_fusion"
  config.model.widths = (16, 32, 64)
  config.model.blocks_per_stage = 1
  config.model.fusion = arg or "mlp"
  config.model.flatten_space = True
  config.model.mlp_dims = (128,)
  config.model.dropout_rate = 0.5 if config.model.fusion == "mlp" else 0.0
  return default.synthetic_recipe(config, 600, warmup_steps=50)
