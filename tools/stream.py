"""Stream a video through a trained causal MoViNet: the running prediction as
frames arrive (Kondratyuk et al. 2021, "MoViNets", Sec. 3.2 stream buffers).

  python -m tools.stream --run=RUN_DIR --video=FILE [--chunk=N] [--top_k=1]
      [--step=STEP]
  python -m tools.stream --run=RUN_DIR --test_split [--chunk=N]

The run is loaded as tools.predict loads it (`vidjax.viz.run.load_run`, the
run's latest checkpoint or --step) and must be a causal MoViNet
(configs/movinet.py). The file is decoded as the run's dataset stores frames
(`vidjax.inference.decode_file`); every stored frame at the dataset's
`frame_stride`, centre-cropped as the evaluation crops, is fed `--chunk`
frames at a time, carrying the stream buffers (`vidjax.models.movinet`), and
one line per chunk gives the time, the frames seen and the top-k classes of
the head on the cumulative average so far. Nothing but the state is kept
between chunks. The last line compares the final streamed logits with one
whole-clip causal pass over the same frames (they are equal up to float
rounding: "max |stream - clip|").

`--test_split`: for every test video of the run's dataset, the streamed
prediction (`lax.scan` over chunks) against the whole-clip one: how many
top-1 classes agree, the largest logit difference, and both accuracies.
"""
import os
import sys

import numpy as np
from absl import app, flags, logging

from vidjax import cli
from vidjax.errors import VidjaxError

if __name__ == "__main__":
  _RUN = flags.DEFINE_string("run", None, "Training workdir (a MoViNet).")
  _VIDEO = flags.DEFINE_string("video", None, "Video file.")
  _CHUNK = flags.DEFINE_integer("chunk", 1, "Frames per streamed chunk.")
  _TOP_K = flags.DEFINE_integer("top_k", 1, "Classes shown per chunk.")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the "
                               "latest).")
  _TEST = flags.DEFINE_bool("test_split", False, "Compare streamed and "
                            "whole-clip predictions on every test video.")


def load_stream_run(path: str, step=None):
  """The run (tools.predict's loading); a causal MoViNet or a VidjaxError."""
  from vidjax import inference  # noqa: PLC0415
  from vidjax.models.movinet import MoViNet  # noqa: PLC0415
  from vidjax.viz import run as run_lib  # noqa: PLC0415
  run = run_lib.load_run(path, step=step, unscan=False, flag="--run")
  inference.check_classifier(run, "--run")
  if not isinstance(run.model, MoViNet) or not run.model.causal:
    raise VidjaxError(f"--run={path}: model {run.config.model.name!r} "
                      f"(causal={run.config.model.get('causal')}) has no "
                      "stream mode; train a causal MoViNet "
                      "(configs/movinet.py)")
  return run


def whole_video(run, video) -> np.ndarray:
  """Every stored frame at the dataset's frame_stride, centre-cropped as
  the evaluation crops: (T, crop, crop, C) uint8."""
  from vidjax.data.pipeline import ClipSpec, EvalLoader  # noqa: PLC0415
  d = run.config.dataset.copy_and_resolve_references()
  d.num_frames = max(1, -(-len(video) // int(d.frame_stride)))
  loader = EvalLoader([{"video": video, "label": -1}],
                      ClipSpec.from_config(d), 1, 1, 1)
  return loader.batch(0)["video"][0]


def _functions(run):
  import jax  # noqa: PLC0415
  from vidjax.models import movinet  # noqa: PLC0415
  model = run.model
  chunk_fn = jax.jit(lambda v, x, s: movinet.stream_apply(model, v, x, s))
  clip_fn = jax.jit(lambda v, x: model.apply(v, x))
  scan_fn = jax.jit(lambda v, x, c: movinet.stream_logits(model, v, x, c),
                    static_argnums=2)
  return chunk_fn, clip_fn, scan_fn


def stream_file(run, frames: np.ndarray, chunk: int, top_k: int = 1,
                seconds_per_frame: float = 0.0, write=print) -> dict:
  """Streams (T, H, W, C) uint8 frames `chunk` at a time, writing a line per
  chunk; returns {"rows", "stream_logits", "clip_logits", "max_abs_diff"}."""
  from vidjax import inference  # noqa: PLC0415
  from vidjax.evaluate import softmax  # noqa: PLC0415
  from vidjax.models.movinet import init_state  # noqa: PLC0415
  if chunk < 1:
    raise VidjaxError(f"--chunk={chunk} must be >= 1")
  chunk_fn, clip_fn, _ = _functions(run)
  x = run.normalize(frames)[None]
  state = init_state(run.model, run.variables, 1, *x.shape[2:4], x.shape[4])
  rows, logits = [], None
  for start in range(0, x.shape[1], chunk):
    end = min(start + chunk, x.shape[1])
    frame_logits, state = chunk_fn(run.variables, x[:, start:end], state)
    logits = np.asarray(frame_logits[0, -1], np.float64)
    top = inference.top_k(softmax(logits), run.class_names, top_k)
    rows.append({"frames": end, "seconds": round(end * seconds_per_frame, 3),
                 "top_k": top})
    shown = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in top)
    write(f"t={end * seconds_per_frame:7.2f}s  frames {end:4d}/"
          f"{x.shape[1]}: {shown}")
  clip = np.asarray(clip_fn(run.variables, x)[0], np.float64)
  diff = float(np.abs(clip - logits).max())
  same = int(np.argmax(clip)) == int(np.argmax(logits))
  write(f"whole clip ({x.shape[1]} frames in one pass): "
        f"{inference.top_k(softmax(clip), run.class_names, 1)[0]['class']}; "
        f"max |stream - clip| = {diff:.2e} ({'same' if same else 'DIFFERENT'}"
        " top-1)")
  return {"rows": rows, "stream_logits": logits, "clip_logits": clip,
          "max_abs_diff": diff}


def check_test_split(run, chunk: int, write=print) -> dict:
  """Streamed vs whole-clip predictions on every test video."""
  from vidjax.data import datasets  # noqa: PLC0415
  _, clip_fn, scan_fn = _functions(run)
  test = datasets.load(run.config.dataset).test
  agree, worst, right_stream, right_clip = 0, 0.0, 0, 0
  for i in range(len(test)):
    ex = test[i]
    x = run.normalize(whole_video(run, ex["video"]))[None]
    ends, _, _ = scan_fn(run.variables, x, chunk)
    streamed = np.asarray(ends[0, -1])
    clip = np.asarray(clip_fn(run.variables, x)[0])
    worst = max(worst, float(np.abs(streamed - clip).max()))
    agree += int(np.argmax(streamed) == np.argmax(clip))
    right_stream += int(np.argmax(streamed) == int(ex["label"]))
    right_clip += int(np.argmax(clip) == int(ex["label"]))
  n = len(test)
  out = {"videos": n, "top1_agree": agree, "max_abs_diff": worst,
         "stream_top1": right_stream / n, "clip_top1": right_clip / n,
         "chunk": chunk}
  write(f"{n} test videos, chunk {chunk}: streamed top-1 = whole-clip top-1 "
        f"on {agree}; max |stream - clip| = {worst:.2e}; top-1 accuracy "
        f"streamed {out['stream_top1']:.4f}, whole clip "
        f"{out['clip_top1']:.4f}")
  return out


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)
  if not _RUN.value:
    cli.fail("--run=RUN_DIR is required")
  if bool(_VIDEO.value) == bool(_TEST.value):
    cli.fail("give one of --video=FILE or --test_split")
  try:
    run = load_stream_run(_RUN.value, _STEP.value)
    if _TEST.value:
      check_test_split(run, _CHUNK.value)
      return
    if not os.path.isfile(_VIDEO.value):
      raise VidjaxError(f"--video={_VIDEO.value} is not a file")
    from vidjax import inference  # noqa: PLC0415
    from vidjax.data import decode  # noqa: PLC0415
    try:
      video, fps = inference.decode_file(_VIDEO.value, run.config.dataset)
    except decode.BadVideo as e:
      raise VidjaxError(f"--video={_VIDEO.value}: cannot decode it: {e}"
                        ) from None
    frames = whole_video(run, video)
    stride = int(run.config.dataset.frame_stride)
    stream_file(run, frames, _CHUNK.value, _TOP_K.value,
                stride / fps if fps > 0 else 0.0)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(app.run(main))
