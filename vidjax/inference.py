"""Inference with a trained or converted checkpoint: named predictions for
video files (tools/predict.py) and the views of any split (tools/evaluate.py).

* `Engine(run)`: the run's own evaluation step (`steps.make_eval_step`:
  normalisation with the config's mean/std, then the model at `train=False`)
  compiled ahead (`jit(...).lower(...).compile()`) for a fixed batch of
  views on a `data` mesh (vidjax/sharding.py), the parameters replicated.
  The logits of an `EvalLoader`'s views come from `evaluate.predict`, the
  code the training's evaluation runs, so a video scores as the run's own
  test protocol scores it.
* `decode_file(path, dataset_config)`: a video file as the dataset would have
  stored it: decoded with FFmpeg (PyAV, vidjax/data/decode.py), its short
  side resized to the stored one (`frame_sizes.stored_short_side`: the
  32-px synthetic frames, `config.dataset.resize_short`, or native),
  `config.dataset.fps` subsampling, JPEG frames at `jpeg_quality`; optical
  flow computed with the dataset's algorithm when the modality needs it.
* `predict_files(engine, paths)`: the test protocol (`num_test_clips` x
  `num_test_crops` views per video, vidjax/data/pipeline.py) on each file;
  a video's class probabilities are the softmax of its views' mean logits,
  the video-level score `eval/top1` measures (vidjax/evaluate.py). A file
  that cannot be decoded, or whose frames cannot give the crops, is
  reported (`Skipped`) and the others go on.
"""
import collections
import concurrent.futures
import dataclasses
import time
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from vidjax.errors import VidjaxError


@dataclasses.dataclass
class Prediction:
  path: str
  probs: np.ndarray  # [classes] video-level probabilities
  views: int
  frames: int        # frames decoded (after fps subsampling)
  fps: float
  height: int        # stored frame size
  width: int


@dataclasses.dataclass
class Skipped:
  path: str
  reason: str


def check_classifier(run, flag: str = "--run"):
  if run.config.get("task", "classification") != "classification":
    raise VidjaxError(f"{flag}: {run.step_dir} is a "
                      f"{run.config.task!r} checkpoint ({run.config.model.name}"
                      "), not a classifier: it has no class scores")


def inference_state(run):
  """A TrainState holding the run's variables (no optimizer), for the eval
  step (`steps.make_eval_step` reads params, batch_stats, rng, apply_fn)."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import optax  # noqa: PLC0415
  from vidjax.steps import TrainState  # noqa: PLC0415
  zero = jnp.zeros((), jnp.int32)
  return TrainState(step=zero, params=run.variables["params"],
                    batch_stats=run.variables.get("batch_stats", {}),
                    opt_state=(), rng=jax.random.PRNGKey(run.config.seed),
                    skipped_steps=zero, nonfinite_streak=zero,
                    apply_fn=run.model.apply, tx=optax.identity())


class Engine:
  """The run's eval step, compiled for `batch_size` views (rounded up to a
  multiple of the mesh's devices; padding views are masked out)."""

  def __init__(self, run, batch_size: int = 0, num_devices: int = 1,
               num_workers: int = 4):
    import jax  # noqa: PLC0415
    from vidjax import sharding, steps  # noqa: PLC0415
    from vidjax.data.pipeline import ClipSpec  # noqa: PLC0415
    self.run, self.config = run, run.config
    self.spec = ClipSpec.from_config(self.config.dataset)
    self.num_clips = int(self.config.num_test_clips)
    self.num_crops = int(self.config.num_test_crops)
    self.views = self.num_clips * self.num_crops
    self.mesh = sharding.make_mesh(num_devices)
    n = self.mesh.devices.size
    batch = int(batch_size) or self.views
    self.batch = -(-batch // n) * n
    self.num_workers = num_workers
    rep, split = sharding.replicated(self.mesh), sharding.batch_sharded(
        self.mesh)
    self.state = jax.device_put(inference_state(run), rep)
    # Compiled ahead for the fixed batch of views (timed apart from the run).
    t0 = time.perf_counter()
    shape = (self.batch,) + tuple(steps.eval_input_shape(self.config))
    self.eval_step = jax.jit(
        steps.make_eval_step(self.config), in_shardings=(rep, split),
        out_shardings=split).lower(self.state, {"video": jax.ShapeDtypeStruct(
            shape, np.uint8, sharding=split)}).compile()
    self.compile_seconds = time.perf_counter() - t0

  @property
  def videos_per_batch(self) -> int:
    return max(1, self.batch // self.views)

  def loader(self, source):
    from vidjax.data.pipeline import EvalLoader  # noqa: PLC0415
    return EvalLoader(source, self.spec, self.num_clips, self.num_crops,
                      self.batch)

  def logits(self, loader, prefetch: int = 2):
    """(logits, labels) of every view of `loader`, video-major."""
    from vidjax import evaluate  # noqa: PLC0415
    return evaluate.predict(self.state, self.eval_step, loader, self.mesh,
                            self.num_workers, prefetch)


def decode_file(path: str, dataset_config):
  """(video as the dataset stores it, stored fps); raises decode.BadVideo."""
  from vidjax.data import decode, frame_sizes, optical_flow  # noqa: PLC0415
  d = dataset_config
  try:
    decoded = decode.decode_to_jpegs(
        path, resize_short=frame_sizes.stored_short_side(d) or 0,
        fps=float(d.get("fps", 0.0)),
        jpeg_quality=int(d.get("jpeg_quality", 90)))
  except decode.BadVideo:
    raise
  except Exception as e:  # noqa: BLE001  (unreadable file, PyAV errors)
    raise decode.BadVideo(decode._one_line(e, path)) from None  # noqa: SLF001
  video = decode.LazyVideo(decoded["frames"], decoded["height"],
                           decoded["width"])
  mode = optical_flow.modality(d)
  if mode != "rgb":
    rgb = np.asarray(video)
    flow = optical_flow.quantize(
        optical_flow.video_flow(rgb, optical_flow.algorithm(d)),
        optical_flow.bound(d))
    video = flow if mode == "flow" else np.concatenate([rgb, flow], -1)
  return video, float(decoded["fps"])


def check_views(video, spec) -> None:
  """Raises VidjaxError when the test crops do not fit the video's frames."""
  from vidjax.data import augment  # noqa: PLC0415
  height, width = int(video.shape[1]), int(video.shape[2])
  short = spec.aug.test_resize_short
  rh, rw = augment.resized_dims(height, width, short)
  augment.check_crop(rh, rw, spec.test_crop,
                     "test_resize_short" if short else "",
                     "test_crop_size" if spec.test_crop_size else "crop_size")


def video_probs(logits: np.ndarray, views: int) -> np.ndarray:
  """[videos, classes]: softmax of each video's mean view logits."""
  from vidjax.evaluate import softmax  # noqa: PLC0415
  mean = logits.astype(np.float64).reshape(-1, views, logits.shape[-1]).mean(1)
  return softmax(mean)


def _decoded(paths: Sequence[str], dataset_config, spec, workers: int,
             ahead: int):
  """(path, video, fps) or Skipped per path, in order; decoding `workers`
  files at a time (FFmpeg and OpenCV release the GIL)."""
  from vidjax.data import decode  # noqa: PLC0415

  def one(path):
    try:
      video, fps = decode_file(path, dataset_config)
      check_views(video, spec)
      return path, video, fps
    except (decode.BadVideo, VidjaxError) as e:
      return Skipped(path, str(e))

  pending, paths = collections.deque(), iter(paths)
  with concurrent.futures.ThreadPoolExecutor(max(workers, 1)) as pool:
    while True:  # at most `ahead` decoded videos held at once
      while len(pending) < ahead:
        path = next(paths, None)
        if path is None:
          break
        pending.append(pool.submit(one, path))
      if not pending:
        return
      yield pending.popleft().result()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
  chunk = []
  for item in items:
    chunk.append(item)
    if len(chunk) == size:
      yield chunk
      chunk = []
  if chunk:
    yield chunk


def predict_files(engine: Engine, paths: Sequence[str],
                  on_video: Optional[Callable] = None) -> List:
  """A `Prediction` or `Skipped` per path, in order (also passed to
  `on_video` as soon as known). Several videos share a batch of views."""
  out = []
  decoded = _decoded(paths, engine.config.dataset, engine.spec,
                     engine.num_workers, 2 * engine.videos_per_batch)
  for chunk in _chunks(decoded, engine.videos_per_batch):
    good = [c for c in chunk if not isinstance(c, Skipped)]
    probs = []
    if good:
      loader = engine.loader([{"video": v, "label": -1} for _, v, _ in good])
      logits, _ = engine.logits(loader)
      probs = video_probs(logits, engine.views)
    results = iter(zip(good, probs))
    for item in chunk:
      if not isinstance(item, Skipped):
        (path, video, fps), p = next(results)
        item = Prediction(path, p, engine.views, len(video), fps,
                          int(video.shape[1]), int(video.shape[2]))
      out.append(item)
      if on_video is not None:
        on_video(item)
  return out


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int) -> list:
  """[{"class": name, "index": i, "probability": p}] best first (ties: the
  lower index); a missing name is "#i"."""
  order = np.argsort(-probs, kind="stable")[:max(int(k), 1)]
  return [{"class": (str(class_names[i]) if i < len(class_names)
                     else f"#{int(i)}"),
           "index": int(i), "probability": round(float(probs[i]), 6)}
          for i in order]
