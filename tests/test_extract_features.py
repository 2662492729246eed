"""tools.extract_features: the features are the head's input, and each one is
read from exactly the frames its JSON names (a video whose frame k has a
known brightness), at the times the container's frame rate gives."""
import json
import os

import av
import numpy as np
import pytest

from conftest import tiny_config

# One xdist worker runs this module: its module fixture is built once.
# A tiny saved run and its feature extraction: compile-bound, so XLA
# optimisation level 0 (conftest.fast_compile: 19 -> 13 CPU-s).
pytestmark = [pytest.mark.xdist_group("extract_features"),
              pytest.mark.fast_compile]

FPS = 10
NUM_FRAMES = 40
CLASS_NAMES = [f"class{i}" for i in range(8)]


def brightness(k):
  return 20 + 5 * np.asarray(k)


def make_run(workdir, model: str = "c3d", **overrides):
  """A run folder (checkpoint + meta) of an untrained tiny model: no data, no
  training; `load_run` reads it as a trained run."""
  import jax
  import optax
  from vidjax import checkpoint, costs, steps
  config = tiny_config(str(workdir), model=model, **overrides)
  if model == "c3d":
    config.model.widths = (4, 4, 4, 4, 4, 4, 4, 4)
    config.model.fc_dim = 8
    config.model.batch_norm = True
  m, _ = costs.configured_model(config)
  # jitted, rbg keys: XLA:CPU compiles the init several times faster.
  state = jax.jit(lambda rng: steps.create_state(
      m, optax.identity(), config, rng))(jax.random.key(0, impl="rbg"))
  # A non-trivial head (some models start it at zero).
  head = state.params["head"]
  head = {k: v + 0.1 * jax.random.normal(jax.random.key(1, impl="rbg"),
                                          v.shape) for k, v in head.items()}
  state = state.replace(params={**state.params, "head": head})
  ckpt = checkpoint.Checkpointer(str(workdir), 1)
  ckpt.save(state, checkpoint.make_meta(config, state.params, CLASS_NAMES))
  ckpt.close()
  return str(workdir)


def write_gray_video(path, num_frames=NUM_FRAMES, size=32):
  """Lossless (FFV1) video whose frame k is uniformly brightness(k)."""
  with av.open(str(path), "w") as c:
    s = c.add_stream("ffv1", rate=FPS)
    s.height = s.width = size
    s.pix_fmt = "bgr0"
    for k in range(num_frames):
      frame = np.full((size, size, 3), brightness(k), np.uint8)
      for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  return make_run(tmp_path_factory.mktemp("fx_run"))


def test_features_sit_on_the_frames_the_json_names(run_dir, tmp_path):
  import jax
  import jax.numpy as jnp
  from tools import extract_features as xf
  from vidjax import steps
  from vidjax.viz.run import load_run
  videos = tmp_path / "videos"
  (videos / "sub").mkdir(parents=True)
  write_gray_video(videos / "sub" / "long.mkv")
  write_gray_video(videos / "short.mkv", num_frames=5)
  (videos / "broken.mp4").write_bytes(b"not a video at all" * 10)
  out = tmp_path / "out"
  result = xf.extract(run_dir, str(videos), str(out), stride=3, batch_size=4,
                      log=lambda *a: None)
  assert sorted(result["written"]) == ["short", "sub__long"]
  assert [s["video"] for s in result["skipped"]] == ["broken.mp4"]
  assert json.load(open(out / "skipped.json"))[0]["video"] == "broken.mp4"

  meta = json.load(open(out / "sub__long.json"))
  feats = np.load(out / "sub__long.npy")
  # The run samples 4 frames every 2nd frame: a window spans 7 frames.
  assert (meta["window"], meta["frame_stride"], meta["span"],
          meta["stride"]) == (4, 2, 7, 3)
  assert meta["fps"] == meta["container_fps"] == FPS
  assert meta["num_frames"] == NUM_FRAMES
  starts = list(range(0, NUM_FRAMES - 7 + 1, 3))  # 0, 3, ..., 33
  rows = meta["features"]
  assert [r["start_frame"] for r in rows] == starts
  assert feats.shape == (len(starts), meta["feature_dim"]) == (12, 8)
  for r, s in zip(rows, starts):
    assert r["frames"] == [s, s + 2, s + 4, s + 6]
    assert (r["end_frame"], r["centre_frame"]) == (s + 6, s + 3.5)
    assert r["start_time"] == pytest.approx(s / FPS)
    assert r["centre_time"] == pytest.approx((s + 3.5) / FPS)
    assert r["end_time"] == pytest.approx((s + 7) / FPS)
    assert not r["padded"]

  # Known content: the clips of the named frames have those brightnesses, and
  # each stored feature is nearest to the model's feature of the clip built
  # from the known frames, not to the clip one or two frames off.
  run = load_run(run_dir, flag="--run")
  ex = xf.Extractor(run, stride=3, batch_size=4)
  video, _ = xf.decode_file(str(videos / "sub" / "long.mkv"),
                            run.config.dataset)
  clips = ex.clips(video, starts)
  assert clips.shape == (12, 4, 16, 16, 3)
  np.testing.assert_allclose(clips.mean(axis=(2, 3, 4)), brightness(
      [r["frames"] for r in rows]), atol=1.5)
  d = run.config.dataset

  # The feature of the clip of frames first, first + 2, ... (known content),
  # for every window's start shifted by -2 .. 2 frames: one jitted batch.
  shifts = np.arange(-2, 3)
  firsts = np.array(starts[1:-1])[:, None] + shifts[None]  # [10, 5]
  values = brightness(firsts[..., None] + 2 * np.arange(4))  # [10, 5, 4]
  clips = np.broadcast_to(values[..., None, None, None].astype(np.uint8),
                          values.shape + (16, 16, 3)).reshape(-1, 4, 16, 16, 3)
  known = jax.jit(lambda v, c: xf.pre_logits(run.model, v, steps.normalize(
      c, tuple(d.mean), tuple(d.std)))[0])(run.variables, jnp.asarray(clips))
  known = np.asarray(known).reshape(firsts.shape + (-1,))
  for j in range(len(firsts)):
    dist = np.linalg.norm(feats[j + 1] - known[j], axis=-1)  # per shift
    assert np.argmin(dist) == 2, (starts[j + 1], dist)
    assert dist[2] < 0.1 * min(dist[1], dist[3]), dist

  # A video shorter than one span: one window, its last frames repeated.
  short = json.load(open(out / "short.json"))
  assert np.load(out / "short.npy").shape == (1, 8)
  assert short["features"][0]["frames"] == [0, 2, 4, 4]
  assert short["features"][0]["padded"] is True


def test_features_are_the_heads_input(run_dir, tmp_path):
  """head(feature) == logits, for a clip-level head (C3D) and a per-frame
  head whose logits the model averages (single-frame CNN)."""
  import jax
  import jax.numpy as jnp
  from tools import extract_features as xf
  from vidjax.viz.run import load_run
  frame_run = make_run(tmp_path / "sf", model="single_frame")
  x = jax.random.normal(jax.random.PRNGKey(3), (3, 4, 16, 16, 3))
  for path, dim in ((run_dir, 8), (frame_run, 16)):
    run = load_run(path, flag="--run")
    feats, logits = jax.jit(lambda v, x: xf.pre_logits(run.model, v, x))(
        run.variables, x)
    assert feats.shape == (3, dim)
    head = run.variables["params"]["head"]
    np.testing.assert_allclose(feats @ head["kernel"] + head["bias"], logits,
                               rtol=1e-5, atol=1e-5)
    assert float(jnp.std(logits)) > 1e-3  # not a degenerate zero head


def test_bad_inputs_are_one_line_errors(run_dir, tmp_path):
  from tools import extract_features as xf
  from vidjax.errors import VidjaxError
  write_gray_video(tmp_path / "a.mkv", num_frames=8)
  # ViViT's position embeddings fix the clip length: refused before decoding.
  vivit = make_run(tmp_path / "vivit", model="vivit_factorized")
  with pytest.raises(VidjaxError, match=r"--window=8: model vivit_factorized "
                     r"cannot take 8-frame clips \(trained on 4\)"):
    xf.extract(vivit, str(tmp_path / "a.mkv"), str(tmp_path / "o"), window=8)
  with pytest.raises(VidjaxError, match="--videos=.*neither"):
    xf.extract(run_dir, str(tmp_path / "missing"), str(tmp_path / "o"))
  with pytest.raises(VidjaxError, match="--run=.*does not exist"):
    xf.extract(str(tmp_path / "norun"), str(tmp_path / "a.mkv"),
               str(tmp_path / "o"))
  with pytest.raises(VidjaxError, match="--stride"):
    xf.extract(run_dir, str(tmp_path / "a.mkv"), str(tmp_path / "o"),
               stride=-1)
