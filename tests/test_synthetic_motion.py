"""Tests of the embedded `synthetic_motion` dataset (no JAX).

The statistical tests render examples directly with `render_example` (no build), fit a
ridge classifier in numpy on train-split features and score it on test-split features.
"""
import numpy as np
import pytest

from vidjax.data import synthetic_motion as sm

NUM_CLASSES = 8


# ---------------------------------------------------------------- building (TFDS)


def _read_all(builder, split):
  source = builder.as_data_source(split)
  videos = np.stack([source[i]["video"] for i in range(len(source))])
  labels = np.array([source[i]["label"] for i in range(len(source))])
  return videos, labels


@pytest.fixture(scope="module")
def tiny_builds(tmp_path_factory):
  kw = dict(train_per_class=3, test_per_class=2, num_frames=6, resolution=16)
  a = sm.load_builder("motion", str(tmp_path_factory.mktemp("a")), **kw)
  b = sm.load_builder("motion", str(tmp_path_factory.mktemp("b")), **kw)
  c = sm.load_builder("motion", str(tmp_path_factory.mktemp("c")), seed=7, **kw)
  return a, b, c


def test_build_balance_shapes_and_names(tiny_builds):
  builder = tiny_builds[0]
  assert builder.info.features["label"].names == list(sm.MOTION_NAMES)
  assert builder.builder_config.name.startswith("motion_custom_")
  for split, per_class in (("train", 3), ("test", 2)):
    videos, labels = _read_all(builder, split)
    assert videos.shape == (NUM_CLASSES * per_class, 6, 16, 16, 3)
    assert videos.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=NUM_CLASSES),
                                  [per_class] * NUM_CLASSES)
    # What is stored is exactly what the pure renderer draws.
    for i in (0, len(labels) - 1):
      video, label = sm.render_example(builder.builder_config, split, i)
      np.testing.assert_array_equal(videos[i], video)
      assert labels[i] == label


def test_build_is_deterministic_and_seeded(tiny_builds):
  a, b, c = tiny_builds
  for split in ("train", "test"):
    va, la = _read_all(a, split)
    vb, lb = _read_all(b, split)
    vc, _ = _read_all(c, split)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(la, lb)
    assert all(not np.array_equal(x, y) for x, y in zip(va, vc))
  # Splits draw from different streams.
  assert not np.array_equal(_read_all(a, "train")[0][:16], _read_all(a, "test")[0])
  assert a.builder_config.name != c.builder_config.name


def test_load_builder_reuses_cache_and_checks_names(tmp_path):
  kw = dict(train_per_class=1, test_per_class=1, num_frames=2, resolution=8)
  first = sm.load_builder("appearance", str(tmp_path), **kw)
  assert first.info.features["label"].names == list(sm.APPEARANCE_NAMES)
  files = sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.array_record*"))
  assert len(files) == 2
  sm.load_builder("appearance", str(tmp_path), **kw)  # prepared: nothing rewritten
  assert sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.array_record*")) == files
  with pytest.raises(ValueError, match="config_name"):
    sm.make_config("colour")
  with pytest.raises(ValueError, match="unknown"):
    sm.make_config("motion", frames=3)


def test_named_configs():
  names = {c.name: c for c in sm.SyntheticMotion.BUILDER_CONFIGS}
  assert set(names) == {"motion", "appearance"}
  for cfg in names.values():
    assert (cfg.num_frames, cfg.resolution) == (32, 32)
    assert (cfg.train_per_class, cfg.test_per_class) == (600, 100)
  assert names["motion"].seed != names["appearance"].seed


# ------------------------------------------------------- statistics (no building)


def _render(label_kind, split, per_class, num_frames=16):
  cfg = sm.make_config(label_kind, num_frames=num_frames)
  out = [sm.render_example(cfg, split, i) for i in range(NUM_CLASSES * per_class)]
  return (np.stack([v for v, _ in out]).astype(np.float32),
          np.array([l for _, l in out]))


@pytest.fixture(scope="module")
def motion_data():
  return _render("motion", "train", 60), _render("motion", "test", 30)


@pytest.fixture(scope="module")
def appearance_data():
  return _render("appearance", "train", 60), _render("appearance", "test", 30)


def _object_mask(frame):
  """Pixels far from the frame's median colour (the background is the majority)."""
  med = np.median(frame.reshape(-1, 3), axis=0)
  return np.linalg.norm(frame - med, axis=-1) > 50.0


def frame_features(videos, rng):
  """Features of ONE random frame per video: what a single-frame model could use."""
  n, t = videos.shape[:2]
  frames = videos[np.arange(n), rng.integers(t, size=n)]
  feats = []
  for f in frames:
    gray = f.mean(-1)
    m = _object_mask(f).astype(np.float32)
    area = m.sum() + 1e-3
    # Shape descriptors that do not depend on position: radial profile of the mask
    # around its (toroidal) centroid, size, compactness, holes, colour statistics.
    ys, xs = np.mgrid[:f.shape[0], :f.shape[1]]
    ang = 2 * np.pi / f.shape[0]
    cx = np.angle((m * np.exp(1j * ang * xs)).sum()) / ang
    cy = np.angle((m * np.exp(1j * ang * ys)).sum()) / ang
    dx = (xs - cx + f.shape[1] / 2) % f.shape[1] - f.shape[1] / 2
    dy = (ys - cy + f.shape[0] / 2) % f.shape[0] - f.shape[0] / 2
    r = np.sqrt(dx**2 + dy**2) / np.sqrt(area)
    prof = np.histogram(r, bins=8, range=(0, 1.6), weights=m)[0] / area
    perim = np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum()
    pool = gray.reshape(4, gray.shape[0] // 4, 4, -1).mean((1, 3)).ravel()
    feats.append(np.concatenate([
        prof, [np.log(area), perim**2 / area / 100, (r * m).sum() / area],
        f.reshape(-1, 3).mean(0) / 255, f.reshape(-1, 3).std(0) / 255, pool / 255]))
  return np.array(feats)


def motion_features(videos):
  """Least-squares flow fit per frame pair: translation x/y, rotation, divergence.

  Brightness constancy: dI/dt ~= -(u * Ix + v * Iy) with a 4-parameter flow
  (tx, ty, rotation w, scale k) about the object's toroidal centroid.
  """
  n, t, h, w = videos.shape[:4]
  gray = videos.mean(-1)
  ys, xs = np.mgrid[:h, :w]
  ang = 2 * np.pi / w
  feats = []
  for g in gray:
    ix = (np.roll(g, -1, 2) - np.roll(g, 1, 2)) / 2
    iy = (np.roll(g, -1, 1) - np.roll(g, 1, 1)) / 2
    it = g[1:] - g[:-1]
    ix, iy = (ix[1:] + ix[:-1]) / 2, (iy[1:] + iy[:-1]) / 2
    wgt = np.abs(it).sum(0)
    cx = np.angle((wgt * np.exp(1j * ang * xs)).sum()) / ang
    cy = np.angle((wgt * np.exp(1j * ang * ys)).sum()) / ang
    dx = (xs - cx + w / 2) % w - w / 2
    dy = (ys - cy + h / 2) % h - h / 2
    basis = np.stack([ix, iy, -dy * ix + dx * iy, dx * ix + dy * iy], -1)
    a = basis.reshape(-1, 4)
    params = np.linalg.lstsq(a.T @ a + 1e-3 * np.eye(4), -a.T @ it.ravel(), rcond=None)[0]
    feats.append(params * [1, 1, 10, 10])
  return np.array(feats)


def ridge_accuracy(x_train, y_train, x_test, y_test, lam=1.0):
  mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
  def design(x):
    x = (x - mu) / sd
    return np.concatenate([x, x**2, np.ones((len(x), 1))], 1)
  a = design(x_train)
  onehot = np.eye(NUM_CLASSES)[y_train]
  wts = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ onehot)
  return float((design(x_test) @ wts).argmax(1).__eq__(y_test).mean())


def test_motion_single_frames_are_at_chance(motion_data):
  (vtr, ytr), (vte, yte) = motion_data
  rng = np.random.default_rng(0)
  acc = ridge_accuracy(frame_features(vtr, rng), ytr, frame_features(vte, rng), yte)
  # 240 test videos: chance 0.125, binomial sd ~0.021.
  assert acc <= 0.2, acc


def test_motion_frame_differences_tell_the_class(motion_data):
  (vtr, ytr), (vte, yte) = motion_data
  acc = ridge_accuracy(motion_features(vtr), ytr, motion_features(vte), yte)
  assert acc >= 0.6, acc


def test_motion_per_frame_object_statistics_are_class_independent(motion_data):
  (videos, labels), _ = motion_data
  rng = np.random.default_rng(1)
  n, t = videos.shape[:2]
  frames = videos[np.arange(n), rng.integers(t, size=n)]
  area = np.array([_object_mask(f).sum() for f in frames], np.float64)
  rows = np.array([_object_mask(f).any(1).mean() for f in frames])
  for stat in (np.log(area + 1), rows):
    means = np.array([stat[labels == c].mean() for c in range(NUM_CLASSES)])
    sem = stat.std() / np.sqrt(n / NUM_CLASSES)
    # Every class mean within 4 standard errors of the pooled mean.
    assert np.abs(means - stat.mean()).max() < 4 * sem, (means, sem)


def test_appearance_single_frames_tell_the_class(appearance_data):
  (vtr, ytr), (vte, yte) = appearance_data
  rng = np.random.default_rng(0)
  acc = ridge_accuracy(frame_features(vtr, rng), ytr, frame_features(vte, rng), yte)
  assert acc >= 0.5, acc


def test_render_example_is_pure_and_labels_cycle():
  cfg = sm.make_config("motion", num_frames=4, resolution=16)
  v1, l1 = sm.render_example(cfg, "train", 13)
  v2, l2 = sm.render_example(cfg, "train", 13)
  np.testing.assert_array_equal(v1, v2)
  assert (l1, l2) == (13 % 8, 13 % 8)
  assert v1.shape == (4, 16, 16, 3) and v1.dtype == np.uint8
  assert not np.array_equal(v1, sm.render_example(cfg, "test", 13)[0])
  # Every frame shows the object (contrast against the background).
  for f in v1.astype(np.float32):
    assert _object_mask(f).sum() >= 4


def test_plain_background_is_flat_and_keeps_the_object_and_the_default():
  """`background="plain"` (issue #17's VideoMAE check): the same random draws,
  one flat background colour and no noise, so every changing pixel is the
  object's; the default render and the named configs' names are unchanged."""
  base = sm.make_config("motion", num_frames=8)
  plain = sm.make_config("motion", num_frames=8, background="plain")
  assert base.background == "textured" and plain.name != base.name
  assert sm.make_config("motion").name == "motion"
  for index in range(16):
    v, label = sm.render_example(base, "train", index)
    p, plabel = sm.render_example(plain, "train", index)
    assert label == plabel
    # Pixels far from the object equal one colour in every frame of `p`.
    near = np.stack([_object_mask(f.astype(np.float32)) for f in v]).any(0)
    for axis in (0, 1):  # dilate by 2 px (anti-aliased edges)
      near = near | np.roll(near, 1, axis) | np.roll(near, -1, axis)
      near = near | np.roll(near, 2, axis) | np.roll(near, -2, axis)
    bg = p[:, ~near]
    assert (~near).sum() > 200 and (bg == bg[0, 0]).all()
    # The textured render's background is not flat there.
    assert np.ptp(v[:, ~near].astype(np.int32)) > 0
  with pytest.raises(ValueError, match="background"):
    sm.render_example(sm.make_config("motion", background="noisy"), "train", 0)


def test_unknown_background_key_is_one_line_error_before_a_build(tmp_path):
  from configs import default
  from vidjax.data import datasets
  from vidjax.errors import VidjaxError
  config = default.get_config()
  config.dataset.data_dir = str(tmp_path)
  config.dataset.synthetic_background = "noisy"
  with pytest.raises(VidjaxError, match="synthetic_background"):
    datasets._synthetic_motion(config.dataset)
  assert not list(tmp_path.iterdir())  # nothing built
