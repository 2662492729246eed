"""R(2+1)D-18 (Tran et al. 2018): as configs/r3d.py with (2+1)D blocks.

`configs/r2plus1d.py`: narrow, on `synthetic_motion`, for a 2-core CPU.
`configs/r2plus1d.py:k400`: R(2+1)D-18, 16x112x112, Kinetics-400: 31.5M params,
40.5 G multiply-adds (the commonly quoted figures; mid_rule="block_input", a
block's second (2+1)D conv reuses its first conv's M, as torchvision's
r2plus1d_18). --config.model.mid_rule=paper gives every conv its own M_i
(Tran et al. Sec. 3.5): 33.4M params, as R3D-18, and 41.5 G.
"""
from configs import r3d

VARIANTS = ("", "k400")


def get_config(arg: str = ""):
  return r3d.build(arg, "r2plus1d", "2plus1d")
