"""Audio-visual classification and synchronisation as a task of the loop.

`config.task = "audio_visual"` (configs/mbt.py, configs/ast.py) trains AST
(Gong et al., Interspeech 2021) or MBT and its fusion baselines (Nagrani et
al., NeurIPS 2021; vidjax/models/audio_visual.py) through
`python -m vidjax.main`, with the loop's checkpoints, resume, metric windows
and data-parallel batches (vidjax/tasks/base.py is the interface).

* `config.objective`: "classification" (the dataset's labels; softmax
  top-1, and for multi-label data -- AudioSet -- sigmoid outputs scored by
  mAP, vidjax/audio/metrics.py), "sync" (Owens & Efros, ECCV 2018:
  aligned vs shifted audio, 2 classes, accuracy; the loader's pairs),
  "voice" (synthetic_av: the sounding object's colour class, which its
  pitch band tells: AST's sanity task and MBT's audio pretraining) or
  "looks" (synthetic_av: the two objects' colour classes, left and right,
  16 classes: MBT's video pretraining; data.py).
* Batches: {video uint8, audio float32 waveform, label}; the log-mel front
  end (`config.audio_frontend`, a vidjax.audio.frontend.LogMelConfig) runs
  inside the jitted step and is recorded with the run (config.json, the
  checkpoints' meta, and the final metrics.json).
* Data (`load`): synthetic_av in memory, or the user's AudioSet /
  VGGSound clips (config.dataset.name "audioset" / "vggsound", manual_dir,
  csv, test_csv, class_labels, untrimmed, fps, clip_seconds, resize_short,
  audio.sample_rate: vidjax/data/audioset.py), built once and read per
  batch; clips missing, corrupt or without audio are counted and named in
  the build report (printed, and vidjax_report.txt beside the build), not
  fatal. AudioSet's targets are its multi-hot labels (sigmoid loss).
* Evaluation: every test example once -> eval/top1 (multi-label data:
  eval/map, AudioSet's mAP over the classes with a positive, and eval/mauc,
  the mean ROC AUC over the classes with positives and negatives; both
  vidjax/audio/metrics.py); for bottleneck MBT also eval/top1_zero_bottlenecks
  (the same parameters with the bottleneck tokens zeroed at every fusion
  layer: no information crosses the modalities). The final evaluation
  writes WORKDIR/eval/test_step<N>/metrics.json and predictions.jsonl.

Single host for evaluation (every eval batch is put whole), like the
localization and detection tasks.
"""
from __future__ import annotations

import functools
import json
import os
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.audio_visual import data as data_lib, train_step

MODELS = ("mbt", "ast", "av_sync")
SYNC_NAMES = ("shifted", "aligned")
# Datasets whose class lists are known without building them.
NUM_CLASSES = {"audioset": 527, "vggsound": 309}


def class_names(config) -> list:
  """The label names, read without building any data (AudioSet / VGGSound:
  from config.dataset's CSVs; without a manual_dir, as for
  tools.model_table, the full datasets' class counts)."""
  objective = config.get("objective", "classification")
  if objective == "sync":
    return list(SYNC_NAMES)
  d = config.dataset
  if objective == "voice":
    from vidjax.data import av_render  # noqa: PLC0415
    return list(av_render.COLOUR_NAMES)
  if objective == "looks":  # data.looks: 4 x left colour + right colour
    from vidjax.data import av_render  # noqa: PLC0415
    return [f"{a}|{b}" for a in av_render.COLOUR_NAMES
            for b in av_render.COLOUR_NAMES]
  if d.name == "synthetic_av":
    from vidjax.data import av_render  # noqa: PLC0415
    return list(av_render.class_names(d.get("config", "fusion")))
  if d.name in NUM_CLASSES and not d.get("manual_dir", ""):
    return [str(i) for i in range(NUM_CLASSES[d.name])]
  if d.name in NUM_CLASSES:
    from vidjax.data import listing  # noqa: PLC0415
    data_lib.check_user_data(d)
    root = listing.existing_dir(d.manual_dir, "manual_dir")
    key, default = data_lib.FILES[d.name][0]
    path = listing.find_file(d.get(key, "") or default, key, root)
    return list(_csv_class_names(d.name, path, os.path.getmtime(path)))
  raise VidjaxError(f"config.dataset.name={d.name!r}: audio-visual "
                    "datasets are synthetic_av, audioset and vggsound")


@functools.lru_cache(maxsize=4)
def _csv_class_names(name: str, path: str, mtime: float) -> tuple:
  """AudioSet's class_labels_indices.csv display names, or VGGSound's
  sorted labels (vidjax/data/audioset.py), read once per file version."""
  del mtime  # the cache key
  from vidjax.data import audioset  # noqa: PLC0415
  if name == "audioset":
    return tuple(audioset.read_class_labels(path)[1])
  return tuple(audioset.read_vggsound(path)[0])


def num_classes(config) -> int:
  return len(class_names(config))


def _frontend(config):
  from vidjax.audio import frontend  # noqa: PLC0415
  if "audio_frontend" not in config:
    raise VidjaxError("config.audio_frontend is missing (LogMelConfig "
                      "fields, vidjax/audio/frontend.py)")
  try:
    return frontend.LogMelConfig.from_dict(dict(config.audio_frontend))
  except VidjaxError as e:  # "audio.<field>: ..." -> the config key
    raise VidjaxError(f"config.audio_frontend.{str(e)[len('audio.'):]}"
                      if str(e).startswith("audio.") else str(e)) from None


def preflight(config, mesh):
  """Every audio-visual config check (one-line VidjaxErrors naming the
  key), before any data is built or anything compiled."""
  from vidjax import optim, preflight as pf, registry, sharding  # noqa
  from vidjax.config_check import check_config  # noqa: PLC0415
  check_config(config)
  m, d = config.model, config.dataset
  if m.get("name") not in MODELS:
    raise VidjaxError(f"config.model.name={m.get('name')!r}: the "
                      f"audio_visual task trains {', '.join(MODELS)}")
  data_lib.check(config)
  c = _frontend(config)
  if int(c.sample_rate) != int(d.get("sample_rate", c.sample_rate)):
    raise VidjaxError(f"config.audio_frontend.sample_rate={c.sample_rate} "
                      f"differs from config.dataset.sample_rate="
                      f"{d.sample_rate}")
  norm = config.get("audio_normalization", None)
  if norm is None or len(norm) != 2 or float(norm[1]) <= 0:
    raise VidjaxError(f"config.audio_normalization={norm!r}: (mean, std) "
                      "with std > 0")
  if config.get("grad_accum_steps", 1) != 1:
    raise VidjaxError("config.grad_accum_steps: the audio_visual step takes "
                      "whole batches (set 1)")
  optim.make_optimizer(config.optimizer,
                       optim.make_schedule(config.optimizer, 2, 1))
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  names = class_names(config)
  model = registry.build_model(m, len(names))
  model.check_options()
  frames, mels = train_step.spectrogram_shape(config)
  spec = jnp.zeros((1, frames, mels))
  args = (spec,)
  if train_step.uses_video(config):
    video = jnp.zeros((1, d.num_frames, d.crop_size, d.crop_size, 3))
    args = (video, spec)
  try:  # the model's structure, traced (no compile)
    abstract = jax.eval_shape(lambda: model.init(
        {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
        *args))["params"]
  except VidjaxError:
    raise
  except Exception as e:  # noqa: BLE001  (flax shape errors)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise VidjaxError(f"config.model: {m.name} cannot be built for "
                      f"{d.num_frames}x{d.crop_size}^2 clips and "
                      f"{frames}x{mels} log-mels ({first[:200]})") from None
  return pf.Preflight(names, None, model, abstract)


class AudioVisual(base.Task):
  """The Task (vidjax/tasks/base.py) of audio-visual classification and
  synchronisation."""

  name = "audio_visual"
  eval_keys = data_lib.EVAL_KEYS
  counts_flops = False

  def preflight(self, config, mesh):
    return preflight(config, mesh)

  def load_data(self, config, workdir: str, log=print, class_names=None):
    got = load(config)
    if not len(got.train) or not len(got.test):
      raise VidjaxError(f"config.dataset.name={config.dataset.name}: no "
                        "train or no test examples")
    if class_names is not None and len(got.class_names) != len(class_names):
      raise VidjaxError(f"config.dataset.name={config.dataset.name}: the "
                        f"data has {len(got.class_names)} classes, the model "
                        f"was checked with {len(class_names)}")
    return got

  def loaders(self, config, pre, data, pidx: int, pcount: int):
    from vidjax.data import av_loader  # noqa: PLC0415
    spec = av_loader.AVSpec.from_config(config.dataset, data.sample_rate)
    train = av_loader.TrainLoader(data.train, spec, config.seed,
                                  config.batch_size, pidx, pcount,
                                  data.flip_permutation)
    test = av_loader.EvalLoader(data.test, spec, config.eval_batch_size,
                                config.seed)
    return (data_lib.TrainLoader(train, config),
            data_lib.EvalLoader(test, config), data.test)

  def create_state(self, model, tx, config, rng):
    return train_step.create_state(model, tx, config, rng)

  def make_train_step(self, config, schedule):
    return train_step.make_train_step(config, schedule)

  def make_eval_step(self, config):
    return train_step.make_eval_step(config)

  def evaluate(self, ctx: base.EvalContext, state, eval_step, step: int):
    from vidjax import sharding  # noqa: PLC0415
    outs, labels = {}, []
    for batch in ctx.eval_loader.iterate():
      got = jax.device_get(eval_step(state, sharding.put_batch(
          {k: batch[k] for k in data_lib.EVAL_KEYS}, ctx.mesh)))
      valid = batch["valid"]
      for k, v in got.items():
        outs.setdefault(k, []).append(np.asarray(v)[valid])
      labels.append(batch["label"][valid])
    outs = {k: np.concatenate(v) for k, v in outs.items()}
    labels = np.concatenate(labels)
    result = scores(outs, labels, multi=labels.ndim == 2)
    if step != ctx.num_steps or not ctx.is_main:
      return result, None

    def record():  # the final evaluation's files
      write_final(ctx, step, result, outs["logits"], labels)
      return None
    return result, record

  def summary(self, config, final: dict) -> str:
    n = int(final.get("eval/num_examples", 0))
    if "eval/map" in final:
      return f"test ({n} clips): mAP={final['eval/map']:.4f}"
    text = f"test ({n} clips): top1={final['eval/top1']:.4f}"
    if "eval/top1_zero_bottlenecks" in final:
      text += (" (bottlenecks zeroed: "
               f"{final['eval/top1_zero_bottlenecks']:.4f})")
    return text


def scores(outs: dict, labels: np.ndarray, multi: bool) -> dict:
  """eval/* metrics of the test logits (module docstring)."""
  result = {"eval/num_examples": float(len(labels))}
  if multi:
    from vidjax.audio import metrics  # noqa: PLC0415
    y, logits = np.asarray(labels) > 0.5, outs["logits"]
    result["eval/map"] = float(metrics.mean_average_precision(y, logits))
    both = np.flatnonzero(y.any(0) & (~y).any(0))
    if len(both):
      result["eval/mauc"] = float(np.mean([metrics.roc_auc(
          y[:, k], logits[:, k]) for k in both]))
    return result
  for key, name in (("logits", "eval/top1"),
                    ("logits_zero", "eval/top1_zero_bottlenecks")):
    if key in outs:
      result[name] = float(np.mean(np.argmax(outs[key], -1) == labels))
  return result


def write_final(ctx, step: int, result: dict, logits, labels):
  """WORKDIR/eval/test_step<N>/{metrics.json, predictions.jsonl}."""
  out = os.path.join(ctx.workdir, "eval", f"test_step{step}")
  os.makedirs(out, exist_ok=True)
  config = ctx.config
  with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({**result, "split": "test", "step": int(step),
               "objective": config.get("objective", "classification"),
               "model": config.model.name,
               "fusion": config.model.get("fusion", None),
               "audio_frontend": _frontend(config).to_dict(),
               "checkpoint": ctx.checkpoint_path(step)}, f, indent=1)
  probs = jax.nn.softmax(jnp.asarray(logits), -1) if labels.ndim == 1 else \
      jax.nn.sigmoid(jnp.asarray(logits))
  with open(os.path.join(out, "predictions.jsonl"), "w") as f:
    for i, (p, y) in enumerate(zip(np.asarray(probs), labels)):
      f.write(json.dumps({"index": i, "label": np.asarray(y).tolist(),
                          "probabilities": [round(float(v), 6)
                                            for v in p]}) + "\n")


class _WithLogMel(nn.Module):
  """MBT as a one-input module for tools.model_table: (video) -> logits,
  the log-mel a zero array of the configured shape (parameters and
  multiply-adds do not depend on its values)."""
  model: nn.Module
  spec_shape: tuple

  def __call__(self, video, *, train: bool = False):
    spec = jnp.zeros((video.shape[0],) + tuple(self.spec_shape), video.dtype)
    return self.model(video, spec, train=train)


def configured_model(config):
  """(model, input shape without batch) for tools.model_table: AST takes
  the log-mel [frames, mels]; MBT the clip [T, H, W, 3] (`_WithLogMel`)."""
  from vidjax import registry  # noqa: PLC0415
  model = registry.build_model(config.model, num_classes(config))
  spec = train_step.spectrogram_shape(config)
  if not train_step.uses_video(config):
    return model, spec
  d = config.dataset
  return _WithLogMel(model, spec), (d.num_frames, d.crop_size, d.crop_size,
                                    3)


def load(config):
  """The dataset's splits (vidjax/data/av_loader.py): synthetic_av in
  memory; the user's AudioSet / VGGSound clips built once (TFDS, under
  config.dataset.data_dir) and read per batch, the build report printed."""
  d = config.dataset
  if d.name != "synthetic_av" and d.name not in NUM_CLASSES:
    raise VidjaxError(f"config.dataset.name={d.name!r}: the audio_visual "
                      "task reads synthetic_av, audioset and vggsound")
  if d.name in NUM_CLASSES:
    data_lib.check_user_data(d)  # before listing or building anything
  from vidjax.data import av_loader  # noqa: PLC0415
  got = av_loader.load(d, skip=("stems",))  # no step here reads them
  samples = got.train.num_samples
  if samples != int(d.audio_samples):
    raise VidjaxError(f"config.dataset.audio_samples={d.audio_samples}: the "
                      f"build's clips have {samples} samples")
  if got.sample_rate != int(config.audio_frontend.sample_rate):
    raise VidjaxError(f"config.audio_frontend.sample_rate="
                      f"{config.audio_frontend.sample_rate}: the build is "
                      f"{got.sample_rate} Hz")
  got.class_names = (class_names(config) if d.name == "synthetic_av"
                     else list(got.class_names))
  return got
