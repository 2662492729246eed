"""Optimizers and schedules from `config.optimizer` (optax).

SGD with (Nesterov) momentum or AdamW; linear warm-up then cosine decay (or a
constant rate); global-norm gradient clipping; decoupled weight decay applied
to kernels only (biases, norms, embeddings, position embeddings and class
tokens are not decayed).
"""
import jax
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
  if opt_config.grad_clip_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), opt)
  return opt
