"""Find the actions in a long video with a trained localization run.

  python -m tools.localize --run=DIR --video=FILE [--out=FILE.json]
      [--timeline=FILE.png] [--gt=ACTIVITYNET.json] [--threshold=0.2]
      [--top_k=20] [--step=N]

`--run`: a workdir of `python -m vidjax.main --config=configs/actionformer.py`
(or the two-stage config). The video is decoded by the one decoder of
tools.predict (vidjax/inference.py `decode_file`) at the frame rate and
frame size the run's features were made at (DIR/features/timing.json, or
the run's `config.dataset.backbone_run` for pre-extracted features), cut
into the same clip windows (timing.py `FeatureTiming.windows`: window k is
centred at (offset + k stride + span / 2) / fps seconds), each read by the
run's backbone (features.py), and the detector runs on the one sequence,
padded to its compiled length (a longer video: the next multiple of
2^(levels-1)). Post-processing is the evaluation's (soft-NMS,
postprocess.py; two-stage: proposals re-scored by the RoI classifier), so a
file gets the segments it would get in the run's evaluation.

Prints a table (start s, end s, label, score) of the segments scoring at
least --threshold, best first (at most --top_k), and writes them as
ActivityNet result JSON to --out (video id = the file's stem). --timeline:
a PNG with one row per class (detections shaded by score; with --gt, the
ground truth of the same video id drawn beneath). A file that cannot be
decoded is a one-line error naming it.
"""
from __future__ import annotations

import json
import os

import numpy as np

from vidjax import cli  # noqa: F401  (the project root on sys.path)
from vidjax.errors import VidjaxError


def load_detector(run_dir: str, step=None):
  """(config, class names, params, timing record) of a localization run."""
  import ml_collections  # noqa: PLC0415
  from vidjax import checkpoint  # noqa: PLC0415
  from vidjax.tasks.localization import features  # noqa: PLC0415
  path = os.path.join(run_dir, "config.json")
  if not os.path.isfile(path):
    raise VidjaxError(f"--run={run_dir}: no config.json (not a vidjax run "
                      "folder)")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.get("task") != "localization":
    raise VidjaxError(f"--run={run_dir}: a {config.get('task')!r} run, not "
                      "a localization one (tools.predict classifies clips)")
  with open(os.path.join(run_dir, "class_names.json")) as f:
    names = json.load(f)
  where = os.path.join(run_dir, "checkpoints", str(step)) if step else run_dir
  params, _, _ = checkpoint.load_pretrained(where)
  record = features.read_timing(os.path.join(run_dir, "features"))
  if not record:
    backbone = config.dataset.get("backbone_run", "")
    if not backbone:
      raise VidjaxError(f"--run={run_dir}: no features/timing.json and no "
                        "config.dataset.backbone_run: which backbone made "
                        "its features is unknown")
    record = {"backbone_run": backbone,
              "stride": int(config.dataset.get("window_stride", 4)),
              "fps": float(config.dataset.get("feature_fps", 0.0))}
  return config, names, params, record


def detect_file(run_dir: str, video: str, step=None, log=lambda *a: None):
  """[{"segment": [s, e], "label", "score"}] best first, and the duration."""
  import jax  # noqa: PLC0415
  from flax import struct  # noqa: PLC0415
  from vidjax import inference  # noqa: PLC0415
  from vidjax.data import decode  # noqa: PLC0415
  from vidjax.tasks.localization import data, detect, features  # noqa: PLC0415
  from vidjax.tasks.localization import task, train_step  # noqa: PLC0415
  from vidjax.tasks.localization.timing import FeatureTiming  # noqa: PLC0415
  config, names, params, record = load_detector(run_dir, step)
  if not os.path.isfile(video):
    raise VidjaxError(f"--video={video}: no such file")
  extractor = features.FeatureExtractor(record["backbone_run"])
  dcfg = extractor.dataset_config.copy_and_resolve_references()
  if record.get("fps"):
    dcfg.fps = float(record["fps"])
  try:
    frames, fps = inference.decode_file(video, dcfg)
  except decode.BadVideo as e:
    raise VidjaxError(f"--video={video}: cannot decode it ({e})") from None
  if len(frames) < 1:
    raise VidjaxError(f"--video={video}: no frames")
  vid = os.path.splitext(os.path.basename(video))[0]
  seq = data.Sequence(vid, frames, FeatureTiming.frames(fps),
                      len(frames) / fps, np.zeros((0, 2)), np.zeros(0, int))
  feats = features.extract(extractor, seq, int(record["stride"]))
  timing = extractor.timing(fps, int(record["stride"]))
  seq = data.Sequence(vid, feats, timing, len(frames) / fps,
                      np.zeros((0, 2)), np.zeros(0, int))
  levels = task.num_levels(config)
  length = max(int(config.dataset.max_len),
               data.bucket_length(len(feats), 2 ** (levels - 1)))
  log(f"{video}: {len(frames)} frames at {fps:g} fps, {len(feats)} windows "
      f"(padded to {length})")
  model = train_step.build_model(config.model, len(names))

  @struct.dataclass
  class Weights:  # what the eval steps read of a TrainState
    params: dict
    apply_fn: object = struct.field(pytree_node=False)

  state = Weights(params, model.apply)
  eval_step = jax.jit(train_step.make_localization_eval_step(config))
  roi = (jax.jit(train_step.make_roi_eval_step(config))
         if train_step.is_two_stage(config) else None)
  preds = detect.detect(state, eval_step, [seq], names, length, 1, levels,
                        batch_size=1, roi_step=roi)
  return preds.get(vid, []), len(frames) / fps, vid


def format_table(rows) -> str:
  lines = [f"{'start s':>8} {'end s':>8}  {'score':>6}  label"]
  lines += [f"{r['segment'][0]:8.2f} {r['segment'][1]:8.2f}  "
            f"{r['score']:6.3f}  {r['label']}" for r in rows]
  return "\n".join(lines)


def timeline(path: str, rows, class_names, duration: float, title: str,
             gt=None) -> str:
  """PNG: a lane per class, detections shaded by score (ground truth, when
  given, as a black bar under the class's lane)."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  k = len(class_names)
  fig, ax = plt.subplots(figsize=(10, 0.45 * k + 1.2))
  index = {c: i for i, c in enumerate(class_names)}
  cmap = plt.get_cmap("tab10")
  for r in rows:
    i = index.get(r["label"])
    if i is None:
      continue
    s, e = r["segment"]
    ax.barh(k - 1 - i + 0.12, e - s, left=s, height=0.55,
            color=cmap(i % 10), alpha=float(np.clip(r["score"], 0.15, 1.0)))
  for s, e, label in gt or ():
    if label in index:
      ax.barh(k - 1 - index[label] - 0.3, e - s, left=s, height=0.15,
              color="black")
  ax.set_yticks(range(k))
  ax.set_yticklabels(list(reversed([str(c) for c in class_names])),
                     fontsize=8)
  ax.set_xlim(0, duration)
  ax.set_ylim(-0.6, k - 0.4)
  ax.set_xlabel("seconds")
  ax.set_title(title + ("  (black: ground truth)" if gt else ""), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def localize(run_dir: str, video: str, out: str = "", timeline_png: str = "",
             gt: str = "", threshold: float = 0.2, top_k: int = 20,
             step=None, log=print) -> list:
  """The segments kept (score >= threshold, best top_k), printed/written."""
  from vidjax.tasks.localization import annotations  # noqa: PLC0415
  from vidjax.tasks.localization import evaluate as ev  # noqa: PLC0415
  rows, duration, vid = detect_file(run_dir, video, step, log)
  kept = [r for r in rows if r["score"] >= threshold][:max(int(top_k), 0)]
  log(format_table(kept))
  if out:
    ev.write_predictions(out, {vid: kept})
    log(f"wrote {len(kept)} segments to {out}")
  if timeline_png:
    truth = None
    if gt:
      db = annotations.read_activitynet(gt)
      if vid not in db:
        raise VidjaxError(f"--gt={gt}: no video {vid!r} (the file's stem)")
      truth = db[vid].segments
    with open(os.path.join(run_dir, "class_names.json")) as f:
      names = json.load(f)
    timeline(timeline_png, kept, names, duration,
             f"{vid}: {len(kept)} segments (score >= {threshold:g})", truth)
    log(f"wrote {timeline_png}")
  return kept


def main(argv):
  from absl import flags, logging  # noqa: PLC0415
  f = flags.FLAGS
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)  # orbax's notes on the meta item
  if not f.run or not f.video:
    cli.fail("--run=DIR and --video=FILE are required")
  try:
    localize(f.run, f.video, f.out or "", f.timeline or "", f.gt or "",
             f.threshold, f.top_k, f.step)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  from absl import app, flags
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  flags.DEFINE_string("run", None, "Localization run folder.")
  flags.DEFINE_string("video", None, "Video file.")
  flags.DEFINE_string("out", None, "ActivityNet result JSON to write.")
  flags.DEFINE_string("timeline", None, "Timeline PNG to write.")
  flags.DEFINE_string("gt", None, "ActivityNet JSON with this video's ground "
                      "truth (drawn on the timeline).")
  flags.DEFINE_float("threshold", 0.2, "Lowest score kept.")
  flags.DEFINE_integer("top_k", 20, "Most segments kept.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
  app.run(main)
