"""Single-frame 2D CNN baseline (lecture: per-frame predictions, averaged).

On `synthetic_motion/motion` it should sit near chance: no single frame tells
the class. On `synthetic_motion/appearance` it should be strong.
"""
from configs import default


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "single_frame"
  config.model.widths = (16, 32, 64)
  config.model.blocks_per_stage = 1
  config.dataset.config = arg or "motion"
  return default.synthetic_recipe(config, 600, warmup_steps=50)
