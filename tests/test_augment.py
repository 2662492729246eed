"""Augmentations: determinism, frame consistency, crop geometry, flow flip,
mixup/cutmix labels, erasing, repeated aug, lazy reads, default parity, and a
tiny end-to-end train with mixing on."""
import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import cv2
import pytest

from conftest import tiny_config
from configs import default, recipes
from vidjax.data import augment, photometric
from vidjax.data.augment import AugmentSpec
from vidjax.data.pipeline import ClipSpec, EvalLoader, TrainLoader
from vidjax.errors import VidjaxError

# The loss test and the 4-step run are compile-bound: XLA optimisation level
# 0 (conftest.fast_compile: 39 -> 33 CPU-s for the module).
pytestmark = pytest.mark.fast_compile

ALL_ON = AugmentSpec(
    train_resize_short=40, train_resize_short_max=48, scale_jitter=(0.9, 1.33),
    crop_mode="resized", color_jitter=1.0, color_grayscale=0.2,
    randaugment_num_ops=4, randaugment_magnitude=7,
    randaugment_magnitude_std=.5,
    random_erasing_prob=0.5, mixup_alpha=0.8, cutmix_alpha=1.0,
    repeated_aug=2, test_resize_short=36, num_classes=4)


def textured(n=8, frames=12, h=40, w=52, c=3, same_frames=False, seed=0):
  """Random-texture videos; label i % 4; frame t carries t in pixel (0, 0)."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    v = rng.integers(0, 256, (1 if same_frames else frames, h, w, c), np.uint8)
    v = np.repeat(v, frames, 0) if same_frames else v
    out.append({"video": v, "label": i % 4})
  return out


def coords(n=6, frames=10, h=96, w=128, c=3):
  """Channel 0 = y, channel 1 = x, channel 2 = video id (a linear ramp)."""
  y, x = np.mgrid[:h, :w]
  out = []
  for i in range(n):
    v = np.zeros((frames, h, w, c), np.uint8)
    v[..., 0], v[..., 1], v[..., 2] = y, x, i
    out.append({"video": v, "label": i % 4})
  return out


def spec(aug=AugmentSpec(), crop=16, flip=True, frames=4):
  return ClipSpec(num_frames=frames, frame_stride=2, crop_size=crop, flip=flip,
                  aug=aug)


def test_all_augmentations_are_a_function_of_seed_and_step():
  src = textured(c=5)
  aug = dataclasses.replace(ALL_ON, mean=(.45,) * 5, std=(.225,) * 5)
  a, b = TrainLoader(src, spec(aug), 3, 8), TrainLoader(src, spec(aug), 3, 8)
  threaded = list(b.iterate(0, 4, num_workers=3, prefetch=2))
  for step in range(4):
    x = a.batch(step)
    np.testing.assert_array_equal(x["video"], threaded[step]["video"])
    np.testing.assert_array_equal(x["label"], threaded[step]["label"])
    assert x["video"].shape == (8, 4, 16, 16, 5)
    assert x["label"].shape == (8, 4) and x["label"].dtype == np.float32
    np.testing.assert_allclose(x["label"].sum(1), 1, atol=1e-6)
  assert not np.array_equal(a.batch(0)["video"], a.batch(1)["video"])
  c = TrainLoader(src, spec(aug), 4, 8).batch(0)["video"]
  assert not np.array_equal(a.batch(0)["video"], c)
  # Hosts split the global batch whatever the mixing: pairs stay on a host.
  parts = [TrainLoader(src, spec(aug), 3, 8, p, 2).batch(2) for p in range(2)]
  whole = a.batch(2)
  for key in ("video", "label"):
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]),
                                  whole[key])


@pytest.mark.parametrize("channels", [3, 5])
def test_every_augmentation_is_identical_across_frames(channels):
  src = textured(c=channels, same_frames=True)
  for mode in augment.CROP_MODES:
    aug = dataclasses.replace(ALL_ON, crop_mode=mode, random_erasing_prob=1.0,
                              mean=(.5,) * channels, std=(.25,) * channels)
    for step in range(2):
      clips = TrainLoader(src, spec(aug), 0, 8).batch(step)["video"]
      np.testing.assert_array_equal(clips, np.repeat(clips[:, :1], 4, 1))
  # Each RandAugment op by itself: same on every frame, and it does something.
  rng = np.random.default_rng(0)  # a low-contrast texture, so every op acts
  clip = np.repeat(rng.integers(40, 200, (1, 20, 24, channels), np.uint8), 3, 0)
  for name in photometric.RANDAUGMENT_OPS:
    out = photometric.randaugment_op(clip, name, 0.7, 1.0)
    np.testing.assert_array_equal(out, np.repeat(out[:1], 3, 0), err_msg=name)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert (name == "identity") == np.array_equal(out, clip), name
    if channels == 5 and name not in ("identity", "rotate", "shear_x",
                                      "shear_y", "translate_x", "translate_y"):
      np.testing.assert_array_equal(out[..., 3:], clip[..., 3:], err_msg=name)


def _box(clip, h, w):
  """Recover the sampled box (y0, x0, bh, bw) from a coordinate-ramp crop."""
  out = clip.shape[1]
  ys, xs = clip[0, :, 0, 0].astype(float), clip[0, 0, :, 1].astype(float)
  dy, dx = (ys[-1] - ys[0]) / (out - 1), (xs[-1] - xs[0]) / (out - 1)
  return ys[0] + 0.5 - 0.5 * dy, xs[0] + 0.5 - 0.5 * dx, dy * out, dx * out


def test_resized_crop_area_and_ratio_lie_in_their_ranges():
  h, w, out = 96, 128, 16
  aug = AugmentSpec(crop_mode="resized", crop_scale=(0.3, 0.6),
                    crop_ratio=(0.75, 4 / 3))
  clips = TrainLoader(coords(), spec(aug, crop=out, flip=False), 0, 48
                      ).batch(0)["video"]
  assert clips.shape == (48, 4, out, out, 3)
  fractions = []
  for clip in clips:
    y0, x0, bh, bw = _box(clip, h, w)
    fractions.append(bh * bw / (h * w))
    assert 0.3 - 0.02 <= fractions[-1] <= 0.6 + 0.02
    assert 0.75 - 0.03 <= bw / bh <= 4 / 3 + 0.03
    assert -0.6 <= y0 and y0 + bh <= h + 0.6
    assert -0.6 <= x0 and x0 + bw <= w + 0.6
  assert min(fractions) < 0.38 and max(fractions) > 0.52  # spans the range


def test_multiscale_and_short_side_resize_geometry():
  h, w, out = 96, 128, 16
  aug = AugmentSpec(crop_mode="multiscale")
  sizes = [int(96 * s) for s in augment.MULTISCALE_SCALES]
  seen = set()
  for clip in TrainLoader(coords(), spec(aug, crop=out, flip=False), 1, 48
                          ).batch(0)["video"]:
    y0, x0, bh, bw = _box(clip, h, w)
    i = int(np.argmin([abs(bh - s) for s in sizes]))
    j = int(np.argmin([abs(bw - s) for s in sizes]))
    assert abs(bh - sizes[i]) < 1.2 and abs(bw - sizes[j]) < 1.2
    assert abs(i - j) <= 1
    grid = np.arange(5)  # TSN's fixed positions: multiples of a quarter gap
    assert np.abs(y0 - grid * ((h - sizes[i]) // 4)).min() < 0.75
    assert np.abs(x0 - grid * ((w - sizes[j]) // 4)).min() < 0.75
    seen.add((i, j))
  assert len(seen) >= 5
  # Short side 48 (from 96): every output pixel steps 2 stored pixels.
  aug = AugmentSpec(train_resize_short=48)
  clip = TrainLoader(coords(), spec(aug, crop=out), 0, 2).batch(0)["video"][0]
  np.testing.assert_allclose(np.abs(np.diff(clip[0, :, 0, 0].astype(int))), 2)
  np.testing.assert_allclose(np.abs(np.diff(clip[0, 0, :, 1].astype(int))), 2)
  # Test views: short side 48, 3 crops along the long side (64 wide).
  ev = EvalLoader(coords(n=1), spec(dataclasses.replace(
      aug, test_resize_short=48), crop=out), 1, 3, 3).batch(0)["video"]
  np.testing.assert_allclose(ev[:, 0, 0, 0, 1].astype(int), [0, 48, 96],
                             atol=1)


def test_flip_negates_x_flow_and_leaves_rgb_and_y_flow():
  rng = np.random.default_rng(0)
  clip = rng.integers(0, 256, (2, 4, 6, 5), np.uint8)
  clip[0, 0, 0, 3] = 0
  out = augment.hflip(clip)
  np.testing.assert_array_equal(out[..., :3], clip[:, :, ::-1, :3])
  np.testing.assert_array_equal(out[..., 4], clip[:, :, ::-1, 4])
  q = clip[:, :, ::-1, 3].astype(int)
  np.testing.assert_array_equal(out[..., 3], np.minimum(256 - q, 255))
  assert out[0, 0, -1, 3] == 255 and augment.hflip(out)[0, 0, 0, 3] == 1
  flow = clip[..., 3:]
  np.testing.assert_array_equal(augment.hflip(flow)[..., 0], out[..., 3])
  np.testing.assert_array_equal(augment.hflip(flow)[..., 1], out[..., 4])
  # Through the loader: x-flow 100 (left) reads 156 exactly when mirrored.
  src = coords(n=4, h=20, w=24, c=5)
  for ex in src:
    ex["video"][..., 3], ex["video"][..., 4] = 100, 90
  flips = 0
  for c in TrainLoader(src, spec(crop=8), 0, 16).batch(0)["video"]:
    mirrored = c[0, 0, 0, 1] > c[0, 0, -1, 1]
    flips += mirrored
    assert (c[..., 3] == (156 if mirrored else 100)).all()
    assert (c[..., 4] == 90).all()
  assert 2 <= flips <= 14
  # Colour ops change RGB only.
  aug = AugmentSpec(color_jitter=1.0, color_grayscale=1.0)
  c = TrainLoader(textured(c=5), spec(aug, flip=False), 0, 2).batch(0)["video"]
  plain = TrainLoader(textured(c=5), spec(flip=False), 0, 2).batch(0)["video"]
  np.testing.assert_array_equal(c[..., 3:], plain[..., 3:])
  assert not np.array_equal(c[..., :3], plain[..., :3])
  np.testing.assert_array_equal(c[..., 0], c[..., 1])  # grey


def constant_source(n=8):
  """Video i: every pixel = 60 * (i % 4) + 10 (label i % 4)."""
  return [{"video": np.full((6, 12, 12, 3), 60 * (i % 4) + 10, np.uint8),
           "label": i % 4} for i in range(n)]


def test_mixup_label_mass_matches_the_pixels():
  aug = AugmentSpec(mixup_alpha=0.8, num_classes=4)
  values = 60 * np.arange(4) + 10
  mixed = 0
  for step in range(6):
    b = TrainLoader(constant_source(), spec(aug, crop=8), step, 8).batch(step)
    for clip, soft in zip(b["video"], b["label"]):
      assert (clip == clip.flat[0]).all()
      np.testing.assert_allclose(clip.flat[0], soft @ values, atol=0.51)
      assert soft.min() >= 0 and abs(soft.sum() - 1) < 1e-6
      assert (soft > 0).sum() <= 2
      mixed += (soft > 0).sum() == 2
  assert mixed > 10


def test_cutmix_label_weight_is_the_kept_area_and_box_is_shared():
  aug = AugmentSpec(cutmix_alpha=1.0, num_classes=4)
  for step in range(4):
    b = TrainLoader(constant_source(), spec(aug, crop=12), 0, 8).batch(step)
    masks = []
    for clip, soft in zip(b["video"], b["label"]):
      y = np.where(soft > 0)[0]
      first = clip[0, ..., 0]
      np.testing.assert_array_equal(clip, np.repeat(clip[:1], len(clip), 0))
      if len(y) == 1:
        masks.append(np.zeros_like(first, bool))
        continue
      counts = {k: (first == 60 * k + 10).mean() for k in y}
      for k in y:
        assert abs(soft[k] - counts[k]) < 1e-6, (soft, counts)
      masks.append(first == 60 * y[np.argmin([counts[k] for k in y])] + 10)
    kept = [m for m in masks if m.any()]
    for m in kept[1:]:
      np.testing.assert_array_equal(m, kept[0])  # one box for the batch


def test_random_erasing_rectangle_is_identical_on_all_frames():
  clip = np.stack([np.full((30, 40, 3), 20 * t, np.uint8) for t in range(5)])
  aug = AugmentSpec(random_erasing_prob=1.0)
  for seed in range(5):
    out = photometric.random_erase(clip, np.random.default_rng(seed), aug)
    changed = (out != clip).any(-1)
    ys, xs = np.where(changed.any(0))
    box = np.zeros_like(changed[0])
    box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    area = box.mean()
    assert 0.02 - 0.01 <= area <= 1 / 3 + 0.02
    for t in range(5):  # same rectangle and the same noise on every frame
      np.testing.assert_array_equal(out[t][box], out[0][box])
      np.testing.assert_array_equal(out[t][~box], clip[t][~box])


def test_repeated_aug_repeats_each_video_k_times_with_different_crops():
  src = coords(n=12, h=40, w=48)
  aug = AugmentSpec(repeated_aug=3)
  loader = TrainLoader(src, spec(aug, crop=16, flip=False), 0, 12)
  ids = np.concatenate([loader.indices(s) for s in range(3)])
  assert sorted(ids) == sorted(list(range(12)) * 3)  # an epoch: each 3 times
  b = loader.batch(0)["video"]
  vid = b[:, 0, 0, 0, 2].reshape(3, 4)
  np.testing.assert_array_equal(vid, np.repeat(vid[:1], 3, 0))
  assert len(set(vid[0])) == 4
  corners = b[:, 0, 0, 0, :2].reshape(3, 4, 2)
  assert not (corners[1:] == corners[:1]).all(-1).any()


class LazyVideo:
  """A lazy video that records which frames were decoded; no array access."""

  def __init__(self, video):
    self._video, self.shape, self.requests = video, video.shape, []

  def __len__(self):
    return len(self._video)

  def frames(self, indices):
    self.requests.append(list(np.asarray(indices)))
    return self._video[np.asarray(indices)]

  def __array__(self, *a, **k):
    raise AssertionError("materialised a lazy video")

  def __getitem__(self, key):
    raise AssertionError("indexed a lazy video")


def test_lazy_videos_decode_only_the_sampled_frames():
  base = coords(n=4, frames=9, h=20, w=24)
  for ex in base:
    ex["video"][..., 2] = np.arange(9)[:, None, None]  # the frame index
  for aug in (AugmentSpec(), AugmentSpec(crop_mode="resized"), ALL_ON):
    src = [{"video": LazyVideo(ex["video"]), "label": ex["label"]}
           for ex in base]
    eager = TrainLoader(base, spec(dataclasses.replace(aug, mixup_alpha=0,
                        cutmix_alpha=0), frames=5), 0, 4).batch(0)["video"]
    lazy = TrainLoader(src, spec(dataclasses.replace(aug, mixup_alpha=0,
                       cutmix_alpha=0), frames=5), 0, 4).batch(0)["video"]
    np.testing.assert_array_equal(eager, lazy)
    for ex in src:  # sorted distinct indices, at most the 5 sampled frames
      for req in ex["video"].requests:
        assert req == sorted(set(req)) and 1 <= len(req) <= 5
    if aug == AugmentSpec():  # one clip per video: exactly its frames
      for ex, clip in zip([src[i] for i in TrainLoader(
          src, spec(frames=5), 0, 4).indices(0)], lazy):
        assert ex["video"].requests == [sorted(set(clip[:, 0, 0, 2]))]
  src = [{"video": LazyVideo(ex["video"]), "label": 0} for ex in base]
  EvalLoader(src, spec(crop=16, frames=5), 2, 3, 24).batch(0)
  for ex in src:  # its 2 clips x 3 crops decode each frame once (#16)
    assert ex["video"].requests == [[0, 2, 4, 6, 8]]


def _old_batch(source, sp, seed, global_batch, step):
  """The pre-augmentation TrainLoader.batch, verbatim in behaviour."""
  n, clips, labels = len(source), [], []
  for j in range(global_batch):
    g = step * global_batch + j
    perm = np.random.default_rng((seed, 7919, g // n)).permutation(n)
    ex = source[perm[g % n]]
    video, rng = ex["video"], np.random.default_rng((seed, step, j))
    span = (sp.num_frames - 1) * sp.frame_stride + 1
    start = rng.integers(0, max(len(video) - span, 0) + 1)
    y = rng.integers(0, video.shape[1] - sp.crop_size + 1)
    x = rng.integers(0, video.shape[2] - sp.crop_size + 1)
    idx = np.minimum(start + sp.frame_stride * np.arange(sp.num_frames),
                     len(video) - 1)
    clip = video[idx, y:y + sp.crop_size, x:x + sp.crop_size]
    if sp.flip and rng.random() < 0.5:
      clip = clip[:, :, ::-1]
    clips.append(clip)
    labels.append(ex["label"])
  return np.stack(clips), np.array(labels, np.int32)


def test_defaults_reproduce_the_previous_batches_bit_for_bit():
  config = default.get_config()
  config.dataset.crop_size, config.dataset.num_frames = 16, 4
  for flip in (False, True):
    config.dataset.flip = flip
    sp = ClipSpec.from_config(config.dataset)
    assert sp.aug == AugmentSpec(mean=sp.aug.mean, std=sp.aug.std)
    src = textured(n=7, frames=11, h=20, w=26)
    loader = TrainLoader(src, sp, 5, 6)
    for step in (0, 1, 4):
      videos, labels = _old_batch(src, sp, 5, 6, step)
      b = loader.batch(step)
      np.testing.assert_array_equal(b["video"], videos)
      np.testing.assert_array_equal(b["label"], labels)
      assert b["label"].dtype == np.int32 and b["label"].ndim == 1


def test_bad_augmentation_values_are_one_line_errors():
  def check(match, **fields):
    d = default.get_config().dataset
    d.update(fields)
    with pytest.raises(VidjaxError, match=match):
      ClipSpec.from_config(d)
  check("config.dataset.crop_scale", crop_scale=(0.5, 1.5))
  check("config.dataset.crop_scale", crop_scale=(0.0, 1.0))
  check("config.dataset.crop_mode='inception'", crop_mode="inception")
  check("config.dataset.color_jitter", color_jitter=1.5)
  check("config.dataset.color_hue", color_hue=0.7)
  check("config.dataset.repeated_aug", repeated_aug=0)
  check("config.dataset.train_resize_short_max", train_resize_short=0,
        train_resize_short_max=320)
  check("config.dataset.test_resize_short=16", test_resize_short=16)
  with pytest.raises(VidjaxError, match="config.dataset.repeated_aug=3"):
    TrainLoader(textured(), spec(AugmentSpec(repeated_aug=3)), 0, 8)
  with pytest.raises(VidjaxError, match="config.batch_size=6"):
    TrainLoader(textured(), spec(AugmentSpec(mixup_alpha=1., num_classes=4)),
                0, 6, 0, 2)
  with pytest.raises(VidjaxError, match="config.dataset.mixup_alpha"):
    TrainLoader(textured(), spec(AugmentSpec(mixup_alpha=1.)), 0, 8)
  with pytest.raises(VidjaxError, match="train_resize_short"):
    TrainLoader(textured(), spec(AugmentSpec(train_resize_short=12)), 0, 2
                ).batch(0)


def test_recipes_set_the_published_values():
  c = recipes.videomae_finetune(default.get_config())
  c.dataset.name = "kinetics400"
  aug = ClipSpec.from_config(c.dataset, num_classes=400).aug
  assert (aug.randaugment_num_ops, aug.randaugment_magnitude,
          aug.randaugment_magnitude_std) == (4, 7.0, 0.5)
  assert (aug.mixup_alpha, aug.cutmix_alpha, aug.random_erasing_prob,
          aug.repeated_aug, aug.num_classes) == (0.8, 1.0, 0.25, 2, 400)
  assert c.label_smoothing == 0.1
  assert (c.num_test_clips, c.num_test_crops) == (5, 3)
  assert c.dataset.resize_short == 320  # VideoMAE stores Kinetics at 320
  assert recipes.videomae_finetune(default.get_config(), ssv2=True
                                   ).dataset.resize_short == 240
  c = recipes.slowfast_kinetics(default.get_config())
  aug = ClipSpec.from_config(c.dataset).aug
  assert (aug.train_resize_short, aug.train_resize_short_max) == (256, 320)
  assert c.dataset.flip and c.dataset.crop_size == 224
  assert (c.dataset.test_resize_short, c.dataset.test_crop_size) == (256, 256)
  assert (c.num_test_clips, c.num_test_crops) == (10, 3)
  c = recipes.vivit_kinetics(default.get_config())
  aug = ClipSpec.from_config(c.dataset).aug
  assert aug.scale_jitter == (0.9, 1.33) and aug.color_jitter == 0.8
  assert not ClipSpec.from_config(c.dataset).aug.mixing
  c = recipes.tsn_kinetics(default.get_config())
  assert (c.dataset.crop_mode, c.dataset.train_resize_short) == (
      "multiscale", 256)


def test_soft_label_loss_is_linear_in_the_target_and_matches_int_labels():
  from vidjax import steps
  from vidjax.registry import build_model
  config = tiny_config("", label_smoothing=0.1)
  model = build_model(config.model, 4)
  tx = optax.sgd(0.0)
  # Jitted init with an rbg key, steps at XLA optimisation level 0: the same
  # computations, compiled in less CPU time.
  state = jax.jit(lambda rng: steps.create_state(model, tx, config, rng))(
      jax.random.key(0, impl="rbg"))
  step = jax.jit(steps.make_train_step(config, lambda s: 0.0))
  video = jax.random.randint(jax.random.PRNGKey(1), (4, 4, 16, 16, 3), 0, 255
                             ).astype(jnp.uint8)
  a, b = jnp.array([0, 1, 2, 3]), jnp.array([1, 2, 3, 0])
  compiled = {}

  def run(lab):
    batch = {"video": video, "label": lab}
    key = (lab.shape, lab.dtype)
    if key not in compiled:  # one program for int labels, one for soft ones
      compiled[key] = step.lower(state, batch).compile(
          {"xla_backend_optimization_level": 0})
    return compiled[key](state, batch)[1]

  ia, ib = run(a), run(b)
  fa = run(jax.nn.one_hot(a, 4))
  np.testing.assert_allclose(fa["train/loss"], ia["train/loss"], rtol=1e-6)
  assert fa["train/top1"] == ia["train/top1"]
  mixed = run(0.7 * jax.nn.one_hot(a, 4) + 0.3 * jax.nn.one_hot(b, 4))
  np.testing.assert_allclose(
      mixed["train/loss"], 0.7 * ia["train/loss"] + 0.3 * ib["train/loss"],
      rtol=1e-5)
  assert mixed["train/top1"] == ia["train/top1"]  # argmax of the soft label


def test_tiny_train_with_mixup_cutmix_randaugment(tiny_data_dir, tmp_path):
  from vidjax import train
  config = tiny_config(tiny_data_dir, **{
      "dataset.mixup_alpha": 0.8, "dataset.cutmix_alpha": 1.0,
      "dataset.randaugment_num_ops": 2, "dataset.randaugment_magnitude": 7.0,
      "dataset.random_erasing_prob": 0.25, "dataset.crop_mode": "resized",
      "dataset.repeated_aug": 2, "label_smoothing": 0.1,
      "num_train_steps": 4, "eval_every_steps": 4, "checkpoint_every_steps": 4})
  final = train.train_and_evaluate(config, str(tmp_path))
  assert 0.0 <= final["eval/top1"] <= 1.0
  rows = [json.loads(line) for line in
          open(os.path.join(tmp_path, "metrics.jsonl"))]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert losses and all(math.isfinite(x) for x in losses)
  assert all(r.get("train/skipped_steps", 0) == 0 for r in rows)


@pytest.mark.parametrize("mode", ["multiscale", "resized", "random"])
def test_training_crops_are_whole_pixel_boxes_resized_as_the_warp_would(mode):
  """Training maps snap to crop-then-resize boxes (torchvision's semantics):
  the clip reads exactly the box, and cv2.resize of it equals the general
  bilinear warp of the same map on the whole frame within 2 levels (OpenCV's
  fixed-point weights), on a smooth image."""
  rng = np.random.default_rng(0)
  height, width = 256, 455
  frames = cv2.GaussianBlur(
      rng.integers(0, 256, (4 * height, width, 3), np.uint8), (9, 9), 3
  ).reshape(4, height, width, 3)
  aug = augment.AugmentSpec(crop_mode=mode, train_resize_short=240,
                            train_resize_short_max=300)
  for seed in range(8):
    s = augment.train_sampling(np.random.default_rng(seed), height, width,
                               aug, 224)
    box = s.box
    assert box is not None and s.window(height, width) == box
    y, x, h, w = box
    assert 0 <= y and y + h <= height and 0 <= x and x + w <= width
    fast = s.apply(frames[:, y:y + h, x:x + w], box)
    general = augment.Sampling(s.y0 + 1e-9, s.x0, s.dy, s.dx, s.out_h,
                               s.out_w)
    gy, gx, gh, gw = win = general.window(height, width)
    slow = general.apply(frames[:, gy:gy + gh, gx:gx + gw], win)
    assert fast.shape == slow.shape == (4, 224, 224, 3)
    assert np.abs(fast.astype(int) - slow).max() <= 2
