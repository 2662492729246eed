"""Jitted train and eval steps of the AVA-style detectors.

Same pattern as vidjax/steps.py (classification) and vidjax/tasks/
localization/train_step.py: one jitted function per step, the state donated
by the caller (`jax.jit(step, donate_argnums=0)`), batch-sharded on the
mesh's `data` axis, a non-finite loss or gradient skipping the update inside
the step (`steps.guarded_update`, no host sync). Batches are
vidjax.tasks.detection.data.make_batch dicts: video [B, T, S, S, 3] uint8,
boxes [B, M, 4] normalised, box_mask [B, M], labels [B, M, K] multi-hot.

Loss: per-class sigmoid binary cross-entropy over the real boxes
(head.detection_loss; Feichtenhofer et al. 2019 Sec. 5, Gu et al. 2018).
The eval step returns per-box class probabilities [B, M, K] (0 on padded
boxes): `prediction_rows` turns them into AVA result rows
(ava_io.detections_to_rows) for vidjax/tasks/detection/evaluate.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vidjax import steps
from vidjax.tasks.detection.head import detection_loss

KEYS = ("video", "boxes", "box_mask", "labels")


def _mean_std(config):
  d = config.dataset
  return tuple(d.get("mean", (0.45, 0.45, 0.45))), tuple(
      d.get("std", (0.225, 0.225, 0.225)))


def create_state(model, tx, config, rng, max_boxes: int = 1):
  """A TrainState for clips of config.dataset (num_frames, crop_size)."""
  init_rng, dropout_rng = jax.random.split(rng)
  d = config.dataset
  x = jnp.zeros((1, d.num_frames, d.crop_size, d.crop_size, 3), jnp.float32)
  boxes = jnp.zeros((1, max_boxes, 4), jnp.float32)
  mask = jnp.ones((1, max_boxes), bool)
  variables = jax.jit(lambda r: model.init({"params": r, "dropout": r}, x,
                                           boxes, mask))(init_rng)
  return steps.new_state(model, tx, variables["params"],
                         variables.get("batch_stats", {}), dropout_rng)


def make_detection_train_step(config, schedule):
  """(state, batch) -> (state, metrics): masked multi-label BCE."""
  mean, std = _mean_std(config)

  def train_step(state: steps.TrainState, batch: dict):
    x = steps.normalize(batch["video"], mean, std)
    rng = jax.random.fold_in(state.rng, state.step)
    mask = batch["box_mask"]

    def loss_fn(params):
      logits, updates = state.apply_fn(
          steps.variables_of(state, params), x, batch["boxes"], mask, train=True,
          rngs={"dropout": rng}, mutable=["batch_stats"])
      loss = detection_loss(logits, batch["labels"], mask)
      return loss, (logits, updates.get("batch_stats", state.batch_stats))

    (loss, (logits, stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    new_state, grad_norm = steps.guarded_update(state, loss, grads, stats)
    hit = ((logits > 0) == (batch["labels"] > 0.5)).all(-1)
    m = mask.astype(jnp.float32)
    metrics = {"train/loss": loss, "train/grad_norm": grad_norm,
               "train/box_exact_match": (hit * m).sum() / jnp.maximum(
                   m.sum(), 1.0),
               "train/lr": schedule(state.step),
               "train/skipped_steps": new_state.skipped_steps,
               "train/nonfinite_streak": new_state.nonfinite_streak}
    return new_state, metrics

  return train_step


def make_detection_eval_step(config):
  """(state, batch) -> per-box class probabilities [B, M, K] float32."""
  mean, std = _mean_std(config)

  def eval_step(state: steps.TrainState, batch: dict) -> jax.Array:
    x = steps.normalize(batch["video"], mean, std)
    logits = state.apply_fn(steps.variables_of(state, state.params), x,
                            batch["boxes"], batch["box_mask"], train=False)
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    return jnp.where(batch["box_mask"][..., None], probs, 0.0)

  return eval_step


def prediction_rows(kset, batch: dict, probs, class_ids) -> list:
  """AVA result rows of an eval batch's probabilities [B, M, K]: real rows
  and boxes only, in the keyframe's own coordinates (data.prediction_rows;
  the batch's boxes are letterboxed, wrong for non-square frames)."""
  from vidjax.tasks.detection import data  # noqa: PLC0415
  return data.prediction_rows(kset, batch, np.asarray(probs), class_ids)
