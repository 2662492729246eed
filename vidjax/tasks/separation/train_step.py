"""Jitted train and eval steps of the separation U-Net.

Same pattern as vidjax/steps.py and vidjax/tasks/detection/train_step.py:
one jitted function per step, the state donated by the caller, the batch
split on the mesh's `data` axis, a non-finite loss or gradient skipping the
update inside the step (`steps.guarded_update`, no host sync). The STFTs run
on the device (vidjax/audio/frontend.py on jnp arrays), so the host sends
waveforms only.

Loss (Zhao et al., ECCV 2018, "The Sound of Pixels", Sec. 3.2 and their
`main.py`): per (mixture, object), the ground-truth mask on the warped grid
(ratio |S_k| / |X| clipped to [0, 1], or binary |S_k| > 0.5 |X|), binary
cross-entropy on the mask logits weighted by clamp(log1p(|X|), 1e-3, 10)
(loud time-frequency bins count more), averaged over every bin.
`config.separation.loss = "l1"` is the L1 distance of sigmoid(logits) to
the mask target, weighted alike.

The eval step returns each object's separated waveform [B, M, N]
(`models.separation.separate`); the metrics are computed on the host
(vidjax/tasks/separation/evaluate.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from vidjax import registry, steps
from vidjax.audio import frontend
from vidjax.models import separation as sep
from vidjax.tasks.separation.data import EVAL_KEYS, TRAIN_KEYS  # noqa: F401

LOSSES = ("bce", "l1")


def build(config):
  """The configured separation model (its STFT fields are the steps')."""
  return registry.build_model(config.model, 1)


def _mean_std(config):
  d = config.dataset
  return tuple(d.get("mean", (0.5,) * 3)), tuple(d.get("std", (0.25,) * 3))


def init_inputs(model, num_samples: int, video_shape, num_sources: int):
  """Zero inputs of one example: (log warped magnitude, video, boxes)."""
  t = frontend.num_frames(int(num_samples), sep.stft_config(model))
  return (jnp.zeros((1, t, model.freq_bins), jnp.float32),
          jnp.zeros((1,) + tuple(video_shape), jnp.float32),
          jnp.zeros((1, num_sources, video_shape[0], 4), jnp.float32))


def create_state(model, tx, config, rng, num_samples: int, video_shape,
                 num_sources: int):
  init_rng, dropout_rng = jax.random.split(rng)
  args = init_inputs(model, num_samples, video_shape, num_sources)
  variables = jax.jit(lambda r: model.init({"params": r}, *args))(init_rng)
  return steps.new_state(model, tx, variables["params"],
                         variables.get("batch_stats", {}), dropout_rng)


def mask_loss(logits, target, weight, kind: str = "bce"):
  """Weighted mean over (batch, object, time, frequency) of BCE or L1."""
  if kind == "l1":
    err = jnp.abs(jax.nn.sigmoid(logits) - target)
  else:
    err = optax.sigmoid_binary_cross_entropy(logits, target)
  return jnp.mean(weight[:, None] * err)


def make_train_step(config, schedule):
  """(state, batch) -> (state, metrics)."""
  model = build(config)
  mean, std = _mean_std(config)
  kind = config.get("separation", {}).get("loss", "bce")

  def train_step(state: steps.TrainState, batch: dict):
    _, mix_w = sep.spectra(model, batch["mixture"])
    _, stems_w = sep.spectra(model, batch["stems"])
    target, weight = sep.mask_targets(model, mix_w, stems_w)
    x = jnp.log(mix_w + sep.LOG_EPS)
    video = steps.normalize(batch["video"], mean, std)

    def loss_fn(params):
      logits, updates = state.apply_fn(
          steps.variables_of(state, params), x, video, batch["boxes"], train=True,
          mutable=["batch_stats"])
      loss = mask_loss(logits, target, weight, kind)
      return loss, (logits, updates.get("batch_stats", state.batch_stats))

    (loss, (logits, stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    new_state, grad_norm = steps.guarded_update(state, loss, grads, stats)
    err = jnp.abs(jax.nn.sigmoid(logits) - target)
    metrics = {"train/loss": loss, "train/grad_norm": grad_norm,
               "train/mask_l1": jnp.sum(weight[:, None] * err) / jnp.maximum(
                   jnp.sum(weight) * err.shape[1], 1e-6),
               "train/lr": schedule(state.step),
               "train/skipped_steps": new_state.skipped_steps,
               "train/nonfinite_streak": new_state.nonfinite_streak}
    return new_state, metrics

  return train_step


def make_eval_step(config):
  """(state, batch) -> separated waveforms [B, M, N] float32."""
  model = build(config)
  mean, std = _mean_std(config)

  def eval_step(state: steps.TrainState, batch: dict) -> jax.Array:
    video = steps.normalize(batch["video"], mean, std)
    return sep.separate(model, steps.variables_of(state, state.params),
                        batch["mixture"], video, batch["boxes"])

  return eval_step
