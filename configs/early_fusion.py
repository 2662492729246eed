"""Early fusion (Karpathy et al. 2014; lecture 10): the 8 frames stacked on
channels (8 x 3 = 24 input channels of the first conv), then a 2D ResNet of
widths (16, 32, 64) on the embedded `synthetic_motion` dataset.

The stem starts as the single-frame model's on the centre frame
(`model.stem_init="center"`, vidjax/models/fusion.py), not as a random mix
of the 8 frames: with a random mix a moving object's 8 displaced copies are
summed into a smear before any shape detector exists, and early fusion
learned shape slower than the single frame (issue #17, 600 steps on
`synthetic_motion/appearance`: 52.1% vs 59.4%; at 1200: 76.4% vs 88.0%).
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
  config.model.stem_init = "center"   # "random": Karpathy et al.'s init
  return default.synthetic_recipe(config, 600, warmup_steps=50)
