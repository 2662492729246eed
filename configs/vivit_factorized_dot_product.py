"""ViViT model 4, factorised dot-product attention (Arnab et al. 2021, Sec. 3.3).

`configs/vivit_factorized_dot_product.py`: a small model on the embedded
`synthetic_motion` dataset (8x32x32 clips).
`configs/vivit_factorized_dot_product.py:k400`: ViViT-B/16x2 with the paper's
Kinetics-400 recipe (Tab. 7; see configs/vivit_spatiotemporal.py).
"""
from configs import default
from configs.vivit_spatiotemporal import k400_single_encoder, small_recipe

VARIANTS = ("", "k400")  # rows of tools/model_table


def get_config(arg: str = ""):
  config = default.get_config()
  config.model.name = "vivit_factorized_dot_product"
  if arg == "k400":
    return k400_single_encoder(config)
  if arg != "":
    raise ValueError(f"vivit_factorized_dot_product.py: unknown config "
                     f"argument {arg!r}; use '' or 'k400'")
  return small_recipe(config)
