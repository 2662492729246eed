"""Spatio-temporal action detection, AVA-style (issue #21).

AVA (Gu et al., CVPR 2018, "AVA: A Video Dataset of Spatio-temporally
Localized Atomic Visual Actions"): every person in a keyframe (1 Hz) gets a
box and multi-label atomic actions, judged by frame-mAP at IoU 0.5 over the
evaluated classes. `ava_io`: the AVA CSV / label-map / excluded-timestamps
formats; `evaluate`: the exact frame-mAP of the official evaluator;
`eval_cli`: it on files; `data`: keyframe batches with boxes.
"""
