"""Clip sampling and batching: determinism, epochs, hosts, multi-view order."""
import ml_collections
import numpy as np
import pytest

from vidjax.data import pipeline
from vidjax.data.pipeline import ClipSpec, EvalLoader, TrainLoader
from vidjax.errors import VidjaxError


def coded_source(n=10, frames=20, size=12):
  """Video i, frame t, pixel (y, x): channels hold (i, t, 10*y + x)."""
  t = np.arange(frames)[:, None, None]
  y, x = np.mgrid[:size, :size]
  out = []
  for i in range(n):
    v = np.zeros((frames, size, size, 3), np.uint8)
    v[..., 0] = i
    v[..., 1] = t
    v[..., 2] = (10 * y + x)[None] % 256
    out.append({"video": v, "label": i % 3})
  return out


SPEC = ClipSpec(num_frames=4, frame_stride=2, crop_size=8, flip=False)


def test_train_batches_are_a_function_of_seed_and_step():
  src = coded_source()
  a = TrainLoader(src, SPEC, seed=1, global_batch=4)
  b = TrainLoader(src, SPEC, seed=1, global_batch=4)
  for step in (0, 3, 7):
    np.testing.assert_array_equal(a.batch(step)["video"],
                                  b.batch(step)["video"])
  assert not np.array_equal(a.batch(0)["video"], a.batch(1)["video"])
  c = TrainLoader(src, SPEC, seed=2, global_batch=4)
  assert not np.array_equal(a.indices(0), c.indices(0))


def test_each_epoch_visits_every_video_once():
  src = coded_source(n=12)
  loader = TrainLoader(src, SPEC, seed=0, global_batch=4)
  epoch0 = np.concatenate([loader.indices(s) for s in range(3)])
  epoch1 = np.concatenate([loader.indices(s) for s in range(3, 6)])
  assert sorted(epoch0) == list(range(12)) == sorted(epoch1)
  assert list(epoch0) != list(epoch1)  # reshuffled per epoch


def test_hosts_split_the_global_batch():
  src = coded_source()
  whole = TrainLoader(src, SPEC, seed=3, global_batch=6).batch(5)
  parts = [TrainLoader(src, SPEC, seed=3, global_batch=6, process_index=p,
                       process_count=3).batch(5) for p in range(3)]
  np.testing.assert_array_equal(
      np.concatenate([p["video"] for p in parts]), whole["video"])
  np.testing.assert_array_equal(
      np.concatenate([p["label"] for p in parts]), whole["label"])


def test_train_clip_is_strided_and_cropped_consistently():
  src = coded_source()
  batch = TrainLoader(src, SPEC, seed=0, global_batch=4).batch(0)
  assert batch["video"].shape == (4, 4, 8, 8, 3)
  assert batch["video"].dtype == np.uint8
  for clip, label in zip(batch["video"], batch["label"]):
    times = clip[:, 0, 0, 1].astype(int)
    np.testing.assert_array_equal(np.diff(times), [2, 2, 2])
    assert 0 <= times[0] <= 20 - 7
    assert label == clip[0, 0, 0, 0] % 3
    # One crop for the whole clip: every frame has the same pixel codes.
    np.testing.assert_array_equal(clip[0, ..., 2], clip[-1, ..., 2])


def test_flip_mirrors_width():
  src = coded_source()
  spec = SPEC._replace(flip=True)
  flipped = 0
  loader = TrainLoader(src, spec, seed=0, global_batch=10)
  for clip in loader.batch(0)["video"]:
    codes = clip[0, 0, :, 2].astype(int)
    if codes[0] > codes[-1]:
      flipped += 1
      np.testing.assert_array_equal(np.diff(codes), -np.ones(7))
  assert 1 <= flipped <= 9


def test_test_views_uniform_clips_and_three_crops():
  np.testing.assert_array_equal(pipeline.test_starts(20, SPEC, 3), [0, 6, 13])
  np.testing.assert_array_equal(pipeline.test_starts(20, SPEC, 1), [6])
  # Symmetric in time, so a frame statistic that drifts with time (a growing
  # object's size) averages out over a video's clips.
  for n in (2, 3, 4, 5):
    starts = pipeline.test_starts(32, SPEC, n)
    assert np.abs(starts + starts[::-1] - (32 - 7)).max() <= 1
  assert pipeline.crop_origins(12, 16, 8, 3) == [(2, 0), (2, 4), (2, 8)]
  assert pipeline.crop_origins(16, 12, 8, 3) == [(0, 2), (4, 2), (8, 2)]
  assert pipeline.crop_origins(12, 12, 8, 1) == [(2, 2)]
  # Short videos repeat their last frame instead of failing.
  np.testing.assert_array_equal(pipeline.frame_indices(5, SPEC, 0),
                                [0, 2, 4, 4])


def test_eval_loader_enumerates_every_view_once_with_padding():
  src = coded_source(n=5)
  loader = EvalLoader(src, SPEC, num_clips=3, num_crops=3, global_batch=8)
  assert loader.num_views == 45 and loader.num_batches == 6
  batches = list(loader.iterate(num_workers=2, prefetch=2))
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.sum() == 45 and mask[45:].sum() == 0 and len(mask) == 48
  videos = np.concatenate([b["video"] for b in batches])[:45]
  ids = videos[:, 0, 0, 0, 0].reshape(5, 9)
  np.testing.assert_array_equal(ids, np.repeat(np.arange(5)[:, None], 9, 1))
  first = videos[:9]  # video 0: clips x crops, clip-major
  starts = first[:, 0, 0, 0, 1].reshape(3, 3)
  np.testing.assert_array_equal(starts, [[0] * 3, [6] * 3, [13] * 3])
  corner = first[:, 0, 0, 0, 2].reshape(3, 3)  # 10*y + x of the crop origin
  np.testing.assert_array_equal(corner[0], [20, 22, 24])


def test_eval_loader_hosts_split_views():
  src = coded_source(n=3)
  whole = EvalLoader(src, SPEC, 2, 1, global_batch=4).batch(1)
  parts = [EvalLoader(src, SPEC, 2, 1, global_batch=4, process_index=p,
                      process_count=2).batch(1) for p in range(2)]
  for key in ("video", "label", "mask"):
    np.testing.assert_array_equal(
        np.concatenate([p[key] for p in parts]), whole[key])


def test_bad_sizes_are_one_line_errors():
  with pytest.raises(VidjaxError, match="config.dataset.crop_size=16"):
    TrainLoader(coded_source(), SPEC._replace(crop_size=16), 0, 2).batch(0)
  with pytest.raises(VidjaxError, match="config.dataset.num_frames"):
    ClipSpec.from_config(ml_collections.ConfigDict(dict(
        num_frames=0, frame_stride=1, crop_size=8, flip=False)))
  with pytest.raises(VidjaxError, match="training split has no videos"):
    TrainLoader([], SPEC, 0, 2)


def test_eval_max_videos_takes_evenly_spaced_videos_with_their_paths():
  src = coded_source(n=10)
  sub = pipeline.Subset(src, 3)
  assert list(sub.indices) == [0, 4, 9] and len(sub) == 3
  loader = EvalLoader(sub, SPEC, num_clips=2, num_crops=1, global_batch=4)
  assert loader.num_views == 6
  videos = np.concatenate([loader.batch(b)["video"][:, 0, 0, 0, 0]
                           for b in range(loader.num_batches)])[:6]
  assert list(videos) == [0, 0, 4, 4, 9, 9]  # channel 0 holds the video id
  assert len(pipeline.Subset(src, 0)) == len(pipeline.Subset(src, 50)) == 10


def test_test_crop_size_sets_the_test_views():
  spec = SPEC._replace(test_crop_size=10)
  loader = EvalLoader(coded_source(n=2), spec, 1, 3, global_batch=4)
  assert loader.batch(0)["video"].shape[2:4] == (10, 10)
  with pytest.raises(VidjaxError, match="config.dataset.test_crop_size=14"):
    EvalLoader(coded_source(n=2), SPEC._replace(test_crop_size=14), 1, 1,
               global_batch=4).batch(0)
