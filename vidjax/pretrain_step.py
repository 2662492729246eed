"""VideoMAE pretraining (`config.task="videomae_pretrain"`): steps and eval.

Loss (Tong et al. 2022, Sec. 3.3; the release's `engine_for_pretraining` and
HF `VideoMAEForPreTraining`): mean squared error between the decoder's
predictions and the pixels of the *masked* tubelets only, each tubelet's
pixels normalised per channel by their own mean and unbiased std
(`masking.tubelet_targets`, `model.norm_pix_loss=True`), averaged over masked
tokens and the t*h*w*3 values. The targets are in un-normalised [0, 1] pixel
space: the release de-normalises its ImageNet-normalised input
(x * std + mean) before patchifying; here the [0, 1] clip is taken straight
from the uint8 batch (video / 255), which is the same thing for ImageNet
mean/std and stays right for any other `dataset.mean/std`. The model sees the
normalised clip as in classification. With `model.mask_ratio=0` nothing is
masked and the loss covers every token (the no-masking speed baseline).

Masks are drawn inside the jitted step from the step's key (the dropout key
folded with the step, split in two): no host work. The step draws the whole
batch's tube masks itself and hands them to the model, so with
`config.grad_accum_steps` = k > 1 (micro-batches scanned in the step,
vidjax/steps.py) every clip keeps the mask it has at k = 1 and the update
equals the full-batch one. Evaluation: the same loss
on the test split's views with fixed masks (key 0), `eval/recon_loss`.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vidjax import registry, sharding
from vidjax.errors import VidjaxError
from vidjax.layers import masking
from vidjax import steps
from vidjax.steps import (TrainState, accumulate, normalize,
                          split_micro_batches)

TASKS = ("classification", "videomae_pretrain")
PRETRAIN_MODELS = ("videomae_pretrain",)


def task(config) -> str:
  """`config.task`, checked against the model (one-line errors)."""
  name = config.get("task", "classification")
  if name not in TASKS:
    raise VidjaxError(f"config.task={name!r}: use one of {', '.join(TASKS)}")
  model = config.model.name
  if name == "videomae_pretrain" and model not in PRETRAIN_MODELS:
    raise VidjaxError(f"config.task='videomae_pretrain' needs "
                      f"config.model.name='videomae_pretrain', got {model!r}")
  if name == "classification" and model in PRETRAIN_MODELS:
    raise VidjaxError(f"config.model.name={model!r} is a pretraining model: "
                      "set config.task='videomae_pretrain'")
  return name


def reconstruction_loss(pred, video01, target_idx, patch_size,
                        norm_pix_loss: bool = True) -> jax.Array:
  """Per-clip MSE (B,): pred (B, K, P) vs the tubelets `target_idx` (B, K) of
  the [0, 1] clip video01 (B, T, H, W, C)."""
  targets = masking.tubelet_targets(video01, patch_size, norm_pix_loss)
  targets = masking.gather_tokens(targets, target_idx)
  return jnp.mean(jnp.square(pred - targets), axis=(1, 2))


def _loss_fn(config):
  mean, std = tuple(config.dataset.mean), tuple(config.dataset.std)
  patch = tuple(config.model.patch_size)
  norm_pix = bool(config.model.get("norm_pix_loss", True))

  def per_clip(apply_fn, params, video, train, rngs, mask=None):
    x = normalize(video, mean, std)
    pred, target_idx = apply_fn({"params": params}, x, train=train, rngs=rngs,
                                mask=mask)
    video01 = video.astype(jnp.float32) * (1.0 / 255.0)
    return reconstruction_loss(pred, video01, target_idx, patch, norm_pix)
  return per_clip


def _model_field(model_config, name: str):
  """config.model.<name>, else the model class's default."""
  if name in model_config:
    return model_config[name]
  cls = registry.get_model_class(model_config.name)
  return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _mask_ratio(model_config) -> float:
  return float(_model_field(model_config, "mask_ratio"))


def make_pretrain_step(config, schedule):
  """(state, batch) -> (state, metrics); batch["video"] uint8, labels unused."""
  per_clip = _loss_fn(config)

  accum = steps.grad_accum_steps(config)
  patch = tuple(config.model.patch_size)
  ratio = _mask_ratio(config.model)
  mask_type = str(_model_field(config.model, "mask_type"))

  def train_step(state: TrainState, batch: dict):
    rng = jax.random.fold_in(state.rng, state.step)
    dropout_rng, mask_rng = jax.random.split(rng)
    video = batch["video"]
    grid = tuple(s // p for s, p in zip(video.shape[1:4], patch))
    mask = masking.draw_mask(mask_type, mask_rng, video.shape[0], grid,
                             ratio)

    def loss_fn(params, micro, rng):
      loss = per_clip(state.apply_fn, params, micro[0], True,
                      {"dropout": rng}, micro[1]).mean()
      return loss, ((), ())

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if accum == 1:
      (loss, _), grads = grad_fn(state.params, (video, mask), dropout_rng)
    else:
      loss, grads, _, _ = accumulate(
          lambda p, m, i, c: grad_fn(p, m, jax.random.fold_in(dropout_rng, i)),
          state.params, split_micro_batches((video, mask), accum), accum, ())
    new_state, grad_norm = steps.guarded_update(state, loss, grads)
    metrics = {
        "train/loss": loss,
        "train/grad_norm": grad_norm,
        "train/lr": schedule(state.step),
        "train/skipped_steps": new_state.skipped_steps,
        "train/nonfinite_streak": new_state.nonfinite_streak,
    }
    return new_state, metrics

  return train_step


def make_pretrain_eval_step(config):
  """(state, batch) -> per-clip reconstruction loss (B,), fixed masks."""
  per_clip = _loss_fn(config)

  def eval_step(state: TrainState, batch: dict) -> jax.Array:
    rngs = {"masking": jax.random.PRNGKey(0)}
    return per_clip(state.apply_fn, state.params, batch["video"], False, rngs)

  return eval_step


def evaluate_pretrain(state, eval_step, loader, mesh, num_workers: int = 4,
                      prefetch: int = 4) -> dict:
  """Mean reconstruction loss over every test view (padding dropped)."""
  outputs = []
  for batch in loader.iterate(num_workers, prefetch):
    arrays = sharding.put_batch(batch, mesh)
    outputs.append((eval_step(state, {"video": arrays["video"]}),
                    arrays["mask"]))
  losses, mask = (np.concatenate([sharding.to_host(o[i]) for o in outputs])
                  for i in range(2))
  losses = losses[mask > 0]
  return {"eval/recon_loss": float(losses.mean()),
          "eval/num_views": float(len(losses))}
