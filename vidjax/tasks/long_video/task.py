"""Untrimmed-video classification with clip samplers, in the shared loop.

`config.task = "long_video"` (configs/scsampler.py) runs SCSampler (Korbar
et al., ICCV 2019) through `python -m vidjax.main`:

1. the data: `synthetic_untrimmed` built with `config.dataset.synthetic`
   (SyntheticUntrimmedConfig fields; the config's single-action setting: one
   action instance, so one label, per long video, ~10-25% of its frames);
2. the expensive clip classifier: `config.classifier_run` (a vidjax
   classification run folder) or, when empty, `config.classifier`
   (configs/<name>.py trained on synthetic_motion -- the same motion classes,
   rendered as the long videos' actions -- for `classifier.steps` steps)
   trained first into WORKDIR/classifier by the same `train_and_evaluate`
   (checkpoints, resume), as the localization task trains its backbone;
3. every candidate clip of every video (clips.py): `long_video.
   num_candidates` clips spread evenly, their usefulness from the ground
   truth, the sampler's cheap inputs, and on the test videos the classifier's
   probabilities, cached in WORKDIR/clips;
4. the loop trains the cheap sampler (saliency.SaliencyMLP, `config.model`)
   on the training videos' candidates, binary cross-entropy against
   usefulness (checkpoints, resume, metrics, batch split over the devices);
5. every evaluation scores all test clips with the sampler and reports
   evaluate.strategies (dense, uniform-k, random-k, scsampler-k for k in
   `long_video.ks`, oracle): video accuracy, classifier clips and
   multiply-adds, the sampler's ROC-AUC; the final one writes WORKDIR/eval/
   test_step<N>/metrics.json and table.txt and prints the table.

The audio-preview sampler (Listen to Look, Gao et al. CVPR 2020) is left to
the audio-visual issue (#22): no audio model has landed. Single host: the
clip cache and the evaluation run in one process.
"""
from __future__ import annotations

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vidjax.errors import VidjaxError
from vidjax.tasks import base, sub_run
from vidjax.tasks.long_video import evaluate as ev
from vidjax.tasks.long_video import saliency, samplers

DATASETS = ("synthetic_untrimmed",)
CLASSIFIER_DIR, CLIPS_DIR = "classifier", "clips"
DEVICE_KEYS = ("inputs", "useful")


def class_names(config) -> list:
  from vidjax.data import synthetic_render  # noqa: PLC0415
  return list(synthetic_render.MOTION_NAMES)


def check_classifier(config):
  """config.classifier_run / config.classifier, before anything runs."""
  sub_run.check(config.get("classifier_run", ""), "config.classifier_run",
                config.get("classifier"), "classifier")


def preflight(config, mesh):
  """Every config check (one-line VidjaxErrors naming the key) before any
  data is built or anything compiled."""
  from vidjax import optim, preflight as pf, sharding  # noqa: PLC0415
  from vidjax.config_check import check_config  # noqa: PLC0415
  from vidjax.data import synthetic_untrimmed as su  # noqa: PLC0415
  check_config(config)
  d, lv = config.dataset, config.get("long_video")
  if d.name not in DATASETS:
    raise VidjaxError(f"config.dataset.name={d.name!r}: long_video datasets "
                      f"are {', '.join(DATASETS)}")
  su.make_config(**dict(d.get("synthetic", {})))  # its field checks
  if lv is None:
    raise VidjaxError("config.long_video is missing (num_candidates, ks, "
                      "sampler_res)")
  n = int(lv.num_candidates)
  if n < 1:
    raise VidjaxError(f"config.long_video.num_candidates must be >= 1, got "
                      f"{lv.num_candidates}")
  if not tuple(lv.ks):
    raise VidjaxError("config.long_video.ks: give at least one k")
  for k in lv.ks:
    samplers.check_k(k, n)
  if int(lv.sampler_res) < 1:
    raise VidjaxError(f"config.long_video.sampler_res must be >= 1, got "
                      f"{lv.sampler_res}")
  if config.get("grad_accum_steps", 1) != 1:
    raise VidjaxError("config.grad_accum_steps: the sampler's step takes "
                      "whole batches (set 1)")
  if config.init_from.checkpoint_path:
    raise VidjaxError("config.init_from.checkpoint_path: not supported by "
                      "the long_video task")
  optim.make_optimizer(config.optimizer,
                       optim.make_schedule(config.optimizer, 2, 1))
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  check_classifier(config)
  return pf.Preflight(class_names(config), None,
                      saliency.build_model(config.model), None)


def classifier_run(config, workdir: str, log=print) -> str:
  """config.classifier_run, or config.classifier trained (or resumed) in
  WORKDIR/classifier."""
  return sub_run.ensure(config.get("classifier_run", ""),
                        config.get("classifier"),
                        os.path.join(workdir, CLASSIFIER_DIR), "classifier",
                        log)


class LongVideo(base.Task):
  """The Task (vidjax/tasks/base.py) of clip sampling on long videos."""

  name = "long_video"
  eval_keys = ("inputs",)
  counts_flops = False

  def __init__(self):
    self.input_dim = None

  def preflight(self, config, mesh):
    return preflight(config, mesh)

  def load_data(self, config, workdir: str, log=print, class_names=None):
    from vidjax.tasks.localization import data as loc_data  # noqa: PLC0415
    from vidjax.tasks.long_video import clips  # noqa: PLC0415
    d, lv = config.dataset, config.long_video
    synthetic = dict(d.get("synthetic", {}))
    ds = loc_data.load({"name": d.name, "data_dir": d.get("data_dir", ""),
                        **synthetic})
    classifier = clips.Classifier(classifier_run(config, workdir, log))
    if classifier.class_names and list(classifier.class_names) != list(
        ds["class_names"]):
      raise VidjaxError(f"config.classifier_run: the classifier's classes "
                        f"{list(classifier.class_names)} differ from the "
                        "data's")
    arrays = clips.cached(ds, classifier, int(lv.num_candidates),
                          int(lv.sampler_res),
                          os.path.join(workdir, CLIPS_DIR), log,
                          dataset={"name": d.name, **synthetic})
    train, test = arrays["train"], arrays["test"]
    flat = train["features"].reshape(-1, train["features"].shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-6  # the training clips'
    for split in (train, test):
      split["inputs"] = ((split["features"] - mean) / std).astype(np.float32)
      split["useful"] = (split["overlap"] >= ev.USEFUL_OVERLAP).astype(
          np.float32)
    self.input_dim = int(flat.shape[-1])
    frames, h, w, c = classifier.shape
    sampler_gmacs = (saliency.feature_macs(frames, h, w, c,
                                           int(lv.sampler_res)) / 1e9 +
                     _mlp_gmacs(config, flat.shape[-1]))
    return types.SimpleNamespace(
        train=train, test=test, class_names=list(ds["class_names"]),
        classifier_gmacs=classifier.gmacs, sampler_gmacs=sampler_gmacs,
        classifier_dir=classifier.run_dir)

  def train_size(self, data) -> int:
    return int(np.prod(data.train["useful"].shape))

  def loaders(self, config, pre, data, pidx: int, pcount: int):
    train = TrainLoader(data.train, config.seed, config.batch_size, pidx,
                        pcount)
    return train, EvalLoader(data.test, config.eval_batch_size), data.test

  def create_state(self, model, tx, config, rng):
    from vidjax import steps  # noqa: PLC0415
    init_rng, dropout_rng = jax.random.split(rng)
    params = model.init({"params": init_rng}, jnp.zeros(
        (1, self.input_dim), jnp.float32))["params"]
    return steps.new_state(model, tx, params, {}, dropout_rng)

  def make_train_step(self, config, schedule):
    from vidjax import steps  # noqa: PLC0415

    def train_step(state, batch):
      rng = jax.random.fold_in(state.rng, state.step)

      def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["inputs"],
                                train=True, rngs={"dropout": rng})
        loss = optax.sigmoid_binary_cross_entropy(logits, batch["useful"])
        acc = ((logits > 0) == (batch["useful"] > 0.5)).mean()
        return loss.mean(), acc

      (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
      new_state, grad_norm = steps.guarded_update(state, loss, grads)
      return new_state, {
          "train/loss": loss, "train/top1": acc, "train/grad_norm": grad_norm,
          "train/lr": schedule(state.step),
          "train/skipped_steps": new_state.skipped_steps,
          "train/nonfinite_streak": new_state.nonfinite_streak}
    return train_step

  def make_eval_step(self, config):
    def eval_step(state, batch):
      return state.apply_fn({"params": state.params}, batch["inputs"],
                            train=False)
    return eval_step

  def evaluate(self, ctx: base.EvalContext, state, eval_step, step: int):
    from vidjax import sharding  # noqa: PLC0415
    config, data, test = ctx.config, ctx.data, ctx.test
    lv = config.long_video
    v, n = test["useful"].shape
    scores = ctx.eval_loader.scores(
        lambda b: eval_step(state, sharding.put_batch(b, ctx.mesh)))
    scores = scores.reshape(v, n)
    auc = ev.sampler_auc(scores, test["overlap"])
    rows = ev.strategies(test["probs"], test["labels"], scores,
                         test["overlap"], tuple(int(k) for k in lv.ks),
                         config.seed, data.classifier_gmacs,
                         data.sampler_gmacs)
    result = ev.metrics(rows, auc, v, n)
    ctx.last["table"] = ev.format_table(rows, auc, data.classifier_gmacs,
                                        data.sampler_gmacs, v, n)
    if step != ctx.num_steps or not ctx.is_main:
      return result, None

    def record():  # the final evaluation's files
      out = os.path.join(ctx.workdir, "eval", f"test_step{step}")
      os.makedirs(out, exist_ok=True)
      with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({**result, "rows": rows, "split": "test",
                   "step": int(step), "classifier_run": data.classifier_dir,
                   "classifier_gmacs_per_clip": data.classifier_gmacs,
                   "sampler_gmacs_per_clip": data.sampler_gmacs,
                   "checkpoint": ctx.checkpoint_path(step)}, f, indent=1)
      with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(ctx.last["table"] + "\n")
      return None
    return result, record

  def final_report(self, ctx: base.EvalContext):
    return ctx.last.get("table")

  def summary(self, config, final: dict) -> str:
    ks = [int(k) for k in config.long_video.ks]
    k = 2 if 2 in ks else ks[0]
    return (f"test ({int(final['eval/num_videos'])} long videos): sampler "
            f"ROC-AUC={final['eval/sampler_auc']:.3f}, video accuracy dense="
            f"{final['eval/dense/accuracy']:.3f} uniform{k}="
            f"{final[f'eval/uniform{k}/accuracy']:.3f} scsampler{k}="
            f"{final[f'eval/scsampler{k}/accuracy']:.3f} (classifier clips "
            f"{final[f'eval/scsampler{k}/clip_fraction']:.3f} of dense)")


def _mlp_gmacs(config, dim: int) -> float:
  from vidjax import costs  # noqa: PLC0415
  return costs.kernel_gmacs(saliency.build_model(config.model), (dim,))


class TrainLoader:
  """Batches of training candidate clips (sampler inputs, usefulness); a
  function of (seed, step). This process gets its rows."""

  def __init__(self, arrays: dict, seed: int, global_batch: int,
               process_index: int = 0, process_count: int = 1):
    self.inputs = arrays["inputs"].reshape(-1, arrays["inputs"].shape[-1])
    self.useful = arrays["useful"].reshape(-1)
    self.seed, self.global_batch = int(seed), int(global_batch)
    local = self.global_batch // process_count
    self.rows = slice(process_index * local, (process_index + 1) * local)

  def batch(self, step: int) -> dict:
    rng = np.random.default_rng([self.seed, 2325, int(step)])
    idx = rng.choice(len(self.useful), self.global_batch,
                     replace=len(self.useful) < self.global_batch)[self.rows]
    return {"inputs": self.inputs[idx], "useful": self.useful[idx]}

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """Every test candidate clip's sampler input, in padded batches."""

  def __init__(self, arrays: dict, batch_size: int):
    self.inputs = arrays["inputs"].reshape(-1, arrays["inputs"].shape[-1])
    self.batch_size = int(batch_size)

  def batch(self, index: int) -> dict:
    rows = self.inputs[index * self.batch_size:(index + 1) * self.batch_size]
    pad = self.batch_size - len(rows)
    return {"inputs": np.concatenate([rows, np.zeros((pad, rows.shape[1]),
                                                     rows.dtype)])}

  def scores(self, step_fn) -> np.ndarray:
    """[N] sampler logits of every test clip (`step_fn(batch)`)."""
    num = -(-len(self.inputs) // self.batch_size)
    out = [step_fn(self.batch(i)) for i in range(num)]
    return np.concatenate(jax.device_get(out))[:len(self.inputs)]
