"""The long videos of configs/scsampler.py: synthetic_untrimmed's
single-action setting (one label per video, 10-25% of the frames action,
room for 24 candidate clips), built as a custom config while the default
build stays what its recorded figures were measured on."""
import hashlib

import numpy as np

from configs import scsampler
from vidjax.data import synthetic_untrimmed as su
from vidjax.data import untrimmed_render as ur
from vidjax.tasks.long_video import samplers

SPAN = 15  # the classifier's clip: 8 frames at stride 2


def test_single_action_properties():
  c = su.make_config(**scsampler.SINGLE_ACTION)
  assert c.name.startswith("motion_custom_") and c.name != "motion"
  fractions = []
  for split in ("train", "test"):
    for i in range(120):
      t, segs, labels = ur.annotation(c.seed, split, i, **c.plan_kwargs())
      assert len(labels) == 1 and len(np.unique(labels)) == 1  # one label
      assert 384 <= t <= 416
      fractions.append((segs[:, 1] - segs[:, 0]).sum() / t)
      starts = samplers.candidate_starts(t, SPAN, 24)
      assert np.all(np.diff(starts) >= SPAN)  # 24 disjoint candidates
      useful = samplers.action_overlap(starts, SPAN, segs) >= 0.5
      assert 1 <= useful.sum() <= 7
  fractions = np.array(fractions)
  assert fractions.min() >= 0.10 and fractions.max() <= 0.25
  assert 0.14 < fractions.mean() < 0.20  # log-uniform 42-96 frames
  # all 8 classes occur
  labels = [ur.annotation(0, "test", i, **c.plan_kwargs())[2][0]
            for i in range(100)]
  assert set(labels) == set(range(8))


def test_single_action_pixels_move_only_in_the_action():
  c = su.make_config(**scsampler.SINGLE_ACTION)
  ex = su.render_example(c, "test", 1)
  (a, b), = ex["segments"]
  v = ex["video"].astype(np.float32)
  # net change over 14 frames: inside the action vs the idle frames
  move = np.abs(v[14:] - v[:-14]).mean((1, 2, 3))
  inside = move[a:b - 14].mean()
  idle = np.concatenate([move[:max(a - 14, 0)], move[b:]]).mean()
  assert inside > 2 * idle


def test_default_build_unchanged():
  c = su.make_config()
  assert c.name == "motion" and c.plan_kwargs() == {
      "min_frames": 256, "max_frames": 512, "min_instances": 1,
      "max_instances": 4, "min_duration": 8, "max_duration": 96,
      "min_gap": 4}
  h = hashlib.sha1()
  for i in range(16):
    t, segs, labels = ur.annotation(c.seed, "train", i, **c.plan_kwargs())
    for x in ([t], segs, labels):
      h.update(np.asarray(x, np.int64).tobytes())
  assert h.hexdigest() == "845cdda17116f8a5b809307c138737556f52fcd6"
  video = su.render_example(c, "test", 0)["video"]
  assert video.shape == (398, 32, 32, 3)
  assert hashlib.sha1(video.tobytes()).hexdigest() == (
      "3a689c32974f6d779a26cfdb107c373ca2488b61")
