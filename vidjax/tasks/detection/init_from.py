"""A Kinetics classifier's checkpoint as the backbone of an AVA detector.

The AVA recipes start from a Kinetics-400 classifier and re-initialise the
head (Feichtenhofer et al., ICCV 2019, Sec. 5.1: "pre-trained on Kinetics
... the detection head is trained from scratch"; PySlowFast's AVA configs
TRAIN.CHECKPOINT_FILE_PATH of a K400 SlowFast; VideoMAE's AVA fine-tuning
from its K400 encoder, Tong et al., NeurIPS 2022). `config.init_from.
checkpoint_path` of a detection config reads such a run through the shared
`init_from` path (vidjax/init_adapt.py `adapt_pretrained` and
`adapt_batch_stats` call `classifier_to_detector`), which renames the
classifier's tree to the detector's (vidjax/tasks/detection/model.py):

* "ava_slowfast": a SlowFast classifier's modules (`slow_*`, `fast_*`,
  `lateral*`, `head`) -> `backbone/*`, its `head` dropped (the detector's
  `roi_head` starts fresh). The res5 dilation changes no kernel shape, so
  every backbone parameter loads.
* "ava_videomae": a VideoMAE fine-tuned classifier or pretraining model
  keeps its `encoder/*` (already the detector's names); a mean-pooling
  classifier's `fc_norm` (its last LayerNorm of the features; per token the
  same function) becomes the encoder's final norm
  `encoder/transformer/norm`, which the detector's token map ends with
  (backbones.token_maps); its `head` and the pretraining decoder are
  dropped.

A tree already in the detector's layout (a detection run) is unchanged. A
checkpoint of another model keeps its names, so `checkpoint.check_fits`
rejects it with one line naming `config.init_from.checkpoint_path` before
anything is compiled.
"""
from __future__ import annotations

from typing import Tuple

SLOWFAST_PREFIXES = ("slow_", "fast_", "lateral")


def classifier_to_detector(model_name: str, tree: dict) -> Tuple[dict, list]:
  """(tree renamed for `model_name`'s detector, notes); params or
  batch_stats (module docstring)."""
  if not tree:
    return tree, []
  keys = set(tree)
  if model_name == "ava_slowfast" and "backbone" not in keys and any(
      k.startswith(SLOWFAST_PREFIXES) for k in keys):
    dropped = sorted(k for k in keys if not k.startswith(SLOWFAST_PREFIXES))
    kept = {k: v for k, v in tree.items() if k.startswith(SLOWFAST_PREFIXES)}
    return {"backbone": kept}, [
        f"SlowFast classifier -> backbone/ ({len(kept)} modules); dropped "
        f"{', '.join(dropped) or 'nothing'} (the AVA head starts fresh)"]
  if model_name == "ava_videomae" and "encoder" in keys and (
      keys - {"encoder", "roi_head"}):
    encoder, notes = dict(tree["encoder"]), []
    blocks = dict(encoder.get("transformer", {}))
    if "fc_norm" in keys and "norm" not in blocks:
      blocks["norm"] = tree["fc_norm"]
      encoder["transformer"] = blocks
      keys = keys - {"fc_norm"}
      notes.append("fc_norm -> encoder/transformer/norm (the classifier's "
                   "last LayerNorm of its features)")
    dropped = sorted(keys - {"encoder", "roi_head"})
    return {"encoder": encoder}, notes + [
        f"VideoMAE encoder/ kept; dropped {', '.join(dropped) or 'nothing'} "
        "(the AVA head starts fresh)"]
  return tree, []
