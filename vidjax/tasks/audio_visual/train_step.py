"""Jitted train and eval steps of the audio-visual task.

Same pattern as vidjax/steps.py and vidjax/tasks/detection/train_step.py:
one jitted function per step, the state donated by the caller, batches
split on the mesh's `data` axis, a non-finite loss or gradient skipping the
update inside the step (`steps.guarded_update`, no host sync).

Batches (vidjax/tasks/audio_visual/data.py): video [B, T, H, W, 3] uint8,
audio [B, samples] float32 waveform in [-1, 1], label [B] int32 (or [B, K]
float32 multi-hot for multi-label datasets). The log-mel front end runs on
the device inside the step (`vidjax.audio.frontend.log_mel` on jnp arrays,
the run's `config.audio_frontend`, a LogMelConfig), then
(x - mean) / std with `config.audio_normalization` (MBT normalises its
spectrograms with fixed dataset statistics, scenic's spec_mean/spec_stddev).

Losses: softmax cross-entropy with label smoothing (single-label
classification, and `sync`: 2 classes, shifted / aligned); per-class
sigmoid binary cross-entropy for multi-label data (AudioSet, as MBT's
`mbt_multilabel_classification`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from vidjax import steps
from vidjax.audio import frontend

KEYS = ("video", "audio", "label")


def log_mel_config(config) -> frontend.LogMelConfig:
  """The run's front end (config.audio_frontend: LogMelConfig fields)."""
  return frontend.LogMelConfig.from_dict(dict(config.audio_frontend))


def spectrogram_shape(config) -> tuple:
  """(frames, mels) of one example's log-mel."""
  c = log_mel_config(config)
  return (frontend.num_frames(int(config.dataset.audio_samples), c), c.n_mels)


def uses_video(config) -> bool:
  return config.model.name != "ast"


def features(config):
  """batch -> model inputs (video normalised, log-mel normalised)."""
  c = log_mel_config(config)
  a_mean, a_std = (float(v) for v in config.audio_normalization)
  d = config.dataset
  mean, std = tuple(d.get("mean", (0.5, 0.5, 0.5))), tuple(
      d.get("std", (0.25, 0.25, 0.25)))
  video = uses_video(config)

  def inputs(batch):
    spec = frontend.log_mel(batch["audio"].astype(jnp.float32), c)
    spec = (spec - a_mean) / a_std
    if not video:
      return (spec,)
    return (steps.normalize(batch["video"], mean, std), spec)
  return inputs


def multilabel(config) -> bool:
  return bool(config.dataset.get("multilabel", False))


def loss_fn_of(config):
  smoothing = float(config.label_smoothing)
  if multilabel(config):
    def loss(logits, labels):
      return optax.sigmoid_binary_cross_entropy(logits, labels).sum(-1).mean()
    return loss

  def loss(logits, labels):
    k = logits.shape[-1]
    target = optax.smooth_labels(jax.nn.one_hot(labels, k), smoothing)
    return optax.softmax_cross_entropy(logits, target).mean()
  return loss


def create_state(model, tx, config, rng):
  """A TrainState for the configured clip and log-mel shapes."""
  init_rng, dropout_rng = jax.random.split(rng)
  d = config.dataset
  spec = jnp.zeros((1,) + spectrogram_shape(config), jnp.float32)
  args = (spec,)
  if uses_video(config):
    args = (jnp.zeros((1, d.num_frames, d.crop_size, d.crop_size, 3),
                      jnp.float32), spec)
  variables = jax.jit(lambda r: model.init({"params": r, "dropout": r},
                                           *args))(init_rng)
  return steps.new_state(model, tx, variables["params"], {}, dropout_rng)


def make_train_step(config, schedule):
  """(state, batch) -> (state, metrics)."""
  inputs, loss_of = features(config), loss_fn_of(config)
  multi = multilabel(config)

  def train_step(state: steps.TrainState, batch: dict):
    x = inputs(batch)
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      logits = state.apply_fn({"params": params}, *x, train=True,
                              rngs={"dropout": rng})
      return loss_of(logits, batch["label"]), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    new_state, grad_norm = steps.guarded_update(state, loss, grads)
    if multi:
      hit = ((logits > 0) == (batch["label"] > 0.5)).mean()
    else:
      hit = (jnp.argmax(logits, -1) == batch["label"]).mean()
    metrics = {"train/loss": loss, "train/grad_norm": grad_norm,
               "train/top1": hit, "train/lr": schedule(state.step),
               "train/skipped_steps": new_state.skipped_steps,
               "train/nonfinite_streak": new_state.nonfinite_streak}
    return new_state, metrics

  return train_step


def zero_bottleneck_model(config):
  """The configured MBT with `zero_bottlenecks=True` (the eval control), or
  None where there are no bottlenecks."""
  m = config.model
  if m.name != "mbt" or m.get("fusion", "bottleneck") != "bottleneck":
    return None
  from vidjax import registry  # noqa: PLC0415
  from vidjax.tasks.audio_visual.task import num_classes  # noqa: PLC0415
  model = registry.build_model(m, num_classes(config))
  return model.clone(zero_bottlenecks=True)


def make_eval_step(config):
  """(state, batch) -> {"logits": [B, K] float32} (+ "logits_zero": the
  same with the bottleneck tokens zeroed, for bottleneck MBT)."""
  inputs, control = features(config), zero_bottleneck_model(config)

  def eval_step(state: steps.TrainState, batch: dict) -> dict:
    x = inputs(batch)
    v = {"params": state.params}
    out = {"logits": state.apply_fn(v, *x, train=False).astype(jnp.float32)}
    if control is not None:
      out["logits_zero"] = control.apply(v, *x, train=False).astype(
          jnp.float32)
    return out

  return eval_step
