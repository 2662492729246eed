"""Worker-process clip pipeline (vidjax/data/clip_workers.py, issue #16):
byte-identical to the in-process batches (train incl. mixing, repeated
sampling and resume; eval views with padding), a killed worker or a corrupt
frame is one VidjaxError within seconds, and no worker outlives its iterator.
"""
import os
import signal
import time

import cv2
import numpy as np
import pytest

from configs import default
from vidjax.data import frame_store
from vidjax.data.pipeline import ClipSpec, EvalLoader, TrainLoader
from vidjax.data.video_folder import StoredSource
from vidjax.errors import VidjaxError


def make_store(folder, n=6, frames=12, hw=(40, 52), corrupt=None):
  """A split of n coded videos as JPEG frame files; a StoredSource of it.
  `corrupt` = (video, frame): that frame's bytes are not a JPEG."""
  rng = np.random.default_rng(0)
  writer = frame_store.FrameWriter(str(folder), "train")
  rows = []
  for i in range(n):
    jpegs = []
    for t in range(frames):
      img = rng.integers(0, 256, hw + (3,), dtype=np.uint8)
      img[:4, :4] = (i * 20, t * 8, 0)
      jpegs.append(cv2.imencode(".jpg", img)[1].tobytes())
    if corrupt is not None and corrupt[0] == i:
      jpegs[corrupt[1]] = b"not a jpeg" * 50
    writer.add(jpegs, *hw)
    rows.append((f"c{i % 3}/v{i}.mp4", i % 3, frames))
  writer.close()
  store = frame_store.FrameStore(str(folder), "train")
  source = StoredSource(store, np.arange(n), rows)
  source.num_classes = 3
  return source


def spec(procs=2, **fields):
  d = default.get_config().dataset
  d.num_frames, d.frame_stride, d.crop_size, d.flip = 4, 2, 24, True
  d.worker_processes = procs
  for k, v in fields.items():
    d[k] = v
  return ClipSpec.from_config(d, num_classes=3)


def worker_pids():
  """Live clip-worker children of this process (from /proc)."""
  pids = []
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        cmd = f.read()
    except (OSError, IndexError, ValueError):
      continue
    if ppid == os.getpid() and b"vidjax.data.clip_workers" in cmd:
      with open(f"/proc/{entry}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
          pids.append(int(entry))
  return pids


def assert_no_workers(timeout=10):
  deadline = time.monotonic() + timeout
  while worker_pids() and time.monotonic() < deadline:
    time.sleep(0.1)
  assert worker_pids() == []


CASES = {
    "plain": {},
    "mixing": dict(mixup_alpha=0.8, cutmix_alpha=1.0, color_jitter=0.8),
    "repeated": dict(repeated_aug=2, train_resize_short=30,
                     train_resize_short_max=40),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_batches_are_the_in_process_bytes_across_a_resume(tmp_path,
                                                                case):
  source = make_store(tmp_path, n=7)
  loader = TrainLoader(source, spec(**CASES[case]), seed=5, global_batch=6)
  threads = TrainLoader(source, spec(0, **CASES[case]), seed=5,
                        global_batch=6)
  for start in (0, 3):  # a run, and one resumed at step 3 (epoch 2 included)
    got = list(loader.iterate(start, 6, num_workers=2, prefetch=2))
    assert len(got) == 6 - start
    for step, batch in zip(range(start, 6), got):
      want = threads.batch(step)
      assert batch["video"].dtype == np.uint8
      np.testing.assert_array_equal(batch["video"], want["video"])
      np.testing.assert_array_equal(batch["label"], want["label"])
  if case == "mixing":  # soft labels: every step, the data's 3 classes
    assert got[0]["label"].shape == (6, 3)
  assert_no_workers()


def test_eval_views_are_the_in_process_bytes_with_padding(tmp_path):
  source = make_store(tmp_path, n=5)
  s = spec(test_resize_short=32)
  loader = EvalLoader(source, s, num_clips=2, num_crops=3, global_batch=12,
                      process_index=1, process_count=2)
  ref = EvalLoader(source, s._replace(worker_processes=0), 2, 3, 12, 1, 2)
  got = list(loader.iterate(num_workers=1, prefetch=2))
  # 30 views: host 1 holds views 6-11, 18-23 and 30-35 (padding only).
  assert len(got) == ref.num_batches == 3
  for b, batch in enumerate(got):
    want = ref.batch(b)
    for key in ("video", "label", "mask"):
      np.testing.assert_array_equal(batch[key], want[key])
  assert got[-1]["mask"].sum() == 0 and not got[-1]["video"].any()
  assert_no_workers()


def test_repeated_copies_decode_each_frame_once(tmp_path):
  source = make_store(tmp_path, n=4, frames=30)
  loader = TrainLoader(source, spec(0, repeated_aug=4), seed=1,
                       global_batch=8)
  reads = []
  original = frame_store.FrameStore.read
  frame_store.FrameStore.read = lambda self, k: (reads.append(k),
                                                 original(self, k))[1]
  try:
    loader.batch(0)
  finally:
    frame_store.FrameStore.read = original
  # 2 videos x 4 copies of 4 frames, each frame read (and decoded) once.
  assert len(reads) == len(set(reads)) and 4 < len(reads) <= 2 * 4 * 4


def test_a_killed_worker_is_one_error_within_seconds(tmp_path):
  source = make_store(tmp_path, n=8)
  loader = TrainLoader(source, spec(2), seed=0, global_batch=4)
  batches = loader.iterate(0, 10_000, prefetch=2)
  next(batches)
  pids = worker_pids()
  assert len(pids) == 2
  os.kill(pids[0], signal.SIGKILL)
  t0 = time.monotonic()
  with pytest.raises(VidjaxError, match=rf"data worker process {pids[0]} "
                     r"died \(killed by signal 9\)") as err:
    for _ in batches:
      pass
  assert time.monotonic() - t0 < 15  # 0.5-s polls; slack for a loaded CI
  assert "\n" not in str(err.value)
  assert_no_workers()


def test_a_corrupt_frame_is_one_error_naming_it(tmp_path):
  source = make_store(tmp_path, n=3, frames=8, corrupt=(1, 2))
  s = spec(1)._replace(frame_stride=1, num_frames=8)  # every frame is read
  loader = TrainLoader(source, s, seed=0, global_batch=3)
  with pytest.raises(VidjaxError, match=r"data worker: 0: ValueError: frame 2 "
                     r"is not a 40x52 JPEG"):
    list(loader.iterate(0, 2, prefetch=1))
  assert_no_workers()


def test_no_worker_outlives_its_iterator(tmp_path):
  source = make_store(tmp_path, n=6)
  loader = TrainLoader(source, spec(2), seed=0, global_batch=4)
  batches = loader.iterate(0, 100, prefetch=3)
  next(batches)
  assert len(worker_pids()) == 2
  batches.close()  # a run that stops early (preemption) or breaks out
  assert_no_workers()
  assert len(list(loader.iterate(0, 3))) == 3  # a run that ends
  assert_no_workers()


def test_bad_worker_count_is_a_config_error():
  with pytest.raises(VidjaxError, match=r"config.dataset.worker_processes "
                     r"must be -1"):
    spec(-2)


def test_too_little_shared_memory_is_one_config_line(tmp_path, monkeypatch):
  from vidjax.data import clip_workers
  source = make_store(tmp_path, n=4)
  loader = TrainLoader(source, spec(1), seed=0, global_batch=4)
  real = os.statvfs("/dev/shm")
  free = 3 * 4 * 4 * 24 * 24 * 3  # room for 3 of the 4 batch buffers
  monkeypatch.setattr(clip_workers.os, "statvfs", lambda path: os.statvfs_result(
      (real.f_bsize, 1, 1000, free, free) + tuple(real)[5:]))
  with pytest.raises(VidjaxError, match=r"4 batch buffers \(config.dataset."
                     r"prefetch\) need 0 MiB of shared memory"):
    next(loader.iterate(0, 2, prefetch=4))
  assert_no_workers()


def test_the_shared_memory_is_released_with_the_iterator(tmp_path,
                                                         monkeypatch):
  # this process's segments only: other xdist workers make their own
  from multiprocessing import shared_memory
  made, real = [], shared_memory.SharedMemory

  def recording(*args, **kwargs):
    shm = real(*args, **kwargs)
    if kwargs.get("create"):
      made.append(shm.name.lstrip("/"))
    return shm
  monkeypatch.setattr(shared_memory, "SharedMemory", recording)
  source = make_store(tmp_path, n=4)
  loader = TrainLoader(source, spec(1), seed=0, global_batch=4)
  batches = loader.iterate(0, 50, prefetch=3)
  next(batches)
  assert len(made) == 3                                   # the ring
  assert set(made) <= set(os.listdir("/dev/shm"))
  batches.close()
  assert set(made) & set(os.listdir("/dev/shm")) == set()
