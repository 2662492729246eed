"""Temporal action localization on untrimmed videos (issue #20).

* `timing`: the one definition of seconds <-> frame <-> window-feature index.
* `annotations`: ActivityNet JSON and THUMOS14 per-class list readers/writers.
* `evaluate`: exact, pure-numpy detection mAP (ActivityNet matching, VOC
  interpolated AP, THUMOS `Ambiguous` handling), AR@AN / AUC, prediction JSON.
* `data`: padded, masked sequences and segments for a jitted step; readers of
  features and videos over the user's ActivityNet / THUMOS files.
* `eval_cli`: `python -m vidjax.tasks.localization.eval_cli` scores a
  prediction JSON against ActivityNet JSON or THUMOS lists.
* `actionformer`, `targets`, `losses`, `postprocess`: the ActionFormer-style
  one-stage detector, its point targets, focal + DIoU losses, soft-NMS
  decoding; `two_stage`: proposals + 1D RoIAlign classifier;
  `train_step` / `detect`: jitted steps and the host detection loop.
"""
