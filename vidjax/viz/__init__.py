"""Visualising what video models learned (lectures: saliency, Grad-CAM,
activation maximisation, attention rollout; class models for video and the
two-stream network after Feichtenhofer et al. 2018).

* `saliency`: |d class score / d input|, max over channels, per frame.
* `gradcam`: Grad-CAM on any CNN's last spatio-temporal feature map, found by
  module path with `flax.linen.intercept_methods` (no model file changes).
* `rollout`: attention rollout of ViViT / ViT / VideoMAE from the attention
  weights `vidjax.layers.attention` sows when asked.
* `classmodel`: activation maximisation with L2, total-variation and
  temporal-smoothness ("slow" vs "fast" motion) regularisers.
* `filters`: first-layer filters as short clips (their temporal slices).
* `reconstruction`: VideoMAE input | masked | reconstruction.
* `render`: GIFs (Pillow) and PNG grids (matplotlib, Agg).
* `run`: a run's latest checkpoint -> model + parameters; a test-split index
  or a video file -> the clip the model sees.

Command line: `python -m tools.visualize --workdir=RUN --video=0`.
"""
