"""Evaluate any checkpoint on any split, without training.

  python -m tools.evaluate --run=RUN_DIR [--step=N] [--split=test|train]
      [--out=DIR] [--top_k=5] [--config.dataset.FIELD=VALUE ...]
      [--config.num_test_clips=4 --config.num_test_crops=3 ...]

The config is the checkpoint's own (its meta, vidjax/checkpoint.py); the
`--config.*` overrides change the data and the test protocol only:
`dataset.*` (e.g. another `dataset.name` / `dataset.path` with the same
classes, `dataset.split` of UCF-101), `num_test_clips`, `num_test_crops`,
`eval_batch_size`, `eval_max_videos`, `num_devices`. The views are scored
by the run's own eval step (vidjax/inference.py), as the training's
evaluation does, and written to `--out` (default RUN/eval/<split>_step<N>/,
with the overrides appended to the name)
by `evaluate.write_outputs`, the files the training's final evaluation
writes: predictions.jsonl (video, label, top-k, probabilities), metrics.json
(top-1/5, clip top-1, per-class top-1, mean class accuracy), confusion.json
and confusion.png. OUT/metrics.jsonl and OUT/tb/ (TensorBoard: the scalars
and the `eval/confusion_matrix` image at the checkpoint's step) go with
them. `--run` also takes a checkpoint folder or a converted model's folder
(tools/convert_checkpoint.py). The data's classes are matched to the head's
by name (any order, or a subset such as 2 of Kinetics' 400: only the
data's classes are scored), or by position when the checkpoint names none.
"""
import ast
import hashlib
import os
import re
import sys
import time

from absl import app, flags, logging

from vidjax import cli
from vidjax.errors import VidjaxError

_TOP_LEVEL = ("num_test_clips", "num_test_crops", "eval_batch_size",
              "eval_max_videos", "num_devices", "seed")

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _RUN = flags.DEFINE_string("run", None, "Training workdir or checkpoint.")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the "
                               "latest).")
  _SPLIT = flags.DEFINE_enum("split", "test", ["test", "train"], "Split.")
  _OUT = flags.DEFINE_string("out", None, "Output folder (default "
                             "RUN/eval/<split>_step<N>).")
  _TOP_K = flags.DEFINE_integer("top_k", 5, "Classes per video in "
                                "predictions.jsonl.")


def parse_value(key: str, text: str, current):
  """`text` as the type of the field's current value."""
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise VidjaxError(f"--config.{key}={text}: expected true or false")
  try:
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, (tuple, list)):
      value = ast.literal_eval(text) if text.strip()[:1] in "([" else tuple(
          ast.literal_eval(v) for v in text.split(",") if v.strip())
      return tuple(value) if isinstance(value, (tuple, list)) else (value,)
  except (ValueError, SyntaxError):
    raise VidjaxError(f"--config.{key}={text}: expected a value of type "
                      f"{type(current).__name__}") from None
  return text


def apply_overrides(config, overrides: dict):
  """Sets `{"dataset.name": "ucf101", ...}` (strings parsed to the fields'
  types); the model and training fields are the checkpoint's."""
  from vidjax import experiment  # noqa: PLC0415
  for key, text in overrides.items():
    if not (key.startswith("dataset.") or key in _TOP_LEVEL):
      raise VidjaxError(f"--config.{key}: only dataset.* and "
                        f"{', '.join(_TOP_LEVEL)} can be changed here (the "
                        "model and its training are the checkpoint's)")
    node = config
    for part in key.split(".")[:-1]:
      node = node.get(part) if part in node else None
      if node is None:
        break
    leaf = key.split(".")[-1]
    current = node.get(leaf) if node is not None and leaf in node else ""
    experiment.set_field(config, key, parse_value(key, text, current)
                         if isinstance(text, str) else text)
  return config


def class_columns(head_names, data_names, num_classes: int,
                  dataset: str = "the data") -> list:
  """The head's row of each data class, by name (ignoring case, spaces and
  underscores: vidjax/head_remap.py), so a head of more classes (a converted
  Kinetics model) or in another order scores the data's classes; by
  position when the checkpoint names none. Raises naming what is missing."""
  from vidjax import head_remap  # noqa: PLC0415
  if not head_names:
    if len(data_names) != num_classes:
      raise VidjaxError(
          f"{dataset} has {len(data_names)} classes, the checkpoint's head "
          f"{num_classes} (unnamed): evaluate on data with its classes")
    return list(range(num_classes))
  rows = head_remap.match_classes(head_names, data_names)
  missing = [n for n, r in zip(data_names, rows) if r < 0]
  if missing:
    raise VidjaxError(
        f"{len(missing)} of the {len(data_names)} classes of {dataset} are "
        f"not among the checkpoint's {num_classes}: {missing[:4]}"
        f"{'...' if len(missing) > 4 else ''}")
  return rows


def evaluate_checkpoint(path: str, step=None, split: str = "test",
                        out: str = "", top_k: int = 5,
                        overrides=None, log=print) -> dict:
  """Runs the tool; returns metrics.json's content (+ `out`)."""
  from vidjax import evaluate, inference, metrics  # noqa: PLC0415
  from vidjax.data import datasets, frame_sizes, pipeline  # noqa: PLC0415
  from vidjax.viz import run as run_lib  # noqa: PLC0415
  if split not in ("test", "train"):
    raise VidjaxError(f"--split={split}: test or train")
  run = run_lib.load_run(path, step=step, unscan=False, flag="--run")
  inference.check_classifier(run)
  config = apply_overrides(run.config, overrides or {})
  frame_sizes.check(config.dataset)
  data = datasets.load(config.dataset)
  names = list(data.class_names)
  columns = class_columns(run.class_names, names, run.num_classes,
                          config.dataset.name)
  source = pipeline.Subset(getattr(data, split),
                           int(config.get("eval_max_videos", 0)))
  engine = inference.Engine(run, int(config.eval_batch_size),
                            int(config.get("num_devices", -1)),
                            int(config.dataset.num_workers))
  loader = engine.loader(source)
  t0 = time.perf_counter()
  logits, labels = engine.logits(loader, int(config.dataset.prefetch))
  seconds = time.perf_counter() - t0
  if columns != list(range(run.num_classes)):  # the data's classes, in order
    logits = logits[:, columns]
  ckpt_step = int(os.path.basename(run.step_dir))
  out = out or os.path.join(run.workdir, "eval", default_folder(
      split, ckpt_step, overrides))
  info = {"split": split, "step": ckpt_step, "checkpoint": run.step_dir,
          "dataset": config.dataset.name, "overrides": dict(overrides or {}),
          "seconds": round(seconds, 3)}
  summary = evaluate.write_outputs(
      out, logits, labels, engine.views, names, getattr(source, "paths", None),
      top_k, info)
  writer = metrics.MetricWriter(out)
  try:
    writer.write(ckpt_step, {
        f"eval/{k}": summary[k] for k in ("top1", "top5", "clip_top1", "loss",
                                          "mean_class_accuracy")})
    writer.write_image(ckpt_step, "eval/confusion_matrix", summary["figure"])
  finally:
    writer.close()
  log(f"{split} split, {summary['num_videos']} videos x {engine.views} "
      f"views, checkpoint {run.step_dir}: top1={summary['top1']:.4f} "
      f"top5={summary['top5']:.4f} mean class accuracy="
      f"{summary['mean_class_accuracy']:.4f} ({seconds:.1f} s); wrote "
      f"{out}/predictions.jsonl, metrics.json, confusion.png")
  summary.pop("figure")
  summary.pop("confusion")
  return dict(summary, out=out)


def default_folder(split: str, step: int, overrides=None) -> str:
  """`<split>_step<N>` (the training's final evaluation writes test_step<N>,
  the same files), with the overrides appended: `..._num_test_clips=2`."""
  name = f"{split}_step{step}"
  if overrides:
    slug = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", slug)
    if len(slug) > 80:
      slug = slug[:70] + "_" + hashlib.sha1(slug.encode()).hexdigest()[:8]
    name += "_" + slug
  return name


def split_overrides(argv):
  """(argv without `--config.KEY=VALUE`, {KEY: VALUE})."""
  rest, overrides = [], {}
  for arg in argv:
    if arg.startswith("--config.") and "=" in arg:
      key, value = arg[len("--config."):].split("=", 1)
      overrides[key] = value
    elif arg.startswith("--config"):
      cli.fail(f"{arg}: give config fields as --config.FIELD=VALUE")
    else:
      rest.append(arg)
  return rest, overrides


_OVERRIDES = {}


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)
  if not _RUN.value:
    cli.fail("--run is required (a training workdir or checkpoint folder)")
  try:
    evaluate_checkpoint(_RUN.value, _STEP.value, _SPLIT.value,
                        _OUT.value or "", _TOP_K.value, _OVERRIDES)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.argv, _OVERRIDES = split_overrides(sys.argv)
  app.run(main)
