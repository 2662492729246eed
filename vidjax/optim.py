"""Optimizers and schedules from `config.optimizer` (optax).

SGD with (Nesterov) momentum or AdamW; linear warm-up then cosine decay (or a
constant rate); global-norm gradient clipping; decoupled weight decay applied
to kernels only (biases, norms, embeddings, position embeddings and class
tokens are not decayed).

Layer-wise lr decay (`optimizer.layer_decay` in (0, 1); BEiT, Bao et al. 2022;
the VideoMAE finetuning recipe uses 0.75): each parameter's update is scaled
by decay^(L + 1 - layer_id), L the number of transformer blocks; layer_id is 0
for the patch/tubelet embedding (names containing "embedding", "cls",
"mask_token"), i + 1 for block i (`block_i`, or row i of a scanned `layers`
stack) and L + 1 for everything else (final norms, fc_norm, head). 0 or 1:
off. Meant for single-stack ViTs (VideoMAE, ViViT model 1).
"""
import re

import jax
import numpy as np
import optax

from vidjax.errors import VidjaxError


def steps_from_epochs(epochs: float, train_size: int, batch_size: int) -> int:
  return int(round(epochs * train_size / batch_size))


def make_schedule(opt_config, num_train_steps: int, warmup_steps: int):
  lr = opt_config.learning_rate
  if opt_config.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif opt_config.schedule == "cosine":
    main = optax.cosine_decay_schedule(
        lr, max(num_train_steps - warmup_steps, 1), alpha=opt_config.end_lr_factor)
  else:
    raise VidjaxError(f"config.optimizer.schedule={opt_config.schedule!r}: "
                      "use 'cosine' or 'constant'")
  if warmup_steps <= 0:
    return main
  warmup = optax.linear_schedule(0.0, lr, warmup_steps)
  return optax.join_schedules([warmup, main], [warmup_steps])


def decay_mask(params):
  """True for leaves named `kernel` (conv and dense weights), else False."""
  def is_kernel(path, _):
    last = path[-1]
    return getattr(last, "key", getattr(last, "name", None)) == "kernel"
  return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_optimizer(opt_config, schedule) -> optax.GradientTransformation:
  name = opt_config.name
  if name == "adamw":
    opt = optax.adamw(schedule, b1=opt_config.b1, b2=opt_config.b2,
                      weight_decay=opt_config.weight_decay, mask=decay_mask)
  elif name == "sgd":
    opt = optax.sgd(schedule, momentum=opt_config.momentum or None,
                    nesterov=opt_config.nesterov)
    if opt_config.weight_decay:
      opt = optax.chain(
          optax.add_decayed_weights(opt_config.weight_decay, mask=decay_mask),
          opt)
  else:
    raise VidjaxError(f"config.optimizer.name={name!r}: use 'adamw' or 'sgd'")
  decay = opt_config.get("layer_decay", 0.0)
  if not 0.0 <= decay <= 1.0:
    raise VidjaxError(f"config.optimizer.layer_decay={decay}: use a value in "
                      "(0, 1), or 0 / 1 for none")
  if 0.0 < decay < 1.0:
    opt = optax.chain(opt, scale_by_layer_decay(decay))
  if opt_config.grad_clip_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), opt)
  return opt


def _names(path):
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def _block_index(names):
  """i for `block_i`, "scanned" inside a scanned `layers` stack, else None."""
  for name in names:
    if name == "layers":
      return "scanned"
    match = re.fullmatch(r"block_(\d+)", name)
    if match:
      return int(match.group(1))
  return None


def _num_layers(tree) -> int:
  count = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    index = _block_index(_names(path))
    if index == "scanned":
      count = max(count, leaf.shape[0])
    elif index is not None:
      count = max(count, index + 1)
  return count


def layer_decay_scales(tree, decay: float):
  """The per-parameter lr multipliers: a float per leaf, or for a scanned
  `layers` stack an array broadcasting over its leading layer axis."""
  num_layers = _num_layers(tree)

  def scale(path, leaf):
    names = _names(path)
    index = _block_index(names)
    if index == "scanned":
      ids = np.arange(1, leaf.shape[0] + 1)
      return (decay ** (num_layers + 1 - ids)).reshape(
          (-1,) + (1,) * (leaf.ndim - 1)).astype(np.float32)
    if index is not None:
      layer = index + 1
    elif any("embedding" in n or n in ("cls", "mask_token") for n in names):
      layer = 0
    else:
      layer = num_layers + 1
    return float(decay ** (num_layers + 1 - layer))
  return jax.tree_util.tree_map_with_path(scale, tree)


def scale_by_layer_decay(decay: float) -> optax.GradientTransformation:
  """Multiplies each update by its `layer_decay_scales` multiplier."""
  def update(updates, state, params=None):
    del params
    scales = layer_decay_scales(updates, decay)
    return jax.tree.map(lambda u, s: u * s, updates, scales), state
  return optax.GradientTransformation(
      lambda params: optax.EmptyState(), update)
