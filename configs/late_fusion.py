"""Late fusion of a per-frame 2D ResNet (Karpathy et al. 2014; lecture 10).

`configs/late_fusion.py`: each frame's feature map (4x4x64 at 32x32 input)
averaged over space into a 64-vector, the 8 vectors concatenated in frame
order into an MLP (128 hidden, ReLU) and a linear layer: per-frame
appearance, fused in fully connected layers.
`--config.model.flatten_space=True` concatenates the whole maps instead
(Karpathy et al.'s towers merged in fc layers: 8192 inputs). On
`synthetic_motion/appearance` (random position, no crop to move it) that
variant learns each shape at each position: it fits the training clips and
stays near chance on the test videos, below the single-frame model, while
the spatially averaged default is above it (issue #17; the figures are in
benchmarks/RESULTS.md, "Every model learns").
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
  config.model.flatten_space = False
  config.model.mlp_dims = (128,)
  # 0.5 (Karpathy's fc dropout) keeps this small MLP near the single-frame
  # model's accuracy within the short budgets (issue #17).
  config.model.dropout_rate = 0.0
  return default.synthetic_recipe(config, 600, warmup_steps=50)
