"""Temporal action localization as a task of the shared training loop.

`config.task = "localization"` (configs/actionformer.py,
configs/actionformer_two_stage.py) trains an ActionFormer-style detector
(Zhang et al. 2022) -- or its two-stage, TAL-Net-style variant (Chao et al.
2018) -- through `python -m vidjax.main`, with the loop's checkpoints,
resume, metrics and data-parallel sharding (vidjax/tasks/base.py is the
interface). Its inputs are window features:

* `synthetic_untrimmed`, from pixels: the backbone is
  `config.dataset.backbone_run` (a vidjax classification run folder) or,
  when that is empty, `config.backbone` (a configs/<name>.py trained on
  synthetic_motion, `backbone.steps` steps) trained first into
  WORKDIR/backbone by the same `train_and_evaluate` (so it checkpoints and
  resumes too). Its window features (features.py: the backbone's clip of
  num_frames frames every `dataset.window_stride` frames) are cached in
  WORKDIR/features with their timing.json; the build's size settings are
  `config.dataset.synthetic` (SyntheticUntrimmedConfig fields).
* `activitynet` / `thumos14`: `config.dataset.features_dir` (pre-extracted,
  e.g. by tools/extract_features.py; vidjax/data/untrimmed_public.py).

Batches (data.pad_batch; one compiled shape): inputs [B, max_len, D],
mask, segments, labels, segment_mask, num_steps, split over `data` like the
classification clips. Train batches are a function of (seed, step): a
resumed run replays the same ones. Evaluation: every test video padded to
one length (`data.bucket_length`), detect.detect, the exact evaluator
(evaluate.detection_map: eval/average_map, eval/map@t; two-stage also
eval/ar@10_tiou0.5); the final one writes WORKDIR/eval/test_step<N>/
predictions.json (ActivityNet result JSON) and metrics.json.

Single host for now: training batches are split over the processes, but
the feature cache and the evaluation (detect.detect puts whole batches)
assume one process.
"""
from __future__ import annotations

import json
import os
import types

import jax
import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks import base, sub_run
from vidjax.tasks.localization import data as data_lib
from vidjax.tasks.localization import targets, train_step

DATASETS = ("synthetic_untrimmed", "activitynet", "thumos14")
DEVICE_KEYS = ("inputs", "mask", "segments", "labels", "segment_mask",
               "num_steps")
BACKBONE_DIR, FEATURES_DIR = "backbone", "features"


def num_levels(config) -> int:
  return int(config.model.get("num_levels", 6))


def class_names(config) -> list:
  """The classes, from the annotations only (nothing built)."""
  d = config.dataset
  if d.name == "synthetic_untrimmed":
    from vidjax.data import synthetic_render  # noqa: PLC0415
    return list(synthetic_render.MOTION_NAMES)
  from vidjax.data import untrimmed_public as up  # noqa: PLC0415
  from vidjax.tasks.localization import annotations as ann  # noqa: PLC0415
  db = up.read_database(d)
  return (ann.class_names(db, {ann.SPLIT_SUBSETS[d.name]["train"]}) or
          ann.class_names(db))


def check_backbone(config):
  """config.dataset.backbone_run / config.backbone, before anything runs."""
  sub_run.check(config.dataset.get("backbone_run", ""),
                "config.dataset.backbone_run", config.get("backbone"),
                "backbone")


def preflight(config, mesh):
  """Every localization config check (one-line VidjaxErrors naming the
  key), before any data is built or anything compiled."""
  from vidjax import optim, preflight as pf, sharding  # noqa: PLC0415
  from vidjax.config_check import check_config  # noqa: PLC0415
  check_config(config)
  d = config.dataset
  if d.name not in DATASETS:
    raise VidjaxError(f"config.dataset.name={d.name!r}: localization "
                      f"datasets are {', '.join(DATASETS)}")
  targets.check_length(int(d.get("max_len", 0)), num_levels(config),
                       "max_len")
  if int(d.get("max_segments", 0)) < 1:
    raise VidjaxError(f"config.dataset.max_segments must be >= 1, got "
                      f"{d.get('max_segments')}")
  if int(d.get("window_stride", 1)) < 1:
    raise VidjaxError(f"config.dataset.window_stride must be >= 1, got "
                      f"{d.window_stride}")
  if config.get("grad_accum_steps", 1) != 1:
    raise VidjaxError("config.grad_accum_steps: the localization step takes "
                      "whole batches (set 1)")
  if d.get("label_permutation", "none") not in LABEL_PERMUTATIONS:
    raise VidjaxError(f"config.dataset.label_permutation="
                      f"{d.label_permutation!r}: one of "
                      f"{', '.join(LABEL_PERMUTATIONS)}")
  for key in ("reg_weight", "roi_weight"):
    w = config.get("loss", {}).get(key, 1.0)
    if not isinstance(w, (int, float)) or w < 0:
      raise VidjaxError(f"config.loss.{key} must be a number >= 0, got {w!r}")
  if int(config.get("eval_chance_draws", 0)) < 0:
    raise VidjaxError("config.eval_chance_draws must be >= 0, got "
                      f"{config.eval_chance_draws}")
  if config.init_from.checkpoint_path:
    raise VidjaxError("config.init_from.checkpoint_path: not supported by "
                      "the localization task")
  optim.make_optimizer(config.optimizer,
                       optim.make_schedule(config.optimizer, 2, 1))
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  if d.name == "synthetic_untrimmed":
    check_backbone(config)
  elif not d.get("features_dir"):
    raise VidjaxError(f"config.dataset.features_dir: {d.name} trains on "
                      "pre-extracted features (tools/extract_features.py)")
  names = class_names(config)
  model = train_step.build_model(config.model, len(names))
  try:  # the model's structure (placeholder feature size: no data yet)
    jax.eval_shape(lambda: train_step.create_state(
        model, optim.make_optimizer(config.optimizer, lambda s: 0.0),
        config, jax.random.PRNGKey(0), 8, int(d.max_len)).params)
  except VidjaxError:
    raise
  except Exception as e:  # noqa: BLE001  (flax shape errors)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise VidjaxError(f"config.model: {config.model.name} cannot be built "
                      f"({first[:200]})") from None
  return pf.Preflight(names, None, model, None)


def backbone_run(config, workdir: str, log=print) -> str:
  """The backbone's run folder: config.dataset.backbone_run, or
  config.backbone trained (or resumed) in WORKDIR/backbone."""
  return sub_run.ensure(config.dataset.get("backbone_run", ""),
                        config.get("backbone"),
                        os.path.join(workdir, BACKBONE_DIR), "backbone", log)


LABEL_PERMUTATIONS = ("none", "shuffle", "derangement")


def permute_train_labels(seqs, mode: str, num_classes: int, seed: int = 0):
  """The training labels of a control run (`dataset.label_permutation`):
  "shuffle" shuffles the instances' labels among themselves (the classes
  carry no information: the detector can only reach chance), "derangement"
  maps every label c -> (c + 1) mod K (a fixed permutation of the label set
  with no fixed point: a detector that follows its labels is wrong on every
  test class). Segments, features and timing are kept."""
  if mode == "none":
    return seqs
  if mode == "shuffle":
    flat = np.random.default_rng(seed).permutation(
        np.concatenate([s.labels for s in seqs]))
  elif mode == "derangement":
    flat = (np.concatenate([s.labels for s in seqs]) + 1) % num_classes
  else:
    raise VidjaxError(f"config.dataset.label_permutation={mode!r}: one of "
                      f"{', '.join(LABEL_PERMUTATIONS)}")
  ends = np.cumsum([len(s.labels) for s in seqs])[:-1]
  return [data_lib.Sequence(s.video_id, s.inputs, s.timing, s.duration,
                            s.segments, lab.astype(np.asarray(s.labels).dtype))
          for s, lab in zip(seqs, np.split(flat, ends))]


class Localization(base.Task):
  """The Task (vidjax/tasks/base.py) of temporal action localization."""

  name = "localization"
  eval_keys = DEVICE_KEYS
  counts_flops = False

  def __init__(self):
    self.input_dim = None
    self.roi_step = None

  def preflight(self, config, mesh):
    return preflight(config, mesh)

  def load_data(self, config, workdir: str, log=print, class_names=None):
    d = config.dataset
    if d.name == "synthetic_untrimmed":
      from vidjax.tasks.localization import features  # noqa: PLC0415
      ds = data_lib.load({"name": d.name, "data_dir": d.get("data_dir", ""),
                          **dict(d.get("synthetic", {}))})
      extractor = features.FeatureExtractor(backbone_run(config, workdir,
                                                         log))
      ds = features.feature_sequences(
          ds, extractor, int(d.window_stride),
          os.path.join(workdir, FEATURES_DIR), log,
          dataset={"name": d.name, **dict(d.get("synthetic", {}))})
    else:
      ds = data_lib.load(d)
      ds["train"] = [ds["train"][i] for i in range(len(ds["train"]))]
      ds["test"] = [ds["test"][i] for i in range(len(ds["test"]))]
    if not ds["train"] or not ds["test"]:
      raise VidjaxError(f"config.dataset.name={d.name}: no train or no test "
                        "videos")
    mode = d.get("label_permutation", "none")
    if mode != "none":
      ds["train"] = permute_train_labels(ds["train"], mode,
                                         len(ds["class_names"]), config.seed)
      log(f"control: training labels permuted ({mode})")
    self.input_dim = int(np.shape(ds["train"][0].inputs)[1])
    out = types.SimpleNamespace(**{k: ds[k] for k in (
        "train", "test", "class_names", "database", "ambiguous")})
    out.name = d.name
    return out

  def loaders(self, config, pre, data, pidx: int, pcount: int):
    d = config.dataset
    train = TrainLoader(data.train, config.seed, config.batch_size,
                        int(d.max_len), int(d.max_segments), pidx, pcount)
    test = data.test
    limit = config.get("eval_max_videos", 0)
    if limit:
      test = [test[int(i)] for i in np.linspace(0, len(test) - 1, min(
          limit, len(test))).round().astype(int)]
    unit = 2 ** (num_levels(config) - 1)
    length = max(int(d.max_len),
                 data_lib.bucket_length(max(len(s) for s in test), unit))
    segs = max(int(d.max_segments), max(len(s.labels) for s in test))
    return train, EvalLoader(test, config.eval_batch_size, length, segs), test

  def create_state(self, model, tx, config, rng):
    return train_step.create_state(model, tx, config, rng, self.input_dim,
                                   int(config.dataset.max_len))

  def make_train_step(self, config, schedule):
    return train_step.make_localization_train_step(
        config, schedule, self._num_classes(config))

  def _num_classes(self, config) -> int:
    return len(class_names(config))

  def make_eval_step(self, config):
    step = train_step.make_localization_eval_step(config)
    if float(config.loss.get("reg_weight", 1.0)) > 0:
      return step

    def fixed_offsets(state, batch):  # head disabled: [t - s, t + s]
      out = step(state, batch)
      return dict(out, offsets=jax.numpy.ones_like(out["offsets"]))
    return fixed_offsets

  def evaluate(self, ctx: base.EvalContext, state, eval_step, step: int):
    from vidjax import sharding  # noqa: PLC0415
    from vidjax.tasks.localization import annotations, detect  # noqa: PLC0415
    from vidjax.tasks.localization import evaluate as ev  # noqa: PLC0415
    config, loader, data = ctx.config, ctx.eval_loader, ctx.data
    if train_step.is_two_stage(config) and self.roi_step is None:
      self.roi_step = jax.jit(train_step.make_roi_eval_step(config))
    kw = dict(batch_size=loader.batch_size,
              put=lambda b: sharding.put_batch(b, ctx.mesh))
    preds = detect.detect(state, eval_step, loader.sequences,
                          data.class_names, loader.max_len,
                          loader.max_segments, num_levels(config),
                          roi_step=self.roi_step, **kw)
    subset = annotations.SPLIT_SUBSETS[data.name]["test"]
    gt = annotations.ground_truth(
        {s.video_id: data.database[s.video_id] for s in loader.sequences},
        subset)
    thresholds = (ev.ACTIVITYNET_THRESHOLDS if data.name == "activitynet"
                  else ev.THUMOS_THRESHOLDS)
    res = ev.detection_map(gt, preds, thresholds,
                           ambiguous=data.ambiguous or None)
    result = {"eval/average_map": float(res["average_map"])}
    result.update({f"eval/map@{t:g}": float(m)
                   for t, m in zip(res["thresholds"], res["map"])})
    if train_step.is_two_stage(config):
      props = detect.proposals(state, eval_step, loader.sequences,
                               loader.max_len, loader.max_segments,
                               num_levels(config), **kw)
      result["eval/ar@10_tiou0.5"] = float(
          ev.recall_at_threshold(gt, props, 10, 0.5))
    result["eval/num_videos"] = float(len(loader.sequences))
    if step != ctx.num_steps or not ctx.is_main:
      return result, None
    draws = int(config.get("eval_chance_draws", 0))
    if draws:  # the final detections' chance level (evaluate.chance_map)
      chance = ev.chance_map(gt, preds, thresholds, draws, seed=config.seed,
                             ambiguous=data.ambiguous or None)
      result["eval/chance_average_map"] = chance["mean"]
      result["eval/chance_average_map_std"] = chance["std"]

    def record():  # the final evaluation's files
      out = os.path.join(ctx.workdir, "eval", f"test_step{step}")
      os.makedirs(out, exist_ok=True)
      ev.write_predictions(os.path.join(out, "predictions.json"), preds)
      with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({**result, "split": "test", "step": int(step),
                   "checkpoint": ctx.checkpoint_path(step)}, f, indent=1)
      return None
    return result, record

  def summary(self, config, final: dict) -> str:
    line = (f"test ({int(final.get('eval/num_videos', 0))} videos): average "
            f"mAP={final['eval/average_map']:.4f}")
    for key in ("eval/map@0.5", "eval/map@0.7", "eval/ar@10_tiou0.5"):
      if key in final:
        line += f" {key[5:]}={final[key]:.4f}"
    if "eval/chance_average_map" in final:
      line += (f" (chance level {final['eval/chance_average_map']:.4f} +- "
               f"{final['eval/chance_average_map_std']:.4f})")
    return line


class TrainLoader:
  """Training batches of whole (or randomly cropped) feature sequences; a
  function of (seed, step). This process gets its rows of the global batch."""

  def __init__(self, sequences, seed: int, global_batch: int, max_len: int,
               max_segments: int, process_index: int = 0,
               process_count: int = 1):
    self.sequences, self.seed = sequences, int(seed)
    self.global_batch, self.max_len = int(global_batch), int(max_len)
    self.max_segments = int(max_segments)
    local = self.global_batch // process_count
    self.rows = slice(process_index * local, (process_index + 1) * local)

  def batch(self, step: int) -> dict:
    rng = np.random.default_rng([self.seed, 7919, int(step)])
    n = len(self.sequences)
    idx = rng.choice(n, self.global_batch, replace=n < self.global_batch)
    items = [data_lib.random_crop(self.sequences[int(i)], self.max_len, rng)
             for i in idx][self.rows]
    batch = data_lib.pad_batch(items, self.max_len, self.max_segments)
    return {k: batch[k] for k in DEVICE_KEYS}

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """The test sequences, padded to one length; batch(0) gives the eval
  step's compiled shapes (detect.batches makes the real ones)."""

  def __init__(self, sequences, batch_size: int, max_len: int,
               max_segments: int):
    self.sequences, self.batch_size = sequences, int(batch_size)
    self.max_len, self.max_segments = int(max_len), int(max_segments)

  def batch(self, index: int) -> dict:
    from vidjax.tasks.localization import detect  # noqa: PLC0415
    batch, _ = next(detect.batches(self.sequences, self.batch_size,
                                   self.max_len, self.max_segments))
    return {k: batch[k] for k in DEVICE_KEYS}
