"""Per-split frame files (vidjax/data/frame_store.py, issue #16): a built
video_folder dataset stores its JPEGs there, a clip reads exactly its own
frames' bytes, remote (scheme) paths read through a file object, and a source
pickles as a few paths (worker processes reopen it)."""
import os
import pickle

import numpy as np

from configs import default
from tests.test_video_folder import clip, write_video
from vidjax.data import datasets, frame_store
from vidjax.data.pipeline import ClipSpec, TrainLoader
from vidjax.data.video_folder import StoredSource

N_FRAMES = 40


def build(tmp_path):
  for label, name in enumerate(("cat", "dog")):
    for i in range(3):
      write_video(f"{tmp_path}/videos/{name}/{name}{i}.mp4",
                  clip(label, n=N_FRAMES))
  cfg = default.get_config().dataset
  cfg.name, cfg.path = "video_folder", str(tmp_path / "videos")
  cfg.data_dir, cfg.test_fraction = str(tmp_path / "tfds"), 0.5
  cfg.resize_short = 48
  return datasets.load(cfg)


def test_a_clip_reads_only_its_frames_bytes(tmp_path):
  data = build(tmp_path)
  source = data.train
  assert isinstance(source, StoredSource) and len(source) == 4
  store = source.store
  for split in ("train", "test"):
    for name in frame_store.SPLIT_FILES:
      assert os.path.exists(os.path.join(store.folder, name.format(split)))
  # One whole video's JPEG bytes, from its offsets.
  first, count = (int(v) for v in store.videos[0, :2])
  assert count == N_FRAMES
  sizes = np.diff(store.offsets)
  whole = int(sizes[first:first + count].sum())
  spec = ClipSpec(num_frames=4, frame_stride=4, crop_size=32, flip=False)
  loader = TrainLoader(source, spec, seed=0, global_batch=1)
  for step in range(3):
    record = int(source._records[loader.indices(step)[0]])
    start, n = (int(v) for v in store.videos[record, :2])
    before = store.bytes_read
    batch = loader.batch(step)
    # The sampled frames, from the clip's own rng draw (start first).
    t0 = np.random.default_rng((0, step, 0)).integers(0, n - 12)
    frames = start + t0 + 4 * np.arange(4)
    assert store.bytes_read - before == int(sizes[frames].sum())
    assert store.bytes_read - before < whole / 5
    assert batch["video"].shape == (1, 4, 32, 32, 3)


def test_remote_paths_read_through_a_file_object(tmp_path, monkeypatch):
  data = build(tmp_path)
  local = data.train.store
  want = local.video(1).frames([0, 5, 39])
  monkeypatch.setattr(frame_store, "_remote", lambda path: True)
  assert frame_store.has_store(local.folder, "train")
  remote = frame_store.FrameStore(local.folder, "train")
  np.testing.assert_array_equal(remote.video(1).frames([0, 5, 39]), want)
  assert remote._fd is None and remote._file is not None  # no pread
  assert remote.bytes_read == int(np.diff(remote.offsets)[
      remote.videos[1, 0] + np.array([0, 5, 39])].sum())


def test_a_source_pickles_as_its_folder_and_reopens(tmp_path):
  source = build(tmp_path).train
  blob = pickle.dumps(source)
  assert len(blob) < 4000  # paths and small arrays, never frames
  again = pickle.loads(blob)
  assert again.store is not source.store and again.store.bytes_read == 0
  np.testing.assert_array_equal(np.asarray(again[2]["video"]),
                                np.asarray(source[2]["video"]))
  assert again.paths == source.paths


def test_a_version_1_build_stays_readable(tmp_path):
  """A 1.0.0 build (all of a video's JPEGs in its TFDS record, no frame
  files) opens as before, through the records."""
  import cv2
  import tensorflow_datasets as tfds
  from vidjax.data import video_folder

  frames = clip(1, n=6)  # RGB
  jpegs = [cv2.imencode(".jpg", f[..., ::-1])[1].tobytes() for f in frames]

  class OldVideoFolder(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = tmp_path  # no package metadata (tests is no package)

    def _info(self):
      return self.dataset_info_from_configs(
          features=tfds.features.FeaturesDict({
              "frames": tfds.features.Sequence(
                  tfds.features.Tensor(shape=(), dtype=np.object_)),
              "height": tfds.features.Scalar(dtype=np.int32),
              "width": tfds.features.Scalar(dtype=np.int32),
              "fps": tfds.features.Scalar(dtype=np.float32),
              "label": tfds.features.ClassLabel(names=["cat", "dog"]),
              "path": tfds.features.Text()}), disable_shuffling=True)

    def _split_generators(self, dl_manager):
      return {s: self._generate_examples(s) for s in ("train", "test")}

    def _generate_examples(self, split):
      yield 0, {"frames": jpegs, "height": frames.shape[1],
                "width": frames.shape[2], "fps": 25.0, "label": 1,
                "path": f"dog/{split}.mp4"}

  builder = OldVideoFolder(data_dir=str(tmp_path))
  builder.download_and_prepare(file_format="array_record")
  assert not frame_store.has_store(str(builder.data_dir), "train")
  rows = {s: [[f"dog/{s}.mp4", 1, 6]] for s in ("train", "test")}
  train, test, _ = video_folder._open(
      builder, rows, [], 1, ["cat", "dog"], [], [], "old build", name="old",
      where=str(tmp_path / "report.txt"))
  assert isinstance(train, video_folder.VideoSource)
  got = train[0]["video"].frames([0, 5])
  want = np.stack([cv2.imdecode(np.frombuffer(jpegs[i], np.uint8),
                                cv2.IMREAD_COLOR)[..., ::-1] for i in (0, 5)])
  np.testing.assert_array_equal(got, want)
  assert test[0]["label"] == 1 and test[0]["path"] == "dog/test.mp4"
