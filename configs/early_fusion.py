"""Early fusion (Karpathy et al. 2014; lecture 10): the 8 frames stacked on
channels (8 x 3 = 24 input channels of the first conv), then a 2D ResNet of
widths (16, 32, 64) on the embedded `synthetic_motion` dataset.
"""
from configs import default

VARIANTS = ("",)


def get_config(arg: str = ""):
  if arg:
    raise ValueError(f"early_fusion.py: unknown config argument {arg!r}")
  config = default.get_config()
  config.model.name = "early_fusion"
  config.model.widths = (16, 32, 64)
  config.model.blocks_per_stage = 1
  return default.synthetic_recipe(config, 600, warmup_steps=50)
