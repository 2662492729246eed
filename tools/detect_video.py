"""Who does what, where: draw a trained AVA-style detector's boxes and labels
on a video (issue #21; the sibling of tools/predict.py for detection runs).

  python -m tools.detect_video --run=DIR --video=FILE [--boxes=CSV]
      [--out=annotated.mp4|annotated.gif|PNG_DIR] [--threshold=0.3]
      [--top_k=3] [--csv=results.csv] [--video_id=ID] [--step=N]

`--run`: a workdir of `python -m vidjax.main --config=configs/ava_slowfast.py`
(or configs/ava_videomae.py), loaded as tools.predict loads a run
(vidjax/viz/run.py `load_run`). The file is decoded by the one decoder of
tools.predict (vidjax/inference.py `decode_file`) as the run's dataset
stores frames. Person boxes: the rows of `--boxes` (an AVA box CSV, e.g. the
detector boxes' file: `video_id, timestamp, x1, y1, x2, y2, action_id,
score`; rows with an action id >= 1 are ground truth, score 1) whose video id
is the file's stem (or `--video_id`), keeping boxes scoring at least the
run's `dataset.detection_score_thresh`; without `--boxes`, the whole frame is
one box at every whole second. Keyframe t (seconds from the file's start) is
frame round(t * fps), and the detector reads the clip centred there exactly
as the run's evaluation does (vidjax/tasks/detection/data.py `make_batch`
without augmentation, the run's eval step), so a file gets the scores its
keyframes get in the run's evaluation (up to the JPEG storage of decoded
frames).

Prints a table (second, frame, box, box score, the top labels scoring at
least --threshold); `--csv`: AVA result rows (every class's score per box;
action ids 1..K in the head's order, as AVA's and synthetic_ava's label
maps number them).
`--out`: every frame with the boxes of its keyframe (the nearest one within
half a second: AVA's one-second annotation span) drawn with a coloured
outline and a label band (top labels and scores) inside the box; tiny videos
enlarged by pixel repetition (vidjax/viz/annotate.py). `.mp4` (H.264, PyAV),
`.gif` (Pillow), any other path: a folder of `frame_000000.png`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import numpy as np

from vidjax import cli  # noqa: F401  (the project root on sys.path)
from vidjax.errors import VidjaxError

COLORS = ((255, 64, 64), (64, 224, 64), (64, 160, 255), (255, 200, 0),
          (255, 64, 255), (0, 230, 230), (255, 140, 0), (160, 100, 255))
VIDEO_FORMATS = (".mp4", ".gif")


class Detection(NamedTuple):
  """One person box of one keyframe: box normalised (x1, y1, x2, y2) in the
  frame's coordinates, its input score, the class probabilities [K]."""
  timestamp: int
  frame: int
  box: tuple
  box_score: float
  probs: np.ndarray


def load_detector(run_dir: str, step=None):
  """The detection run (vidjax/viz/run.py `Run`) of `run_dir`."""
  from vidjax.tasks.detection import model as _  # noqa: F401,PLC0415 (registry)
  from vidjax.viz import run as run_lib  # noqa: PLC0415
  run = run_lib.load_run(run_dir, step=step, unscan=False, flag="--run")
  if run.config.get("task") != "detection":
    raise VidjaxError(f"--run={run_dir}: a {run.config.get('task')!r} run, "
                      "not a detection one (tools.predict classifies clips)")
  return run


def read_person_boxes(path: str, video_id: str, min_score: float) -> dict:
  """{timestamp: (boxes [n, 4], scores [n])} of `video_id` in an AVA box CSV
  (one box per distinct coordinates; score: the 8th column of detector rows,
  action id -1 or absent; 1 for ground-truth rows), best-scored first."""
  from vidjax.tasks.detection import ava_io  # noqa: PLC0415
  if not os.path.isfile(path):
    raise VidjaxError(f"--boxes={path}: no such file")
  people, seen = {}, False
  for r in ava_io.read_csv(path):
    if r.video_id != video_id:
      continue
    seen = True
    boxes = people.setdefault(int(r.timestamp), {})
    if r.box is None:
      continue
    detector = r.action is None or r.action < 1
    score = float(r.extra) if detector and r.extra is not None else 1.0
    if score >= min_score:
      boxes[tuple(r.box)] = max(score, boxes.get(tuple(r.box), 0.0))
  if not seen:
    raise VidjaxError(f"--boxes={path}: no rows of video id {video_id!r} "
                      "(the file's stem; --video_id picks another)")
  out = {}
  for t, boxes in sorted(people.items()):
    order = sorted(boxes, key=lambda b: -boxes[b])
    out[t] = (np.asarray(order, np.float32).reshape(-1, 4),
              np.asarray([boxes[b] for b in order], np.float32))
  return out


class _Frames:
  """A decoded file as the KeyframeSet frame reader of data.make_batch."""

  def __init__(self, video):
    self.video = video

  def num_frames(self, video_id: str) -> int:
    return len(self.video)

  def frames(self, video_id: str, indices) -> np.ndarray:
    return self.video.frames(indices)


def detect(run, video, fps: float, people: dict | None, batch_size: int = 8):
  """[Detection] of every keyframe (`people`: read_person_boxes' dict, or
  None: one whole-frame box per whole second), in keyframe order."""
  import jax  # noqa: PLC0415
  from vidjax import inference  # noqa: PLC0415
  from vidjax.tasks.detection import data as data_lib, train_step  # noqa: PLC0415
  n = len(video)
  if people is None:
    people = {t: (np.asarray([[0, 0, 1, 1]], np.float32),
                  np.ones(1, np.float32))
              for t in range(int((n - 1) / fps) + 1)}
  k = run.num_classes
  kfs = [data_lib.Keyframe("file", t, int(round(t * fps)), b,
                           np.zeros((len(b), k), np.uint8), s)
         for t, (b, s) in people.items() if len(b) and round(t * fps) < n]
  if not kfs:
    raise VidjaxError(f"no keyframe with a person box inside the video's "
                      f"{n} frames at {fps:g} fps")
  kset = data_lib.KeyframeSet(kfs, _Frames(video))
  most = max(len(kf.boxes) for kf in kfs)  # every box scored
  spec = dataclasses.replace(
      data_lib.ClipSpec.from_config(run.config.dataset, most), max_boxes=most)
  state = inference.inference_state(run)
  step = jax.jit(train_step.make_detection_eval_step(run.config))
  out = []
  for batch in data_lib.batches(kset, batch_size, spec, 0, train=False):
    probs = np.asarray(jax.device_get(step(state, {
        key: batch[key] for key in ("video", "boxes", "box_mask")})))
    for row, i in enumerate(batch["index"]):
      if not batch["valid"][row]:
        continue
      kf = kfs[int(i)]
      out += [Detection(kf.timestamp, kf.center, tuple(map(float, box)),
                        float(score), probs[row, j])
              for j, (box, score) in enumerate(zip(kf.boxes, kf.scores))]
  return out


def top_labels(det: Detection, names, threshold: float, top_k: int) -> list:
  """[(name, probability)] best first: at most top_k, each >= threshold."""
  order = np.argsort(-det.probs, kind="stable")[:max(int(top_k), 0)]
  return [(names[i] if i < len(names) else str(i + 1), float(det.probs[i]))
          for i in order if det.probs[i] >= threshold]


def format_table(dets, names, threshold: float, top_k: int) -> str:
  lines = [f"{'second':>6} {'frame':>6}  {'x1':>5} {'y1':>5} {'x2':>5} "
           f"{'y2':>5} {'box':>5}  labels (probability >= {threshold:g})"]
  for d in dets:
    labels = ", ".join(f"{c} {p:.3f}" for c, p in top_labels(
        d, names, threshold, top_k)) or "-"
    lines.append(f"{d.timestamp:6d} {d.frame:6d}  " + " ".join(
        f"{v:5.3f}" for v in d.box) + f" {d.box_score:5.3f}  {labels}")
  return "\n".join(lines)


def pixel_box(box, height: int, width: int) -> tuple:
  """Integer (x1, y1, x2, y2) pixel corners of a normalised box, inside a
  height x width frame (what `draw` outlines)."""
  x1, y1, x2, y2 = box
  return (int(np.clip(round(x1 * width), 0, width - 1)),
          int(np.clip(round(y1 * height), 0, height - 1)),
          int(np.clip(round(x2 * width) - 1, 0, width - 1)),
          int(np.clip(round(y2 * height) - 1, 0, height - 1)))


def draw(frame: np.ndarray, dets, names, threshold: float, top_k: int,
         font) -> np.ndarray:
  """The RGB frame with each detection's box outlined in COLORS[i] and a
  band of its top labels in that colour inside the box's top edge (clipped
  to the box: nothing is drawn outside the boxes)."""
  from PIL import Image, ImageDraw  # noqa: PLC0415
  image = Image.fromarray(np.ascontiguousarray(frame))
  pen = ImageDraw.Draw(image)
  h, w = frame.shape[:2]
  width = max(1, min(h, w) // 100)
  size = getattr(font, "size", 11)
  for i, d in enumerate(dets):
    color = COLORS[i % len(COLORS)]
    x1, y1, x2, y2 = pixel_box(d.box, h, w)
    pen.rectangle([x1, y1, x2, y2], outline=color, width=width)
    lines = [f"{c} {p:.2f}" for c, p in top_labels(d, names, threshold,
                                                    top_k)]
    if lines:  # the band, clipped to the box
      band = Image.new("RGB", (x2 - x1 + 1, min(
          y2 - y1 + 1, int(len(lines) * size * 1.2 + 2))), color)
      ink = ImageDraw.Draw(band)
      for j, line in enumerate(lines):
        ink.text((width + 1, 1 + j * size * 1.2), line, fill=(0, 0, 0),
                 font=font)
      image.paste(band, (x1, y1))
  return np.asarray(image)


def frame_detections(dets, num_frames: int, fps: float) -> list:
  """[detections drawn on frame f]: those of the keyframe nearest to f, if
  it is within half a second (AVA's one-second annotation span)."""
  centres = sorted({d.frame for d in dets})
  by_centre = {c: [d for d in dets if d.frame == c] for c in centres}
  out = []
  for f in range(num_frames):
    c = min(centres, key=lambda x: (abs(x - f), x))
    out.append(by_centre[c] if abs(c - f) <= fps / 2 else [])
  return out


def write_annotated(video, fps: float, dets, names, out: str,
                    threshold: float, top_k: int) -> dict:
  """Writes `out` (module docstring); {"out", "frames", "size"}."""
  from vidjax.viz import annotate  # noqa: PLC0415
  n = len(video)
  size = annotate._display_size(*video.shape[1:3])  # noqa: SLF001
  shown = lambda f: annotate._fit(video.frames([f])[0], size)  # noqa: E731,SLF001
  first = shown(0)
  font = annotate._font(max(9, min(first.shape[:2]) // 20))  # noqa: SLF001
  per_frame = frame_detections(dets, n, fps)
  frames = (draw(shown(f), per_frame[f], names, threshold, top_k, font)
            for f in range(n))
  ext = os.path.splitext(out)[1].lower()
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent if ext in VIDEO_FORMATS else out, exist_ok=True)
  if ext == ".gif":
    from PIL import Image  # noqa: PLC0415
    images = [Image.fromarray(f) for f in frames]
    images[0].save(out, save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, int(round(1000 / fps))))
  elif ext == ".mp4":
    import av  # noqa: PLC0415
    from fractions import Fraction  # noqa: PLC0415
    with av.open(out, "w") as container:
      stream = container.add_stream(
          "libx264", rate=Fraction(fps).limit_denominator(1001))
      stream.height, stream.width = first.shape[:2]
      stream.pix_fmt = "yuv420p"
      for f in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(
            np.ascontiguousarray(f), format="rgb24")):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)
  else:
    from PIL import Image  # noqa: PLC0415
    for i, f in enumerate(frames):
      Image.fromarray(f).save(os.path.join(out, f"frame_{i:06d}.png"))
  return {"out": os.path.abspath(out), "frames": n,
          "size": list(first.shape[:2])}


def detect_video(run_dir: str, video: str, boxes: str = "", out: str = "",
                 threshold: float = 0.3, top_k: int = 3, csv: str = "",
                 video_id: str = "", step=None, log=print) -> list:
  """Runs the tool (module docstring); returns its [Detection]."""
  from vidjax import inference  # noqa: PLC0415
  from vidjax.data import decode  # noqa: PLC0415
  from vidjax.tasks.detection import ava_io  # noqa: PLC0415
  if not 0.0 <= threshold <= 1.0:
    raise VidjaxError(f"--threshold={threshold}: must be in [0, 1]")
  if not os.path.isfile(video):
    raise VidjaxError(f"--video={video}: no such file")
  run = load_detector(run_dir, step)
  vid = video_id or os.path.splitext(os.path.basename(video))[0]
  people = (read_person_boxes(boxes, vid, float(run.config.dataset.get(
      "detection_score_thresh", 0.8))) if boxes else None)
  try:
    frames, fps = inference.decode_file(video, run.config.dataset)
  except decode.BadVideo as e:
    raise VidjaxError(f"--video={video}: cannot decode it ({e})") from None
  if fps <= 0:
    raise VidjaxError(f"--video={video}: unknown frame rate")
  dets = detect(run, frames, fps, people)
  names = list(run.class_names)
  log(f"{video}: {len(frames)} frames at {fps:g} fps, "
      f"{len({d.frame for d in dets})} keyframes, {len(dets)} person boxes")
  log(format_table(dets, names, threshold, top_k))
  if csv:
    rows = [r for d in dets for r in ava_io.detections_to_rows(
        vid, d.timestamp, [d.box], [d.probs], range(1, len(d.probs) + 1))]
    ava_io.write_csv(csv, rows)
    log(f"wrote {len(rows)} AVA result rows to {csv}")
  if out:
    got = write_annotated(frames, fps, dets, names, out, threshold, top_k)
    log(f"wrote {got['frames']} frames ({got['size'][0]}x{got['size'][1]}) "
        f"to {got['out']}")
  return dets


def main(argv):
  from absl import flags, logging  # noqa: PLC0415
  f = flags.FLAGS
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)  # orbax's notes on the meta item
  if not f.run or not f.video:
    cli.fail("--run=DIR and --video=FILE are required")
  try:
    detect_video(f.run, f.video, f.boxes or "", f.out or "", f.threshold,
                 f.top_k, f.csv or "", f.video_id or "", f.step)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  from absl import app, flags
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  flags.DEFINE_string("run", None, "Detection run folder.")
  flags.DEFINE_string("video", None, "Video file.")
  flags.DEFINE_string("boxes", None, "AVA box CSV with this video's person "
                      "boxes (default: the whole frame).")
  flags.DEFINE_string("out", None, "Annotated .mp4, .gif or PNG folder.")
  flags.DEFINE_float("threshold", 0.3, "Lowest label probability shown.")
  flags.DEFINE_integer("top_k", 3, "Most labels shown per box.")
  flags.DEFINE_string("csv", None, "AVA result CSV to write.")
  flags.DEFINE_string("video_id", None, "Video id in --boxes (default: the "
                      "file's stem).")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  app.run(main)
