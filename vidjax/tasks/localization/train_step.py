"""Jitted train and eval steps of the localization detectors.

Same pattern as vidjax/steps.py (classification): one jitted function per
step, state donated, targets built inside the step (`targets.assign`, fixed
shapes), a non-finite loss or gradient skips the update inside the step
(`steps.guarded_update`, no host sync). Batches are `data.pad_batch` dicts:
inputs [B, L, D] float features, mask [B, L], segments [B, M, 2] (step
coordinates), labels [B, M], segment_mask [B, M], num_steps [B] (+ timing
rows the host uses to decode).

Config (an ml_collections.ConfigDict, keys read with defaults):
  model.name: "actionformer" | "actionformer_two_stage"; other model.* fields
    are the module's (actionformer.ActionFormer / two_stage.TwoStage).
  loss.alpha, loss.gamma (focal), loss.reg_weight, loss.radius (centre
    sampling), loss.regression_ranges (default: targets.default_ranges),
    loss.normalizer_momentum (0: divide by #positives; m > 0: ActionFormer's
    EMA, started at loss.normalizer_init, kept in state.batch_stats),
    loss.roi_weight (two-stage classifier's cross-entropy weight).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from vidjax import steps
from vidjax.errors import VidjaxError
from vidjax.tasks.localization import losses, targets, two_stage
from vidjax.tasks.localization.actionformer import ActionFormer

DETECTORS = {"actionformer": ActionFormer,
             "actionformer_two_stage": two_stage.TwoStage}


def build_model(model_config, num_classes: int):
  """The detector named by model_config.name, other fields as options
  (an unknown one is a one-line VidjaxError naming it)."""
  fields = dict(model_config)
  name = fields.pop("name", "")
  if name not in DETECTORS:
    raise VidjaxError(f"config.model.name={name!r} is not a localization "
                      f"model; known: {', '.join(sorted(DETECTORS))}")
  cls = DETECTORS[name]
  known = {f.name for f in dataclasses.fields(cls)} - {
      "parent", "name", "num_classes"}
  for key in fields:
    if key not in known:
      raise VidjaxError(f"config.model.{key} is not an option of model "
                        f"{name!r}; options: {', '.join(sorted(known))}")
  fields = {k: tuple(v) if isinstance(v, list) else v
            for k, v in fields.items()}
  return cls(num_classes=num_classes, **fields)


def is_two_stage(config) -> bool:
  return config.model.name == "actionformer_two_stage"


def _loss(config, key, default):
  return config.get("loss", {}).get(key, default)


def create_state(model, tx, config, rng, input_dim: int, max_len: int):
  """A TrainState for [B, max_len, input_dim] feature batches."""
  init_rng, dropout_rng = jax.random.split(rng)
  x = jnp.zeros((1, max_len, input_dim), jnp.float32)
  mask = jnp.ones((1, max_len), bool)
  kw = {}
  if is_two_stage(config):
    kw = {"rois": jnp.zeros((1, 1, 2), jnp.float32)}
  params = jax.jit(lambda r: model.init({"params": r, "dropout": r}, x, mask,
                                        **kw)["params"])(init_rng)
  momentum = float(_loss(config, "normalizer_momentum", 0.0))
  stats = ({"loss_normalizer": jnp.asarray(
      float(_loss(config, "normalizer_init", 100.0)), jnp.float32)}
           if momentum > 0 else {})
  return steps.new_state(model, tx, params, stats, dropout_rng)


def batch_targets(config, batch, num_classes: int) -> dict:
  """targets.assign of a batch with the config's loss settings."""
  agnostic = is_two_stage(config)
  ranges = _loss(config, "regression_ranges", None)
  return targets.assign(
      batch["segments"], batch["labels"], batch["segment_mask"],
      batch["mask"], batch["num_steps"], 1 if agnostic else num_classes,
      int(config.model.get("num_levels", 6)),
      tuple(tuple(r) for r in ranges) if ranges else None,
      float(_loss(config, "radius", 1.5)), class_agnostic=agnostic)


def make_localization_train_step(config, schedule, num_classes: int):
  """(state, batch) -> (state, metrics): focal + DIoU on the pyramid's
  points (+ the RoI classifier's cross-entropy in two-stage mode)."""
  alpha = float(_loss(config, "alpha", 0.25))
  gamma = float(_loss(config, "gamma", 2.0))
  reg_weight = float(_loss(config, "reg_weight", 1.0))
  momentum = float(_loss(config, "normalizer_momentum", 0.0))
  roi_weight = float(_loss(config, "roi_weight", 1.0))
  two = is_two_stage(config)

  def train_step(state: steps.TrainState, batch: dict):
    rng = jax.random.fold_in(state.rng, state.step)
    drop_rng, roi_rng = jax.random.split(rng)
    tgt = batch_targets(config, batch, num_classes)
    num_pos = (tgt["positive"] & tgt["point_mask"]).sum().astype(jnp.float32)
    norm, stats = None, state.batch_stats
    if momentum > 0:
      norm = losses.ema_normalizer(stats["loss_normalizer"], num_pos,
                                   momentum)
      stats = {"loss_normalizer": norm}
    kw = {}
    if two:
      rois, roi_labels, roi_valid = two_stage.sample_rois(
          roi_rng, batch["segments"], batch["labels"], batch["segment_mask"],
          batch["num_steps"], num_classes)
      kw = {"rois": rois, "num_steps": batch["num_steps"]}

    def loss_fn(params):
      out = state.apply_fn({"params": params}, batch["inputs"],
                           batch["mask"], train=True,
                           rngs={"dropout": drop_rng}, **kw)
      loss, parts = losses.detection_loss(
          out["cls_logits"], out["offsets"], tgt, alpha, gamma, reg_weight,
          norm)
      if two:
        ce = optax.softmax_cross_entropy_with_integer_labels(
            out["roi_logits"], roi_labels)
        w = roi_valid.astype(jnp.float32)
        parts["roi_loss"] = (ce * w).sum() / jnp.maximum(w.sum(), 1.0)
        loss = loss + roi_weight * parts["roi_loss"]
      return loss, parts

    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    new_state, grad_norm = steps.guarded_update(state, loss, grads, stats)
    metrics = {"train/loss": loss, "train/grad_norm": grad_norm,
               "train/lr": schedule(state.step),
               "train/skipped_steps": new_state.skipped_steps,
               "train/nonfinite_streak": new_state.nonfinite_streak}
    metrics.update({f"train/{k}": v for k, v in parts.items()})
    return new_state, metrics

  return train_step


def make_localization_eval_step(config):
  """(state, batch) -> {"cls_logits", "offsets", "point_mask"} float32 (the
  proposals' in two-stage mode: then `make_roi_eval_step` classifies)."""
  def eval_step(state: steps.TrainState, batch: dict) -> dict:
    out = state.apply_fn({"params": state.params}, batch["inputs"],
                         batch["mask"], train=False)
    return {k: out[k] for k in ("cls_logits", "offsets", "point_mask")}
  return eval_step


def make_roi_eval_step(config):
  """(state, batch, rois [B, R, 2] step coordinates) -> class
  probabilities [B, R, K + 1] (last: background)."""
  def roi_step(state: steps.TrainState, batch: dict, rois) -> jax.Array:
    out = state.apply_fn({"params": state.params}, batch["inputs"],
                         batch["mask"], rois=rois,
                         num_steps=batch["num_steps"], train=False)
    return jax.nn.softmax(out["roi_logits"], -1)
  return roi_step
