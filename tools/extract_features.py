"""Pre-logits features of every video of a folder, over sliding windows.

  python -m tools.extract_features --run=DIR --videos=FOLDER_OR_FILE --out=DIR
      [--window=0] [--stride=0] [--step=N] [--batch_size=8]

For temporal action localisation the features of a classifier are read over
sliding windows of each untrimmed video, as the ActivityNet / THUMOS
pipelines do with I3D or TSN features (e.g. Lin et al. 2019, "BMN", Sec. 4.1:
"features ... extracted by a sliding window ... with a stride of 16 frames").
What a window is, here:

* frames: the video is decoded as the run's dataset stores frames
  (vidjax/data/decode.py: short side resized, `config.dataset.fps`
  subsampling when set) and every window takes `--window` frames (default:
  the run's `num_frames`) at the run's `frame_stride`, so a window starting at
  stored frame s covers frames s, s + frame_stride, ...; it spans
  `span = (window - 1) * frame_stride + 1` frames. Windows start every
  `--stride` frames (default: half the span), at 0, stride, 2 stride, ...
  while the whole span fits; a video shorter than one span gives one window
  whose last frames repeat the last frame (`padded`: true).
* pixels: the run's test view (`test_resize_short`, the centre
  `test_crop_size` crop), normalised with the run's mean/std.
* the feature: the input of the model's classifier layer (a Dense named
  `head` or `*_head`, or the 1x1 convolution `logits` of the fully
  convolutional Inception / I3D): the pooled representation, found with
  `flax.linen.intercept_methods` without touching the model files. A head
  applied per frame, step or position (single-frame CNN, LRCN, I3D) gives one
  vector each, averaged (the head is linear, so these are the vectors whose
  logits the model averages); a two-stream net's two stream heads are
  concatenated (RGB, then flow). Then `head(feature) == logits` for one-head
  models.

Output per video `OUT/<name>.npy` (float32, [windows, D]) and beside it
`OUT/<name>.json`: the run, window, frame_stride, span, stride, `fps` (the
stored frame rate: the container's, or `config.dataset.fps` when the run
subsamples), `container_fps`, the decoded frame count and, per feature, the
frame indices it read, its first / last frame, its centre (s + span / 2, a
continuous frame coordinate) and the times in seconds: start s / fps, end
(last frame + 1) / fps, centre (s + span / 2) / fps (frame k covers
[k / fps, (k + 1) / fps): vidjax/tasks/localization/timing.py, the one
definition). Indices count the stored frames:
with no fps subsampling they are the container's frame numbers. `<name>` is
the path under FOLDER with "/" -> "__". A file that cannot be decoded (or is
no video) is named on stderr and skipped; `OUT/skipped.json` lists them.
"""
import json
import os
import sys
from typing import Optional

import numpy as np
from absl import app, flags, logging

from vidjax import cli  # noqa: F401  (puts the project root on sys.path)
from vidjax.errors import VidjaxError

if __name__ == "__main__":
  _RUN = flags.DEFINE_string("run", None, "Training run (or converted model, "
                             "or one checkpoint step folder).")
  _VIDEOS = flags.DEFINE_string("videos", None, "Folder of videos (searched "
                                "recursively) or one video file.")
  _OUT = flags.DEFINE_string("out", None, "Output folder.")
  _WINDOW = flags.DEFINE_integer("window", 0, "Frames per window (0: the "
                                 "run's num_frames).")
  _STRIDE = flags.DEFINE_integer("stride", 0, "Stored frames between window "
                                 "starts (0: half the window's span).")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the "
                               "latest).")
  _BATCH = flags.DEFINE_integer("batch_size", 8, "Windows per forward pass.")


def pre_logits(model, variables, x):
  """(features [B, D], logits [B, K]) of the normalised clips `x`."""
  import flax.linen as nn  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  captured = []

  def interceptor(next_fun, args, kwargs, context):
    m = context.module
    if context.method_name == "__call__" and (
        isinstance(m, nn.Dense) and str(m.name).endswith("head") or
        isinstance(m, nn.Conv) and m.name == "logits"):
      captured.append(args[0])
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    logits = model.apply(variables, x, train=False)
  if not captured:
    raise VidjaxError(f"model {type(model).__name__} has no classifier layer "
                      "('head', '*_head' or 'logits'): no pre-logits "
                      "features to extract")
  b = x.shape[0]
  feats = [f.reshape(b, -1, f.shape[-1]).astype(jnp.float32).mean(1)
           for f in captured]
  return jnp.concatenate(feats, -1), logits


def window_starts(num_frames: int, span: int, stride: int) -> np.ndarray:
  """Starts of the windows whose whole span fits (one at 0 if none does)."""
  return np.arange(0, max(num_frames - span, 0) + 1, stride)


def window_frames(num_frames: int, start: int, window: int,
                  frame_stride: int) -> np.ndarray:
  """Stored frames a window reads (clamped to the last frame)."""
  idx = start + frame_stride * np.arange(window)
  return np.minimum(idx, num_frames - 1)


class Extractor:
  """The run's model, jitted to (features, logits) for fixed-size batches."""

  def __init__(self, run, window: int = 0, stride: int = 0,
               batch_size: int = 8):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    from vidjax import steps  # noqa: PLC0415
    from vidjax.data.pipeline import ClipSpec  # noqa: PLC0415
    if window < 0 or stride < 0 or batch_size < 1:
      raise VidjaxError("--window and --stride must be >= 0 (0: the default) "
                        f"and --batch_size >= 1 (got {window}, {stride}, "
                        f"{batch_size})")
    d = run.config.dataset
    self.run, self.spec = run, ClipSpec.from_config(d)
    self.window = int(window) or self.spec.num_frames
    self.frame_stride = self.spec.frame_stride
    self.span = (self.window - 1) * self.frame_stride + 1
    self.stride = int(stride) or max(self.span // 2, 1)
    self.batch = int(batch_size)
    crop = self.spec.test_crop
    self.shape = (self.window, crop, crop, len(self.spec.aug.mean))
    mean, std = tuple(d.mean), tuple(d.std)
    fn = lambda v, x: pre_logits(run.model, v, steps.normalize(x, mean, std))
    try:  # shapes only: a window the model cannot take fails here, at once
      out = jax.eval_shape(fn, run.variables,
                           jax.ShapeDtypeStruct((1,) + self.shape, jnp.uint8))
    except VidjaxError:
      raise
    except Exception as e:  # noqa: BLE001  (the model's own shape checks)
      raise VidjaxError(
          f"--window={self.window}: model {run.config.model.name} cannot take "
          f"{self.window}-frame clips (trained on {self.spec.num_frames}): "
          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
      ) from None
    self.dim = int(out[0].shape[-1])
    self._fn = jax.jit(fn)

  def clips(self, video, starts) -> np.ndarray:
    """uint8 [len(starts), window, crop, crop, C]: the test view of each."""
    from vidjax.data import augment, pipeline  # noqa: PLC0415
    height, width = int(video.shape[1]), int(video.shape[2])
    short, crop = self.spec.aug.test_resize_short, self.spec.test_crop
    rh, rw = augment.resized_dims(height, width, short)
    augment.check_crop(rh, rw, crop, "test_resize_short" if short else "",
                       "test_crop_size" if self.spec.test_crop_size else
                       "crop_size")
    origin = pipeline.crop_origins(rh, rw, crop, 1)[0]
    sampling = augment.test_sampling(height, width, short, origin, crop)
    box = sampling.window(height, width)
    out = [sampling.apply(pipeline.read_frames(video, window_frames(
        len(video), s, self.window, self.frame_stride), box), box)
           for s in starts]
    return np.stack(out)

  def features(self, video, starts) -> tuple:
    """(features [n, D], logits [n, K]) of the windows at `starts`."""
    feats, logits = [], []
    for i in range(0, len(starts), self.batch):
      clips = self.clips(video, starts[i:i + self.batch])
      n = len(clips)
      if n < self.batch:  # one compiled shape: pad with zero clips
        clips = np.concatenate([clips, np.zeros(
            (self.batch - n,) + clips.shape[1:], clips.dtype)])
      f, lg = self._fn(self.run.variables, clips)
      feats.append(np.asarray(f)[:n])
      logits.append(np.asarray(lg, np.float32)[:n])
    return np.concatenate(feats), np.concatenate(logits)

  def record(self, num_frames: int, fps: float, starts) -> list:
    """The JSON rows of the windows at `starts` (frame indices, times).

    Times follow the one definition of vidjax/tasks/localization/timing.py:
    stored frame k covers [k / fps, (k + 1) / fps), so a window of `span`
    frames starting at s covers [s / fps, (s + span) / fps) and its centre
    is (s + span / 2) / fps (the half-window offset)."""
    from vidjax.tasks.localization.timing import FeatureTiming  # noqa: PLC0415
    rows = []
    for j, s in enumerate(starts):
      idx = window_frames(num_frames, int(s), self.window, self.frame_stride)
      end = int(s) + self.span - 1
      one = FeatureTiming(fps=fps if fps > 0 else 1.0, span=self.span,
                          offset=int(s))
      t = (lambda f: round(float(f) / fps, 6)) if fps > 0 else (
          lambda f: None)
      rows.append({"index": j, "frames": [int(i) for i in idx],
                   "start_frame": int(s), "end_frame": end,
                   "centre_frame": float(one.centre_frame(0)),
                   "start_time": t(int(s)), "end_time": t(end + 1),
                   "centre_time": t(one.centre_frame(0)),
                   "padded": bool(end >= num_frames)})
    return rows


def container_fps(path: str) -> Optional[float]:
  """The container's average video frame rate (None if it does not say)."""
  import av  # noqa: PLC0415
  try:
    with av.open(path) as container:
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.guessed_rate
      return float(rate) if rate else None
  except Exception:  # noqa: BLE001  (decode_file names the problem)
    return None


def decode_file(path: str, dataset_config):
  """(video as the run's dataset stores it, stored fps); raises BadVideo.
  The one decoder of tools.predict and this tool: vidjax/inference.py."""
  from vidjax import inference  # noqa: PLC0415
  return inference.decode_file(path, dataset_config)


def list_videos(videos: str) -> list:
  if os.path.isfile(videos):
    return [videos]
  if not os.path.isdir(videos):
    raise VidjaxError(f"--videos={videos} is neither a folder nor a file")
  found = sorted(os.path.join(root, f) for root, dirs, files in
                 os.walk(videos) for f in files if not f.startswith("."))
  if not found:
    raise VidjaxError(f"--videos={videos} holds no files")
  return found


def extract(run_dir: str, videos: str, out: str, window: int = 0,
            stride: int = 0, step: Optional[int] = None, batch_size: int = 8,
            log=print) -> dict:
  """Writes the features of every video; {'written': [...], 'skipped':
  [{'video', 'reason'}]}."""
  from vidjax.data import decode  # noqa: PLC0415
  from vidjax.viz.run import load_run  # noqa: PLC0415
  paths = list_videos(videos)
  run = load_run(run_dir, step, unscan=False, flag="--run")
  ex = Extractor(run, window, stride, batch_size)
  os.makedirs(out, exist_ok=True)
  base = videos if os.path.isdir(videos) else os.path.dirname(videos)
  written, skipped = [], []
  for path in paths:
    rel = os.path.relpath(path, base) if base else os.path.basename(path)
    name = os.path.splitext(rel)[0].replace(os.sep, "__")
    try:
      video, fps = decode_file(path, run.config.dataset)
      starts = window_starts(len(video), ex.span, ex.stride)
      feats, _ = ex.features(video, starts)
    except (decode.BadVideo, VidjaxError) as e:
      reason = str(e).splitlines()[0] if str(e) else type(e).__name__
      print(f"skipped {path}: {reason}", file=sys.stderr)
      skipped.append({"video": rel, "reason": reason})
      continue
    np.save(os.path.join(out, name + ".npy"), feats.astype(np.float32))
    meta = {"video": rel, "run": run.step_dir,
            "model": run.config.model.name,
            "feature": "input of the classifier layer (mean over frames / "
                       "positions where it is applied per frame / position)",
            "feature_dim": ex.dim, "window": ex.window,
            "frame_stride": ex.frame_stride, "span": ex.span,
            "stride": ex.stride, "fps": fps,
            "container_fps": container_fps(path),
            "run_fps": float(run.config.dataset.get("fps", 0.0)),
            "num_frames": len(video), "crop": ex.shape[1],
            "features": ex.record(len(video), fps, starts)}
    with open(os.path.join(out, name + ".json"), "w") as f:
      json.dump(meta, f, indent=1)
    written.append(name)
    log(f"{rel}: {len(starts)} windows x {ex.dim} -> {name}.npy")
  with open(os.path.join(out, "skipped.json"), "w") as f:
    json.dump(skipped, f, indent=1)
  log(f"done: {len(written)} videos, {len(skipped)} skipped; {out}")
  return {"written": written, "skipped": skipped}


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)  # orbax's notes on the meta item
  for name in ("run", "videos", "out"):
    if not flags.FLAGS[name].value:
      cli.fail(f"--{name} is required")
  try:
    extract(_RUN.value, _VIDEOS.value, _OUT.value, _WINDOW.value,
            _STRIDE.value, _STEP.value, _BATCH.value)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  app.run(main)
