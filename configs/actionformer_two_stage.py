"""Two-stage temporal action localization (TAL-Net, Chao et al. CVPR 2018, as
the lecture describes it): class-agnostic ActionFormer proposals, then a 1D
RoIAlign of each proposal's features with context extension and a classifier
(vidjax/tasks/localization/two_stage.py).

  python -m vidjax.main --config=configs/actionformer_two_stage.py --workdir=DIR

Everything else as configs/actionformer.py (from pixels, same backbone,
features, schedule); its evaluation adds the proposals' recall,
eval/ar@10_tiou0.5. Variants: "", "tiny".
"""
from configs import actionformer

VARIANTS = actionformer.VARIANTS


def get_config(arg: str = ""):
  if arg not in VARIANTS:
    raise ValueError(f"actionformer_two_stage.py: unknown config argument "
                     f"{arg!r}")
  return actionformer.get_config(arg, two_stage=True)
