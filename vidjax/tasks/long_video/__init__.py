"""Untrimmed-video classification from sampled clips (issue #23 item 4):
samplers.py (dense / uniform-k / random-k / top-k / oracle), saliency.py
(SCSampler's cheap sampler), clips.py (candidate clips, cached),
evaluate.py (accuracy and multiply-adds per strategy), task.py
(`config.task = "long_video"`)."""
