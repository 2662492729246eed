"""Multi-view evaluation: clips x crops per test video, logits averaged.

Reports clip-level (`eval/clip_top1`, `eval/clip_top5`) and video-level
(`eval/top1`, `eval/top5`, from the mean logits of each video's views)
accuracy, and the clip-level cross-entropy `eval/loss`.

Per-video predictions with class names: `predict_videos` (each video's
softmax probabilities averaged over its views), `format_predictions` (one
line per video: path, true class, top-k classes with probabilities) and
`write_class_names` (WORKDIR/class_names.json, one name per label id).

Per-class results (`class_report`, from the video-level predictions that
`eval/top1` scores: the argmax of each video's mean view logits): the
confusion matrix (rows: true class, columns: predicted), per-class top-1 and
the mean class accuracy, i.e. the mean over the classes that have test
videos of their top-1, the metric UCF-101 and HMDB-51 results report
(Soomro et al. 2012; Kuehne et al. 2011). `write_outputs` writes one
evaluation's files into a folder, the same for the training's final
evaluation (vidjax/train.py) and `tools/evaluate.py`:

| file | what |
|---|---|
| `predictions.jsonl` | one line per video: `video` (path or test index), `label`, `label_name`, `top_k` (class, index, probability), `probabilities` (every class; softmax of the mean view logits) |
| `metrics.json` | `top1`, `top5`, `clip_top1`, `mean_class_accuracy`, `per_class` (name, videos, top1), `num_videos`, `step`, `split`, `checkpoint` |
| `confusion.json`, `confusion.png` | the confusion matrix (counts) and its figure (vidjax/run_record.py) |
"""
import dataclasses
import json
import os
from typing import Iterable, Optional, Sequence

import jax
import numpy as np

from vidjax import sharding
from vidjax.config_check import is_remote, remote_path
from vidjax.data.pipeline import EvalLoader


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  k = min(k, logits.shape[-1])
  top = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
  return (top == labels[:, None]).any(axis=-1)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  z = logits - logits.max(-1, keepdims=True)
  logz = np.log(np.exp(z).sum(-1))
  return logz - z[np.arange(len(labels)), labels]


def predict(state, eval_step, loader: EvalLoader, mesh, num_workers: int = 4,
            prefetch: int = 4):
  """Logits and labels of every test view, in view order (padding dropped)."""
  return _predict_batches(state, eval_step,
                          loader.iterate(num_workers, prefetch), mesh)


def _predict_batches(state, eval_step, batches: Iterable[dict], mesh):
  outputs = []
  for batch in batches:
    arrays = sharding.put_batch(batch, mesh)
    # Keep the device arrays; fetch once at the end (no per-batch host sync).
    outputs.append((eval_step(state, {"video": arrays["video"]}),
                    arrays["label"], arrays["mask"]))
  logits, labels, mask = (np.concatenate([sharding.to_host(o[i])
                                          for o in outputs])
                          for i in range(3))
  keep = mask > 0
  return logits[keep], labels[keep]


def multiview_metrics(logits: np.ndarray, labels: np.ndarray,
                      views_per_video: int) -> dict:
  """Clip- and video-level metrics from per-view logits in video-major order."""
  videos = logits.reshape(-1, views_per_video, logits.shape[-1]).mean(1)
  video_labels = labels[::views_per_video]
  return {
      "eval/loss": float(cross_entropy(logits, labels).mean()),
      "eval/clip_top1": float(topk_correct(logits, labels, 1).mean()),
      "eval/clip_top5": float(topk_correct(logits, labels, 5).mean()),
      "eval/top1": float(topk_correct(videos, video_labels, 1).mean()),
      "eval/top5": float(topk_correct(videos, video_labels, 5).mean()),
      "eval/num_videos": float(len(video_labels)),
  }


def evaluate(state, eval_step, loader: EvalLoader, mesh, **kwargs) -> dict:
  logits, labels = predict(state, eval_step, loader, mesh, **kwargs)
  return multiview_metrics(logits, labels, loader.views_per_video)


def video_logits(logits: np.ndarray, views_per_video: int) -> np.ndarray:
  """[videos, classes]: the mean of each video's view logits."""
  return logits.reshape(-1, views_per_video, logits.shape[-1]).mean(1)


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """[true, predicted] counts (int64)."""
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (np.asarray(labels, int), np.asarray(predicted, int)), 1)
  return out


def class_report(confusion: np.ndarray) -> dict:
  """Per-class top-1 (None for a class with no videos) and their mean over
  the classes that have videos (`mean_class_accuracy`)."""
  counts = confusion.sum(1)
  per_class = [float(confusion[i, i] / n) if n else None
               for i, n in enumerate(counts)]
  present = [a for a in per_class if a is not None]
  return {"per_class_top1": per_class, "videos_per_class": counts.tolist(),
          "mean_class_accuracy": float(np.mean(present)) if present else 0.0}


def full_evaluation(state, eval_step, loader: EvalLoader, mesh,
                    **kwargs) -> tuple:
  """(metrics + `eval/mean_class_accuracy`, view logits, view labels)."""
  logits, labels = predict(state, eval_step, loader, mesh, **kwargs)
  views = loader.views_per_video
  metrics = multiview_metrics(logits, labels, views)
  confusion = confusion_matrix(video_logits(logits, views).argmax(-1),
                               labels[::views], logits.shape[-1])
  metrics["eval/mean_class_accuracy"] = class_report(confusion)[
      "mean_class_accuracy"]
  return metrics, logits, labels


def _name(class_names: Sequence[str], i: int) -> str:
  return str(class_names[i]) if i < len(class_names) else f"#{int(i)}"


def write_outputs(out_dir: str, logits: np.ndarray, labels: np.ndarray,
                  views_per_video: int, class_names: Sequence[str] = (),
                  paths: Optional[Sequence[str]] = None, top_k: int = 5,
                  info: Optional[dict] = None) -> dict:
  """Writes predictions.jsonl, metrics.json, confusion.json/.png into
  `out_dir` (module docstring; process 0 writes); returns metrics.json's
  content plus `confusion` (the matrix) and `figure` (RGB uint8)."""
  from vidjax import run_record  # noqa: PLC0415  (matplotlib: only here)
  views = views_per_video
  num_classes = logits.shape[-1]
  mean = video_logits(logits, views)  # as multiview_metrics: same argmax
  probs, video_labels = softmax(mean.astype(np.float64)), labels[::views]
  confusion = confusion_matrix(mean.argmax(-1), video_labels, num_classes)
  report = class_report(confusion)
  metrics = multiview_metrics(logits, labels, views)
  summary = dict(info or {})
  summary.update({
      "top1": metrics["eval/top1"], "top5": metrics["eval/top5"],
      "clip_top1": metrics["eval/clip_top1"], "loss": metrics["eval/loss"],
      "mean_class_accuracy": report["mean_class_accuracy"],
      "num_videos": int(len(video_labels)), "views_per_video": int(views),
      "per_class": [{"class": _name(class_names, i), "videos": int(n),
                     "top1": a} for i, (n, a) in enumerate(zip(
                         report["videos_per_class"],
                         report["per_class_top1"]))]})
  if jax.process_index() != 0:
    return dict(summary, confusion=confusion, figure=None)
  figure = run_record.confusion_figure(
      confusion, class_names, title=f"{summary.get('split', 'test')} "
      f"step {summary.get('step', '?')}: top-1 {summary['top1']:.3f}, mean "
      f"class {summary['mean_class_accuracy']:.3f}")
  _makedirs(out_dir)
  with _open(os.path.join(out_dir, "predictions.jsonl")) as f:
    for v, (p, label) in enumerate(zip(probs, video_labels)):
      order = np.argsort(-p, kind="stable")[:top_k]
      f.write(json.dumps({
          "video": (str(paths[v]) if paths is not None and v < len(paths)
                    else v),
          "label": int(label), "label_name": _name(class_names, label),
          "top_k": [{"class": _name(class_names, c), "index": int(c),
                     "probability": round(float(p[c]), 6)} for c in order],
          "probabilities": [round(float(x), 6) for x in p]}) + "\n")
  with _open(os.path.join(out_dir, "metrics.json")) as f:
    json.dump(summary, f, indent=1)
  with _open(os.path.join(out_dir, "confusion.json")) as f:
    json.dump({"class_names": [_name(class_names, i)
                               for i in range(num_classes)],
               "rows_true_columns_predicted": confusion.tolist()}, f)
  run_record.save_png(figure, os.path.join(out_dir, "confusion.png"))
  return dict(summary, confusion=confusion, figure=figure)


def _makedirs(path: str):
  if is_remote(path):
    remote_path(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)


def _open(path: str, mode: str = "w"):
  return remote_path(path).open(mode) if is_remote(path) else open(path, mode)


CLASS_NAMES_FILE = "class_names.json"


def write_class_names(workdir: str, class_names: Sequence[str]) -> str:
  """Writes WORKDIR/class_names.json: a JSON list, the name of label id i at
  index i (process 0 writes; others return the path). Returns the path."""
  path = os.path.join(workdir, CLASS_NAMES_FILE)  # keeps gs://
  if jax.process_index() == 0:
    with (remote_path(path).open("w") if is_remote(path)
          else open(path, "w")) as f:
      json.dump([str(n) for n in class_names], f, indent=0)
  return path


@dataclasses.dataclass
class VideoPredictions:
  videos: np.ndarray  # [V] test video index (position in the test split)
  probs: np.ndarray   # [V, classes] softmax probabilities, mean over views
  labels: np.ndarray  # [V] true label ids


def softmax(logits: np.ndarray) -> np.ndarray:
  z = np.exp(logits - logits.max(-1, keepdims=True))
  return z / z.sum(-1, keepdims=True)


def video_probabilities(logits: np.ndarray, labels: np.ndarray,
                        views_per_video: int) -> VideoPredictions:
  """Per-video mean-over-views probabilities from video-major view logits."""
  probs = softmax(logits.astype(np.float64)).reshape(
      -1, views_per_video, logits.shape[-1]).mean(1)
  return VideoPredictions(np.arange(len(probs)), probs,
                          labels[::views_per_video])


def predict_videos(state, eval_step, loader: EvalLoader, mesh,
                   count: Optional[int] = None, num_workers: int = 4,
                   prefetch: int = 4) -> VideoPredictions:
  """Predictions for the first `count` test videos (None: all), running only
  the eval batches that hold their views. Every process must call it (the
  batches are global arrays)."""
  num_videos = len(loader.source)
  count = num_videos if count is None else min(int(count), num_videos)
  views = count * loader.views_per_video
  if count == num_videos:
    logits, labels = predict(state, eval_step, loader, mesh, num_workers,
                             prefetch)
  else:
    batches = (loader.batch(b)
               for b in range(-(-views // loader.global_batch)))
    logits, labels = _predict_batches(state, eval_step, batches, mesh)
  return video_probabilities(logits[:views], labels[:views],
                             loader.views_per_video)


def format_predictions(predictions: VideoPredictions,
                       class_names: Sequence[str] = (),
                       paths: Optional[Sequence[str]] = None,
                       top: int = 3) -> str:
  """One line per video: index, path, true class and the `top` predicted
  classes with their probabilities, e.g.
  `test video 0 (cat/cat4.mp4): true 'cat'; predicted 'cat' 0.912, 'dog'
  0.088`. Label ids stand in for missing names."""
  def name(i: int) -> str:
    return repr(str(class_names[i])) if i < len(class_names) else f"#{i}"

  lines = []
  for video, probs, label in zip(predictions.videos, predictions.probs,
                                 predictions.labels):
    order = np.argsort(-probs, kind="stable")[:top]
    where = f" ({paths[video]})" if paths is not None and video < len(
        paths) else ""
    shown = ", ".join(f"{name(int(c))} {probs[c]:.3f}" for c in order)
    lines.append(f"test video {int(video)}{where}: true {name(int(label))}; "
                 f"predicted {shown}")
  return "\n".join(lines)
