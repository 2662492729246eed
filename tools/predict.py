"""Classify video files with a trained or converted model: top-k named labels.

  python -m tools.predict --run=RUN_DIR --video=FILE_OR_FOLDER [--top_k=5]
      [--out=preds.jsonl] [--annotate=out.gif|out.mp4] [--step=N]
  python -m tools.predict --checkpoint=CONVERTED_DIR --video=clip.mp4

`--run`: a training workdir (its latest checkpoint, or `--step`);
`--checkpoint`: the same, one checkpoint folder, or a folder written by
`tools.convert_checkpoint` (a converted Hugging Face model; its class names
are the model's `id2label`). Any video FFmpeg reads is decoded as the run's
dataset stores its frames and scored with the run's test protocol
(`num_test_clips` x `num_test_crops` views, logits averaged:
vidjax/inference.py), so a file scores as it would in the run's evaluation.

One file: its top-k classes with probabilities, one per line. A folder (its
video files, recursively, sorted): one JSON line per video, `{"video",
"top_k": [{"class", "index", "probability"}], "views", "frames", "fps"}`,
on stdout or into `--out` (a file always gets JSON lines). A file that
cannot be decoded is named with the reason and skipped; the count of
skipped files ends the output (exit status 1 only if no video could be
scored). `--annotate`: the video with its top classes drawn on every frame
(.gif or .mp4; for a folder, a folder of `<name>.gif`, or .mp4 with
`--annotate_ext=mp4`). `--batch_size`: views per model call (0: a few
videos' views); `--num_devices`: devices of the `data` mesh (1; -1: all).
"""
import json
import os
import sys
import time

from absl import app, flags, logging

from vidjax import cli
from vidjax.errors import VidjaxError

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _RUN = flags.DEFINE_string("run", None, "Training workdir.")
  _CHECKPOINT = flags.DEFINE_string(
      "checkpoint", None, "Checkpoint folder, run or converted model folder.")
  _VIDEO = flags.DEFINE_string("video", None, "Video file or folder.")
  _TOP_K = flags.DEFINE_integer("top_k", 5, "Classes shown per video.")
  _OUT = flags.DEFINE_string("out", None, "JSON lines output file.")
  _ANNOTATE = flags.DEFINE_string("annotate", None, "Annotated .gif/.mp4 "
                                  "(a folder when --video is a folder).")
  _ANNOTATE_EXT = flags.DEFINE_enum("annotate_ext", "gif", ["gif", "mp4"],
                                    "Annotated files' format for a folder.")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the "
                               "latest).")
  _BATCH = flags.DEFINE_integer("batch_size", 0, "Views per model call.")
  _DEVICES = flags.DEFINE_integer("num_devices", 1, "Devices (-1: all).")


def video_files(folder: str) -> list:
  """The folder's video files (by extension, hidden names skipped), sorted."""
  from vidjax.data.listing import VIDEO_EXTENSIONS  # noqa: PLC0415
  found = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    found += [os.path.join(root, f) for f in files if not f.startswith(".")
              and os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS]
  return sorted(found)


def _json_row(item, class_names, top_k: int, root: str) -> dict:
  from vidjax import inference  # noqa: PLC0415
  name = os.path.relpath(item.path, root) if root else item.path
  if isinstance(item, inference.Skipped):
    return {"video": name, "skipped": item.reason}
  return {"video": name,
          "top_k": inference.top_k(item.probs, class_names, top_k),
          "views": item.views, "frames": item.frames,
          "fps": round(item.fps, 3)}


def predict(path: str, video: str, top_k: int = 5, out: str = "",
            annotate: str = "", annotate_ext: str = "gif",
            step=None, batch_size: int = 0, num_devices: int = 1,
            flag: str = "--run", write=print) -> dict:
  """Runs the tool; returns {"rows": [...], "predicted", "skipped",
  "clips_per_sec", "seconds"} (rows as the JSON lines)."""
  from vidjax import inference  # noqa: PLC0415
  from vidjax.viz import annotate as annotate_lib  # noqa: PLC0415
  from vidjax.viz import run as run_lib  # noqa: PLC0415
  if top_k < 1:
    raise VidjaxError(f"--top_k={top_k} must be >= 1")
  folder = os.path.isdir(video)
  if not folder and not os.path.isfile(video):
    raise VidjaxError(f"--video={video} is neither a video file nor a folder")
  paths = video_files(video) if folder else [video]
  if not paths:
    raise VidjaxError(f"--video={video}: the folder holds no video file")
  if annotate and not folder and (os.path.splitext(annotate)[1].lower()
                                  not in annotate_lib.FORMATS):
    raise VidjaxError(f"--annotate={annotate}: write a .gif or .mp4 file")
  run = run_lib.load_run(path, step=step, unscan=False, flag=flag)
  inference.check_classifier(run, flag)
  engine = inference.Engine(run, batch_size or (
      0 if not folder else 16), num_devices)
  root = video if folder else ""
  sink = open(out, "w") if out else None  # noqa: SIM115
  rows = []

  def on_video(item):
    row = _json_row(item, run.class_names, top_k, root)
    rows.append(row)
    if isinstance(item, inference.Skipped):
      print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    elif folder:
      if sink is None:
        write(json.dumps(row))
    else:
      write(f"{item.path} ({item.views} views of {item.frames} frames):")
      for i, t in enumerate(row["top_k"]):
        write(f"  {i + 1}. {t['class']} {t['probability']:.4f}")
    if sink is not None:
      sink.write(json.dumps(row) + "\n")
      sink.flush()
    if annotate and not isinstance(item, inference.Skipped):
      target = annotate if not folder else os.path.join(
          annotate, os.path.splitext(row["video"])[0] + f".{annotate_ext}")
      row["annotated"] = annotate_lib.annotate(item.path, row["top_k"],
                                               target)["out"]

  t0 = time.perf_counter()
  try:
    items = inference.predict_files(engine, paths, on_video)
  finally:
    if sink is not None:
      sink.close()
  seconds = time.perf_counter() - t0
  skipped = [i for i in items if isinstance(i, inference.Skipped)]
  done = len(items) - len(skipped)
  if skipped:
    print(f"{len(skipped)} of {len(items)} videos skipped: " + "; ".join(
        f"{s.path} — {s.reason}" for s in skipped[:5]) + (
            "; ..." if len(skipped) > 5 else ""), file=sys.stderr)
  if not done:
    raise VidjaxError(f"--video={video}: no video could be decoded "
                      f"({len(skipped)} skipped)")
  clips_per_sec = done * engine.views / max(seconds, 1e-9)
  print(f"{done} videos, {done * engine.views} clips in {seconds:.2f} s: "
        f"{clips_per_sec:.1f} clips/s (decoding included; compiled in "
        f"{engine.compile_seconds:.1f} s before)", file=sys.stderr)
  return {"rows": rows, "predicted": done, "skipped": len(skipped),
          "seconds": seconds, "clips_per_sec": clips_per_sec,
          "compile_seconds": engine.compile_seconds,
          "checkpoint": run.step_dir}


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)  # orbax's notes on the meta item
  if bool(_RUN.value) == bool(_CHECKPOINT.value):
    cli.fail("give one of --run=RUN_DIR or --checkpoint=DIR")
  if not _VIDEO.value:
    cli.fail("--video is required (a video file or a folder)")
  flag = "--run" if _RUN.value else "--checkpoint"
  try:
    predict(_RUN.value or _CHECKPOINT.value, _VIDEO.value, _TOP_K.value,
            _OUT.value or "", _ANNOTATE.value or "", _ANNOTATE_EXT.value,
            _STEP.value, _BATCH.value, _DEVICES.value, flag)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
