"""Clip decoding and augmentation in worker processes (issue #16, part 1).

`iterate(loader, keys, processes, prefetch)` yields exactly
`loader.batch(key)` for each key (a TrainLoader step or an EvalLoader batch,
vidjax/data/pipeline.py), but the per-clip work (`loader.make`: read, decode,
augment) runs in `processes` worker processes, so decoding scales with cores
instead of sharing one GIL. Each JAX process runs its own pool over its own
slice of the global batch (the loader's `positions`): sharding by JAX process
is the loader's, unchanged.

Design (why not grain's `MapDataset` + `mp_prefetch`, which fits the same
index-addressed idea): grain is not in the project's stack or requirements,
and vidjax's batches are already pure functions of (seed, step); what is
missing is only "run `make` elsewhere". So:

* Workers are `python -m vidjax.data.clip_workers` subprocesses, as the build
  workers (`prepare.py`): a light module (numpy, cv2, the loader's modules),
  never JAX; no fork of a JAX process (its threads make fork unsafe) and no
  multiprocessing spawn, which would re-import the caller's `__main__`
  (vidjax.main: JAX, TensorFlow) in every worker. cv2 runs one thread each.
* Each worker unpickles the loader ONCE (a 2.0.0 video build pickles as its
  frame files' folder, `frame_store.py`; a TFDS data source as its build
  folder and split, reopened there), then takes tasks: (slot, key, groups of
  slots sharing a video). It writes the uint8 clips straight into a shared
  memory ring (`prefetch` batch buffers, multiprocessing.shared_memory) and
  answers with the labels only, so the parent never unpickles megabytes.
* Load balance: one feeder thread per worker sends it the next task from one
  queue as soon as it answers the last (work stealing); tasks of the next
  `prefetch` batches are queued, so workers run ahead of the train step.
* The parent copies a finished batch out of its buffer (the buffer is reused
  by the batch `prefetch` later) and runs `loader.assemble` (padding,
  mixup/cutmix): the same bytes as `loader.batch`.

Failure never hangs: a worker that dies (crash, SIGKILL, OOM killer) closes
its pipe, and the iterator raises a one-line VidjaxError within a second; an
exception in a clip (e.g. a corrupt JPEG) is sent back and raised the same
way. Shutdown: closing or finishing the iterator (or garbage collection, or
interpreter exit) closes the workers' stdin; they exit on EOF, and are killed
after 5 s. A killed parent also closes their stdin: no orphans.
"""
from __future__ import annotations

import collections
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
import weakref

import numpy as np

from vidjax.errors import VidjaxError

_HEADER = struct.Struct("<Q")
_TASKS_PER_WORKER = 4  # tasks a batch is cut into, per worker
_IN_FLIGHT = 2  # tasks sent to a worker ahead of its answers


def _send(stream, obj):
  data = pickle.dumps(obj, protocol=5)
  stream.write(_HEADER.pack(len(data)) + data)
  stream.flush()


def _recv(stream):
  """The next message, or None at end of stream."""
  head = stream.read(_HEADER.size)
  if len(head) < _HEADER.size:
    return None
  size, = _HEADER.unpack(head)
  data = stream.read(size)
  if len(data) < size:
    return None
  return pickle.loads(data)


def _reopen_tfds(data_dir: str, split: str):
  import tensorflow_datasets as tfds  # noqa: PLC0415
  return tfds.builder_from_directory(data_dir).as_data_source(split=split)


class _Pickler(pickle.Pickler):
  """Pickles a TFDS data source as (build folder, split): reopened there."""

  def reducer_override(self, obj):
    if (type(obj).__module__.startswith("tensorflow_datasets")
        and hasattr(obj, "dataset_info") and hasattr(obj, "split")):
      return _reopen_tfds, (str(obj.dataset_info.data_dir), str(obj.split))
    return NotImplemented


def dumps_loader(loader) -> bytes:
  import io  # noqa: PLC0415
  buf = io.BytesIO()
  try:
    _Pickler(buf, protocol=5).dump(loader)
  except Exception as e:  # noqa: BLE001
    raise VidjaxError(
        "config.dataset.worker_processes: this dataset cannot be sent to "
        f"worker processes ({type(e).__name__}: {e}); set it to 0") from None
  return buf.getvalue()


def resolve(processes: int) -> int:
  """-1: one per core this process may use; else `processes`."""
  if processes > 0:
    return processes
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


class _Pool:
  """Worker processes + a shared-memory ring of `slots` batch buffers."""

  def __init__(self, loader, processes: int, slots: int):
    from multiprocessing import shared_memory  # noqa: PLC0415
    self.shape = (len(loader.positions),) + tuple(loader.clip_shape)
    size = max(int(np.prod(self.shape)), 1)
    _check_room(size * slots, slots)
    self.shms = [shared_memory.SharedMemory(create=True, size=size)
                 for _ in range(slots)]
    self.buffers = [np.ndarray(self.shape, np.uint8, s.buf) for s in self.shms]
    payload = dumps_loader(loader)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1",
               JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    self.procs = [subprocess.Popen(
        [sys.executable, "-m", "vidjax.data.clip_workers"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        for _ in range(processes)]
    self.tasks, self.results = queue.Queue(), queue.Queue()
    self.closed = False
    init = (payload, [s.name for s in self.shms], self.shape)
    self.threads = [threading.Thread(target=self._feed, args=(p, init),
                                     daemon=True) for p in self.procs]
    for t in self.threads:
      t.start()
    self._finalizer = weakref.finalize(self, _shutdown, self.procs, self.shms,
                                       self.tasks, len(self.procs))

  def _feed(self, proc, init):
    """One per worker: tasks -> worker -> answers, until a None task or EOF.
    `_IN_FLIGHT` tasks are sent ahead, so the worker never waits for the
    round trip (answers come back in the order sent)."""
    sent = collections.deque()
    try:
      _send(proc.stdin, init)
      while True:
        while len(sent) < _IN_FLIGHT:
          try:
            task = self.tasks.get() if not sent else self.tasks.get_nowait()
          except queue.Empty:
            break
          if task is None:
            return
          _send(proc.stdin, task[1:])
          sent.append(task[0])
        answer = _recv(proc.stdout)
        if answer is None:
          break
        self.results.put((sent.popleft(), answer))
    except (BrokenPipeError, OSError, ValueError):
      pass
    if not self.closed:
      try:
        code = proc.wait(timeout=2)
      except subprocess.TimeoutExpired:
        code = None
      self.results.put((None, ("died", proc.pid, code)))

  def close(self):
    self.closed = True
    self.buffers = []  # the views, so that the segments can close
    self._finalizer()


def _shutdown(procs, shms, tasks, n):
  while True:  # drop queued work, then one stop per feeder thread
    try:
      tasks.get_nowait()
    except queue.Empty:
      break
  for _ in range(n):
    tasks.put(None)
  for p in procs:
    try:
      p.stdin.close()
    except OSError:
      pass
  deadline = time.monotonic() + 5
  for p in procs:
    try:
      p.wait(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()
  for p in procs:
    if p.stdout:
      p.stdout.close()
  for s in shms:  # unlink first: close fails while a view is alive
    try:
      s.unlink()
    except FileNotFoundError:
      pass
    try:
      s.close()
    except BufferError:
      pass


def _check_room(need: int, slots: int, folder: str = "/dev/shm"):
  """A ring larger than the free shared memory would kill the workers with
  SIGBUS at their first write (Docker's default /dev/shm is 64 MB): one line
  now instead."""
  try:
    st = os.statvfs(folder)
  except OSError:
    return  # not Linux-style shared memory: nothing to check
  free = st.f_bavail * st.f_frsize
  if need > free:
    raise VidjaxError(
        f"config.dataset.worker_processes: {slots} batch buffers "
        f"(config.dataset.prefetch) need {need / 2**20:.0f} MiB of shared "
        f"memory, {folder} has {free / 2**20:.0f} MiB free; lower the "
        "prefetch or the per-host batch, enlarge /dev/shm (docker "
        "--shm-size) or set worker_processes=0")


def _died_line(pid: int, code) -> str:
  how = (f"killed by signal {-code}" if code is not None and code < 0 else
         f"exit status {code}" if code is not None else "no exit status")
  return (f"data worker process {pid} died ({how}) while making clips "
          "(config.dataset.worker_processes; out of memory? its stderr is "
          "above)")


def iterate(loader, keys, processes: int, prefetch: int):
  """`loader.batch(key)` for each key, made by worker processes."""
  keys = list(keys)
  if not keys:
    return
  processes, slots = resolve(processes), max(int(prefetch), 1)
  pool = _Pool(loader, processes, slots)
  try:
    yield from _run(pool, loader, keys, processes, slots)
  finally:
    pool.close()


def _run(pool, loader, keys, processes, slots):
  labels, left, sounds = {}, {}, {}  # sounds: audio windows (issue #22)

  def submit(i):
    groups = loader.plan(keys[i])
    labels[i], left[i] = [0] * pool.shape[0], 0
    covered = {s for _, group_slots in groups for s in group_slots}
    for s in range(pool.shape[0]):  # padding (eval): zeros, as batch()
      if s not in covered:
        pool.buffers[i % slots][s] = 0
    per = max(1, -(-len(groups) // (processes * _TASKS_PER_WORKER)))
    for c in range(0, len(groups), per):
      left[i] += 1
      pool.tasks.put((i, i % slots, keys[i], groups[c:c + per]))

  for i in range(min(slots, len(keys))):
    submit(i)
  for i in range(len(keys)):
    while left[i]:
      try:
        j, answer = pool.results.get(timeout=0.5)
      except queue.Empty:
        dead = [p for p in pool.procs if p.poll() is not None]
        if dead:
          raise VidjaxError(_died_line(dead[0].pid, dead[0].returncode)) \
              from None
        continue
      if answer[0] == "died":
        raise VidjaxError(_died_line(answer[1], answer[2]))
      if answer[0] == "error":
        raise VidjaxError(f"data worker: {answer[1]}")
      for slots_, label in answer[1]:
        for s in slots_:
          labels[j][s] = label
      if len(answer) > 2:
        sounds.setdefault(j, {}).update(answer[2])
      left[j] -= 1
    videos = pool.buffers[i % slots].copy()
    batch = loader.assemble(keys[i], videos, labels.pop(i))
    if loader.spec.audio is not None:
      from vidjax.data import pipeline  # noqa: PLC0415
      waves = sounds.pop(i, {})
      batch = pipeline.with_audio(loader.spec, batch, [
          waves.get(s) for s in range(pool.shape[0])])
    del left[i]
    if i + slots < len(keys):
      submit(i + slots)
    yield batch


# ------------------------------------------------------------ worker process
def _attach(name: str):
  from multiprocessing import resource_tracker, shared_memory  # noqa: PLC0415
  # The parent owns (and unlinks) the segment: this process must not start
  # a resource tracker that would unlink it when this worker exits.
  resource_tracker.register = lambda *a, **k: None
  return shared_memory.SharedMemory(name=name)


def _copy(dst: np.ndarray, clip: np.ndarray):
  """dst[...] = clip; a width-mirrored view (augment.hflip) is copied frame
  by frame with cv2.flip, ~30x faster than numpy's negative-stride copy at
  16x224x224x3, with the same bytes."""
  import cv2  # noqa: PLC0415
  base = clip[:, :, ::-1] if clip.ndim == 4 else None
  if (base is not None and clip.strides[2] < 0 and clip.shape[-1] <= 4
      and base.flags.c_contiguous):
    for t in range(len(clip)):
      cv2.flip(base[t], 1, dst=dst[t])
  else:
    dst[...] = clip


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split()) or type(e).__name__
  return f"{type(e).__name__}: {text}"[:300]


def _worker_main():
  import cv2  # noqa: PLC0415
  cv2.setNumThreads(1)
  from vidjax import host_memory  # noqa: PLC0415
  host_memory.retain_freed_memory()  # reused clip buffers: no page faults
  inp = sys.stdin.buffer
  out = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)  # what a library prints goes to stderr, not the channel
  init = _recv(inp)
  if init is None:
    return
  payload, names, shape = init
  shms = [_attach(n) for n in names]
  buffers = [np.ndarray(shape, np.uint8, s.buf) for s in shms]
  try:
    loader = pickle.loads(payload)
  except Exception as e:  # noqa: BLE001
    loader, failure = None, f"cannot open the dataset: {_one_line(e)}"
  while True:
    task = _recv(inp)
    if task is None:
      break
    if loader is None:
      _send(out, ("error", failure))
      continue
    slot, key, groups = task
    try:
      done, sounds = [], {}
      for (_, slots), (clips, label) in zip(groups, loader.make(key, groups)):
        for s, clip in zip(slots, clips):
          if isinstance(clip, tuple):  # (frames, audio window): audio on
            clip, sounds[s] = clip
          if clip.shape != shape[1:] or clip.dtype != np.uint8:
            raise ValueError(f"a clip is {clip.dtype} {clip.shape}, not uint8 "
                             f"{shape[1:]}")
          _copy(buffers[slot][s], clip)
        done.append((slots, label))
      _send(out, ("ok", done, sounds) if sounds else ("ok", done))
    except Exception as e:  # noqa: BLE001 - reported to the parent
      _send(out, ("error", f"{key}: {_one_line(e)}"))
  del buffers
  for s in shms:
    s.close()


if __name__ == "__main__":
  _worker_main()
