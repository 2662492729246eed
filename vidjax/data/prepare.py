"""Parallel, resumable decoding of a build's videos, in worker processes.

A real-video build (`video_folder.py`) decodes every video of its Listing
once. That work runs here in `workers` processes (default: one per available
core), each `python -m vidjax.data.prepare`: a light module that imports
PyAV, OpenCV and numpy, never TensorFlow/TFDS, and decodes with one FFmpeg
and one OpenCV thread, so N processes on N cores scale. They are plain
subprocesses, not a multiprocessing pool: a spawn/forkserver worker re-imports
the caller's `__main__` (vidjax.main: JAX and TensorFlow) and one worker that
dies on a file (an FFmpeg crash) breaks the whole pool; here it costs one
named skip (after one retry). In the parent, one thread per worker feeds it
tasks and reads back one JSON line per video.

Staging (resume): a worker writes each video's result, the JPEGs or the reason
it is skipped, to `<staging>/<sha1 of its path>.pkl` atomically (tmp +
os.replace) before reporting it. A restarted build (Ctrl-C, kill -9, a
preempted machine) finds those files and decodes only the videos without one;
skips are staged too, so a bad file is not retried. The TFDS assembly reads
the staged parts in listing order while the workers decode ahead; the caller
deletes the staging folder once the build is complete (`Stager.discard`). One
build at a time per dataset: `build_lock` (flock; the kernel releases it when
its process dies, even on kill -9).

Progress: a tqdm bar, and once, after `estimate_after` seconds, a line
estimating the final size on disk and the time left, both scaled by the
source bytes done so far (the sizes the build's fingerprint read).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time

# Tests and debugging: each worker appends the path of every video it decodes.
DECODE_LOG_ENV = "VIDJAX_DECODE_LOG"
_RETRIES = 2  # attempts per video when its worker process dies


def default_workers() -> int:
  """One worker per core this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def staged_path(staging: str, rel: str) -> str:
  return os.path.join(staging,
                      hashlib.sha1(rel.encode()).hexdigest()[:24] + ".pkl")


def stage(path: str, result: dict):
  """Writes a staged result atomically (tmp + os.replace): a reader sees the
  whole file or none."""
  tmp = f"{path}.tmp{os.getpid()}_{threading.get_ident()}"
  with open(tmp, "wb") as f:
    pickle.dump(result, f, protocol=5)
  os.replace(tmp, path)


def duration(result: dict) -> float:
  """Seconds of video a decoded result holds (0 if its rate is unknown)."""
  fps = float(result.get("fps") or 0.0)
  return len(result["frames"]) / fps if fps > 0 else 0.0


def human_bytes(n: float) -> str:
  for unit in ("B", "KB", "MB", "GB", "TB"):
    if abs(n) < 1000 or unit == "TB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1000


def human_time(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  return (f"{h} h {rest // 60:02d} min" if h else
          f"{rest // 60} min {rest % 60:02d} s" if rest >= 60 else
          f"{rest} s")


# ----------------------------------------------------------- worker process
def stage_video(task: dict) -> dict:
  """Decodes task["path"] and stages the result at task["out"]."""
  from vidjax.data import decode  # noqa: PLC0415
  try:
    result = decode.decode_to_jpegs(task["path"], task["resize_short"],
                                    task["fps"], task["jpeg_quality"],
                                    threads=1)
    if task.get("audio_rate"):  # config.dataset.audio.enabled
      result.update(_stage_audio(task["path"], int(task["audio_rate"])))
  except decode.BadVideo as e:
    result = {"skip": str(e)}
  except Exception as e:  # noqa: BLE001 - one bad file never stops a build
    result = {"skip": f"unexpected error: {type(e).__name__}: "
                      f"{decode._one_line(e, task['path'])}"}
  stage(task["out"], result)
  log = os.environ.get(DECODE_LOG_ENV)
  if log:
    with open(log, "a") as f:
      f.write(task["rel"] + "\n")
  if "skip" in result:
    return {"skip": result["skip"]}
  return {"bytes": sum(map(len, result["frames"])) + (
      result["audio"].nbytes if "audio" in result else 0)}


def _stage_audio(path: str, rate: int) -> dict:
  """The track as int16 at `rate` + its start time, or why there is none."""
  from vidjax.audio import decode as audio  # noqa: PLC0415
  try:
    wave, t0 = audio.decode_audio(path, rate)
  except audio.NoAudio as e:
    return {"no_audio": str(e)}
  return {"audio": audio.to_int16(wave), "audio_t0": t0}


def _worker_main():
  import cv2  # noqa: PLC0415
  cv2.setNumThreads(1)
  channel = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)  # anything a library prints goes to stderr, not the channel
  try:
    for line in sys.stdin:
      channel.write(json.dumps(stage_video(json.loads(line))) + "\n")
      channel.flush()
  except (BrokenPipeError, KeyboardInterrupt):
    pass  # the parent is gone or stopping: this video is staged or not


# ------------------------------------------------------------- parent side
class WorkerPool:
  """`n` worker processes; `submit(task)` -> a Future of its summary."""

  def __init__(self, n: int):
    self._threads = concurrent.futures.ThreadPoolExecutor(
        n, thread_name_prefix="vidjax-decode")
    self._local, self._lock = threading.local(), threading.Lock()
    self._procs, self.closing = [], False
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    self._env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH", "")] if p]))

  def _proc(self) -> subprocess.Popen:
    proc = getattr(self._local, "proc", None)
    if proc is None or proc.poll() is not None:
      proc = subprocess.Popen(
          [sys.executable, "-m", "vidjax.data.prepare"], env=self._env,
          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
      self._local.proc = proc
      with self._lock:
        self._procs.append(proc)
    return proc

  def _run(self, task: dict) -> dict:
    for _ in range(_RETRIES):
      if self.closing:
        raise RuntimeError("the build is stopping")
      proc = self._proc()
      try:
        proc.stdin.write((json.dumps(task) + "\n").encode())
        proc.stdin.flush()
        line = proc.stdout.readline()
      except OSError:
        line = b""
      if line:
        return json.loads(line)
      code = proc.wait()
      self._local.proc = None
    if self.closing:
      raise RuntimeError("the build is stopping")
    why = (f"signal {-code}" if code < 0 else f"exit status {code}")
    result = {"skip": f"the decoder process died on it ({why}, "
                      f"{_RETRIES} attempts)"}
    stage(task["out"], result)
    return result

  def submit(self, task: dict) -> concurrent.futures.Future:
    return self._threads.submit(self._run, task)

  def close(self):
    self.closing = True
    with self._lock:
      procs = list(self._procs)
    for proc in procs:  # EOF: each worker exits after its current video
      with contextlib.suppress(OSError):
        proc.stdin.close()
    self._threads.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
      try:
        proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def build_lock(path: str, what: str):
  """Holds an exclusive flock on `path` (waits, saying so, if it is held)."""
  import fcntl  # noqa: PLC0415 - POSIX
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      print(f"waiting for another process building {what} (lock {path})",
            flush=True)
      fcntl.flock(f, fcntl.LOCK_EX)
    yield


class Stager:
  """Decodes `rels` (paths relative to `root`) into `staging`, `workers`
  processes ahead of the reader; `result(rel)` waits for one video.

  `sizes`: {rel: source bytes} for the estimate line. Counters after use:
  `decoded` (this run), `resumed` (staged before), `seconds`.
  """

  def __init__(self, root: str, rels, staging: str, settings: dict,
               workers: int, sizes: dict, estimate_after: float = 60.0,
               verbose: bool = True, desc: str = "decoding videos"):
    self.root, self.staging, self.settings = root, staging, settings
    self.rels = list(dict.fromkeys(rels))  # unique, in order
    self.workers, self.sizes = max(1, int(workers)), sizes
    self.estimate_after, self.verbose, self.desc = estimate_after, verbose, desc
    self.decoded = self.resumed = self.processes = 0
    self.seconds = 0.0
    self._cond = threading.Condition()
    self._done, self._failed, self._pool, self._bar = set(), {}, None, None

  def __enter__(self) -> "Stager":
    import tqdm  # noqa: PLC0415
    os.makedirs(self.staging, exist_ok=True)
    present = set(os.listdir(self.staging))
    for name in present:  # parts a killed worker was writing
      if ".tmp" in name:
        with contextlib.suppress(OSError):
          os.remove(os.path.join(self.staging, name))
    todo = []
    self._stored = self._src_done = 0  # bytes: staged output, its sources
    for rel in self.rels:
      name = os.path.basename(staged_path(self.staging, rel))
      if name in present:
        self._done.add(rel)
        self._stored += os.path.getsize(os.path.join(self.staging, name))
        self._src_done += self.sizes.get(rel, 0)
      else:
        todo.append(rel)
    self.resumed = len(self.rels) - len(todo)
    self.processes = min(self.workers, len(todo))
    self._src_now = 0
    self._estimated = False
    self._t0 = time.perf_counter()
    self._bar = tqdm.tqdm(total=len(self.rels), initial=self.resumed,
                          desc=self.desc, unit="video", smoothing=0.05,
                          disable=not self.verbose)
    if todo:
      self._todo = iter(todo)
      self._pool = WorkerPool(min(self.workers, len(todo)))
      for _ in range(2 * self.workers):
        self._submit_next()
    return self

  def _task(self, rel: str) -> dict:
    return dict(self.settings, rel=rel, path=os.path.join(self.root, rel),
                out=staged_path(self.staging, rel))

  def _submit_next(self):
    rel = next(self._todo, None)
    if rel is not None and not self._pool.closing:
      future = self._pool.submit(self._task(rel))
      future.add_done_callback(lambda f, rel=rel: self._finished(rel, f))

  def _finished(self, rel: str, future):
    if future.cancelled() or future.exception() is not None:
      with self._cond:
        if not future.cancelled() and not self._pool.closing:
          self._failed[rel] = future.exception()
        self._cond.notify_all()
      return
    summary = future.result()
    with self._cond:
      self._done.add(rel)
      self.decoded += 1
      self._stored += summary.get("bytes", 0)
      self._src_done += self.sizes.get(rel, 0)
      self._src_now += self.sizes.get(rel, 0)
      self._cond.notify_all()
      self._bar.update()
      self._maybe_estimate()
    self._submit_next()

  def _maybe_estimate(self):
    elapsed = time.perf_counter() - self._t0
    if self._estimated or elapsed < self.estimate_after or not self.verbose:
      return
    self._estimated = True
    total_src = sum(self.sizes.get(r, 0) for r in self.rels)
    done = len(self._done)
    if total_src and self._src_done and self._src_now:
      size = self._stored * total_src / self._src_done
      left = (total_src - self._src_done) * elapsed / self._src_now
    else:  # no sizes: by video count
      size = self._stored * len(self.rels) / max(done, 1)
      left = (len(self.rels) - done) * elapsed / max(self.decoded, 1)
    self._bar.write(
        f"estimate: ~{human_bytes(size)} on disk, ~{human_time(left)} left "
        f"({done} of {len(self.rels)} videos after {human_time(elapsed)}, "
        f"{self.processes} processes)", file=sys.stdout)

  def result(self, rel: str) -> dict:
    """The staged result of `rel` ({"frames", ...} or {"skip": reason})."""
    with self._cond:
      while rel not in self._done:
        if rel in self._failed:
          raise RuntimeError(f"decoding {rel} failed: {self._failed[rel]!r}")
        if self._pool is None:
          raise KeyError(rel)
        self._cond.wait(1.0)
    path = staged_path(self.staging, rel)
    try:
      with open(path, "rb") as f:
        return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError):
      # a staged part cut short by a machine crash: decode it again
      with contextlib.suppress(OSError):
        os.remove(path)
      pool = self._pool or WorkerPool(1)
      pool.submit(self._task(rel)).result()
      if pool is not self._pool:
        pool.close()
      with open(path, "rb") as f:
        return pickle.load(f)

  def __exit__(self, *exc):
    if self._pool is not None:
      self._pool.close()
    self.seconds = time.perf_counter() - self._t0
    if self._bar is not None:
      self._bar.close()
    return False

  def discard(self):
    """Deletes the staging folder (the build is complete)."""
    shutil.rmtree(self.staging, ignore_errors=True)


if __name__ == "__main__":
  _worker_main()
