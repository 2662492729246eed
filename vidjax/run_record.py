"""A record of each run: its resolved config, and TensorBoard beyond scalars.

* `write_config(workdir, config)`: WORKDIR/config.json, the resolved config
  (every default and command-line override applied) as indented JSON; the
  class names go to WORKDIR/class_names.json (vidjax/evaluate.py).
* `record_start(writer, config, batch, class_names, step)`, once when a run
  starts: TensorBoard's text tab gets the config as a table
  (`config/fields`), the HParams tab its scalar fields (the hparams plugin,
  `tensorboard.plugins.hparams.api.hparams`), and the image tab the first
  training batch's clips as they enter the model (`train/sample_clips`: one
  row of frames per clip, after augmentation, titled by class), as the
  TensorBoard guide's "Displaying image data" writes image summaries.
* `confusion_figure(confusion, class_names)`: the confusion matrix drawn
  with matplotlib (rows: true class; shares of each row, counts in the
  cells for small matrices) as an RGB array: written as confusion.png by
  `evaluate.write_outputs` and as the `eval/confusion_matrix` image at each
  evaluation. Nothing here runs in the per-step path.
"""
import json
import math
import os
from typing import Sequence

import numpy as np

from vidjax.config_check import is_remote, remote_path
from vidjax.tb_events import png

CONFIG_FILE = "config.json"
MAX_CLIPS, MAX_FRAMES = 8, 16  # sample clips shown: rows x frames


def write_config(workdir: str, config) -> str:
  """WORKDIR/config.json (process 0 writes); returns the path."""
  import jax  # noqa: PLC0415
  path = os.path.join(workdir, CONFIG_FILE)
  if jax.process_index() == 0:
    text = config.to_json_best_effort(indent=1, sort_keys=True)
    with (remote_path(path).open("w") if is_remote(path)
          else open(path, "w")) as f:
      f.write(text + "\n")
  return path


def flat_fields(config) -> dict:
  """{"dataset.crop_size": 32, ...}: every leaf, tuples/lists as text."""
  tree = json.loads(config.to_json_best_effort())
  out = {}

  def walk(node, prefix):
    for key, value in sorted(node.items()):
      name = f"{prefix}{key}"
      if isinstance(value, dict):
        walk(value, name + ".")
      elif isinstance(value, (bool, int, float, str)):
        out[name] = value
      else:
        out[name] = json.dumps(value)
  walk(tree, "")
  return out


def config_markdown(config) -> str:
  lines = ["| field | value |", "|---|---|"]
  lines += [f"| {k} | {str(v).replace('|', '/')} |"
            for k, v in flat_fields(config).items()]
  return "\n".join(lines)


def _display(frames: np.ndarray) -> np.ndarray:
  """[T, H, W, C] uint8 -> RGB: flow (2 channels, 128 = 0) as (u, v, 128);
  RGB + flow: the RGB."""
  if frames.shape[-1] == 2:
    return np.concatenate([frames, np.full_like(frames[..., :1], 128)], -1)
  return frames[..., :3]


def _scale(image: np.ndarray, short: int) -> np.ndarray:
  """Nearest-neighbour upscaling of small frames, striding of large ones, so
  the short side is about `short` px."""
  side = min(image.shape[-3:-1])
  if side < short:
    k = math.ceil(short / side)
    return image.repeat(k, -3).repeat(k, -2)
  k = side // short
  return image[..., ::k, ::k, :] if k > 1 else image


def clip_grid(videos: np.ndarray, titles: Sequence[str] = (),
              short: int = 64) -> np.ndarray:
  """RGB uint8 image: one row of frames per clip (at most MAX_CLIPS x
  MAX_FRAMES), a title strip above each row."""
  from PIL import Image, ImageDraw  # noqa: PLC0415
  videos = np.asarray(videos)[:MAX_CLIPS]
  frames = videos.shape[1]
  videos = videos[:, ::max(1, math.ceil(frames / MAX_FRAMES))]
  rows = []
  for i, clip in enumerate(videos):
    clip = _scale(_display(clip), short)
    strip = np.concatenate(list(np.pad(clip, ((0, 0), (0, 0), (0, 2), (0, 0)))),
                           1)
    label = Image.new("RGB", (strip.shape[1], 12), (255, 255, 255))
    if i < len(titles):
      ImageDraw.Draw(label).text((2, 0), str(titles[i]), fill=(0, 0, 0))
    rows.append(np.concatenate([np.asarray(label), strip], 0))
  return np.concatenate(rows, 0)


def record_start(writer, config, batch: dict, class_names: Sequence[str],
                 step: int):
  """The config (text, hparams) and the first batch's clips to TensorBoard."""
  labels = np.asarray(batch["label"])
  if labels.ndim == 2:  # mixup / cutmix: the larger share
    labels = labels.argmax(-1)
  titles = [str(class_names[int(c)]) if int(c) < len(class_names) else
            f"#{int(c)}" for c in labels[:MAX_CLIPS]]
  writer.write_text(step, "config/fields", config_markdown(config))
  writer.write_hparams(flat_fields(config))
  writer.write_image(step, "train/sample_clips",
                     clip_grid(batch["video"], titles))


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str] = (),
                     title: str = "") -> np.ndarray:
  """The confusion matrix as an RGB uint8 image (matplotlib, Agg)."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  from matplotlib import figure as mpl_figure  # noqa: PLC0415
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
  k = confusion.shape[0]
  rows = confusion.sum(1, keepdims=True)
  shares = confusion / np.maximum(rows, 1)
  size = min(4.0 + 0.35 * k, 24.0)
  fig = mpl_figure.Figure(figsize=(size + 1.5, size), dpi=80)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  im = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
  names = [str(class_names[i]) if i < len(class_names) else f"#{i}"
           for i in range(k)]
  if k <= 60:
    ax.set_xticks(range(k), names, rotation=90, fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
  if k <= 20:
    for i in range(k):
      for j in range(k):
        if confusion[i, j]:
          ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center",
                  fontsize=7, color="white" if shares[i, j] > 0.5 else "black")
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.canvas.draw()
  return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def eval_record(workdir: str, step: int, final: bool, last: dict, views: int,
                class_names: Sequence[str], paths, checkpoint: str):
  """An evaluation's confusion figure (process 0; None elsewhere) from its
  view logits/labels (`last`); the final one also writes WORKDIR/eval/
  test_step<N>/ (vidjax/evaluate.write_outputs)."""
  import jax  # noqa: PLC0415
  from vidjax import evaluate  # noqa: PLC0415
  logits, labels = last["logits"], last["labels"]
  if final:
    return evaluate.write_outputs(
        os.path.join(workdir, "eval", f"test_step{step}"), logits, labels,
        views, class_names, paths, info={"split": "test", "step": int(step),
                                         "checkpoint": checkpoint})["figure"]
  if jax.process_index() != 0:
    return None
  mean = evaluate.video_logits(logits, views)
  confusion = evaluate.confusion_matrix(mean.argmax(-1), labels[::views],
                                        logits.shape[-1])
  report = evaluate.class_report(confusion)
  return confusion_figure(confusion, class_names, title=(
      f"test step {step}: mean class accuracy "
      f"{report['mean_class_accuracy']:.3f}"))


def save_png(image: np.ndarray, path: str) -> str:
  with (remote_path(path).open("wb") if is_remote(path)
        else open(path, "wb")) as f:
    f.write(png(image))
  return path
