"""Train state, and the jitted train and eval steps.

The whole update is one jitted function with the state donated: input
normalisation (uint8 -> float happens on the device), forward, loss, backward,
optimizer, metrics. A non-finite loss or gradient norm skips the update inside
the step (no host sync) and is counted in `skipped_steps`.

Gradient accumulation (`config.grad_accum_steps` = k > 1): the batch is cut
into k micro-batches of batch/k inside the same jitted step and a `lax.scan`
runs forward and backward on each; the gradients (and loss and metrics) are
averaged and one optimizer update follows, so the update equals the
full-batch one (each micro-batch mean has the same weight). Row r goes to
micro-batch r % k: a (B, ...) -> (B/k, k, ...) reshape keeps every device's
rows of the `data`-sharded batch on that device (no communication), given
batch_size % (k x devices) == 0 (`check_grad_accum`). BatchNorm statistics
run through the micro-batches in order.
"""
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import struct

from vidjax.errors import VidjaxError
from vidjax.layers.transformer import AUX_LOSS, total_aux_loss


class TrainState(struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array                # base key of the dropout stream
  skipped_steps: jax.Array      # non-finite updates skipped so far
  nonfinite_streak: jax.Array   # consecutive ones, reset by a finite step
  apply_fn: Callable = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def input_shape(config) -> tuple:
  """One training clip: (frames, crop, crop, channels)."""
  from vidjax.data.optical_flow import channels  # rgb 3, flow 2, rgb+flow 5
  d = config.dataset
  return (d.num_frames, d.crop_size, d.crop_size, channels(d))


def eval_input_shape(config) -> tuple:
  """One test view: as input_shape, with config.dataset.test_crop_size."""
  from vidjax.data.frame_sizes import test_crop_size
  frames, _, _, channels = input_shape(config)
  crop = test_crop_size(config.dataset)
  return (frames, crop, crop, channels)


def init_variables(model, config, rng: jax.Array):
  x = jnp.zeros((1,) + input_shape(config), jnp.float32)
  return model.init({"params": rng, "dropout": rng}, x, train=False)


def create_state(model, tx, config, rng: jax.Array) -> TrainState:
  init_rng, dropout_rng = jax.random.split(rng)
  variables = init_variables(model, config, init_rng)
  return new_state(model, tx, variables["params"],
                   variables.get("batch_stats", {}), dropout_rng)


def new_state(model, tx, params, batch_stats, rng: jax.Array) -> TrainState:
  """A TrainState at step 0 (every task's `create_state` ends here); each
  counter is its own buffer, as the train step donates the state."""
  zero = lambda: jnp.zeros((), jnp.int32)  # noqa: E731
  return TrainState(
      step=zero(), params=params, batch_stats=batch_stats or {},
      opt_state=tx.init(params), rng=rng, skipped_steps=zero(),
      nonfinite_streak=zero(), apply_fn=model.apply, tx=tx)


def variables_of(state: TrainState, params) -> dict:
  """{"params": params} plus the state's batch_stats when it has any."""
  variables = {"params": params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return variables


def normalize(video: jax.Array, mean, std) -> jax.Array:
  x = video.astype(jnp.float32) * (1.0 / 255.0)
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _apply(state, params, x, train, rng, with_aux=False):
  """Forward pass; (logits, new batch_stats[, sum of sown auxiliary losses]).

  Training collects the `aux_loss` collection that blocks sow (the MoE
  load-balancing loss of vidjax/layers/transformer.py); it is empty (0) for
  every other model.
  """
  variables = variables_of(state, params)
  if train:
    logits, updates = state.apply_fn(
        variables, x, train=True, rngs={"dropout": rng},
        mutable=["batch_stats", AUX_LOSS])
    stats = updates.get("batch_stats", state.batch_stats)
    out = logits, stats
    return out + (total_aux_loss(updates.get(AUX_LOSS, {})),) if with_aux \
        else out
  logits = state.apply_fn(variables, x, train=train, rngs={"dropout": rng})
  out = logits, state.batch_stats
  return out + (jnp.zeros((), jnp.float32),) if with_aux else out


def guarded_update(state: TrainState, loss, grads, new_stats=None):
  """The optimizer update, kept only if the loss and gradients are finite.

  A non-finite step changes nothing but the counters (`skipped_steps`,
  `nonfinite_streak`), decided inside the step with `where`: no host sync.
  Returns (new state, gradient global norm).
  """
  grad_norm = optax.global_norm(grads)
  updates, new_opt_state = state.tx.update(grads, state.opt_state,
                                           state.params)
  new_params = optax.apply_updates(state.params, updates)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  keep = lambda new, old: jax.tree.map(  # noqa: E731
      lambda a, b: jnp.where(finite, a, b), new, old)
  new_stats = state.batch_stats if new_stats is None else new_stats
  new_state = state.replace(
      step=state.step + 1,
      params=keep(new_params, state.params),
      batch_stats=keep(new_stats, state.batch_stats),
      opt_state=keep(new_opt_state, state.opt_state),
      skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
      nonfinite_streak=jnp.where(finite, 0, state.nonfinite_streak + 1))
  return new_state, grad_norm


def grad_accum_steps(config) -> int:
  """`config.grad_accum_steps` (1 when absent)."""
  return int(config.get("grad_accum_steps", 1))


def check_grad_accum(config, num_devices: int, processes: int = 1):
  """batch_size must split into k micro-batches with rows on every device."""
  k = grad_accum_steps(config)
  if k < 1:
    raise VidjaxError(f"config.grad_accum_steps={k} must be >= 1")
  unit = k * num_devices
  if k > 1 and (config.batch_size % unit or config.batch_size % (
      k * processes)):
    raise VidjaxError(
        f"config.batch_size={config.batch_size} is not divisible by "
        f"config.grad_accum_steps={k} x {num_devices} devices = {unit}")


def split_micro_batches(tree, k: int):
  """(B, ...) leaves -> (k, B/k, ...), row r in micro-batch r % k (so each
  device's contiguous rows of a batch-sharded array stay on that device)."""
  def split(a):
    a = a.reshape((a.shape[0] // k, k) + a.shape[1:])
    return jnp.swapaxes(a, 0, 1)
  return jax.tree.map(split, tree)


def accumulate(grad_fn, params, micro_batches, k: int, carry):
  """Mean loss, gradients and metrics of `grad_fn` over k micro-batches.

  grad_fn(params, micro_batch, index, carry) -> ((loss, (metrics, carry)),
  grads), as `jax.value_and_grad(..., has_aux=True)` gives; `carry` (e.g.
  BatchNorm statistics) is threaded through the micro-batches in order.
  Returns (loss, grads, metrics, carry), summed in float32 inside a
  `lax.scan` (one micro-batch's activations live at a time).
  """
  def body(acc, inputs):
    index, micro = inputs
    loss_sum, grad_sum, metric_sum, carry = acc
    (loss, (metrics, carry)), grads = grad_fn(params, micro, index, carry)
    add = lambda a, b: a + b.astype(a.dtype)  # noqa: E731
    return (loss_sum + loss, jax.tree.map(add, grad_sum, grads),
            jax.tree.map(add, metric_sum, metrics), carry), None

  zeros = lambda t: jax.tree.map(  # noqa: E731
      lambda a: jnp.zeros(a.shape, jnp.float32), t)
  metric_shapes = jax.eval_shape(
      lambda: grad_fn(params, jax.tree.map(lambda a: a[0], micro_batches),
                      0, carry)[0][1][0])
  init = (jnp.zeros((), jnp.float32), zeros(params), zeros(metric_shapes),
          carry)
  (loss, grads, metrics, carry), _ = jax.lax.scan(
      body, init, (jnp.arange(k), micro_batches))
  scale = 1.0 / k
  grads = jax.tree.map(lambda g, p: (g * scale).astype(p.dtype), grads, params)
  metrics = jax.tree.map(lambda m: m * scale, metrics)
  return loss * scale, grads, metrics, carry


def make_train_step(config, schedule):
  """The train step of `config.task` (pretraining: vidjax/pretrain_step.py)."""
  from vidjax import pretrain_step  # noqa: PLC0415 (it imports this module)
  if pretrain_step.task(config) == "videomae_pretrain":
    return pretrain_step.make_pretrain_step(config, schedule)
  mean, std = tuple(config.dataset.mean), tuple(config.dataset.std)
  smoothing = float(config.label_smoothing)
  nan_steps = tuple(int(s) for s in config.get("inject_nan_at_steps", ()))
  aux_weight = float(config.get("aux_loss_weight", 0.0))
  accum = grad_accum_steps(config)

  def train_step(state: TrainState, batch: dict):
    x = normalize(batch["video"], mean, std)
    if nan_steps:  # fault injection (config.inject_nan_at_steps), in the step
      x = jnp.where(jnp.isin(state.step + 1, jnp.asarray(nan_steps)),
                    jnp.nan, x)
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params, x, label, rng, stats):
      logits, new_stats, aux = _apply(state.replace(batch_stats=stats),
                                      params, x, True, rng, with_aux=True)
      logits = logits.astype(jnp.float32)
      if label.ndim == 2:  # mixup/cutmix soft labels [B, K]
        labels = label.astype(jnp.float32)
      else:
        labels = jax.nn.one_hot(label, logits.shape[-1])
      if smoothing:
        labels = optax.smooth_labels(labels, smoothing)
      loss = optax.softmax_cross_entropy(logits, labels).mean()
      if aux_weight:
        loss = loss + aux_weight * aux
      top1 = jnp.mean(jnp.argmax(logits, -1) == (
          jnp.argmax(label, -1) if label.ndim == 2 else label))
      return loss, (top1, new_stats)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if accum == 1:
      (loss, (top1, new_stats)), grads = grad_fn(
          state.params, x, batch["label"], rng, state.batch_stats)
    else:
      micro = split_micro_batches((x, batch["label"]), accum)
      loss, grads, top1, new_stats = accumulate(
          lambda p, m, i, stats: grad_fn(p, m[0], m[1],
                                         jax.random.fold_in(rng, i), stats),
          state.params, micro, accum, state.batch_stats)
    new_state, grad_norm = guarded_update(state, loss, grads, new_stats)
    metrics = {
        "train/loss": loss,
        "train/top1": top1,
        "train/grad_norm": grad_norm,
        "train/lr": schedule(state.step),
        "train/skipped_steps": new_state.skipped_steps,
        "train/nonfinite_streak": new_state.nonfinite_streak,
    }
    return new_state, metrics

  return train_step


def make_eval_step(config):
  mean, std = tuple(config.dataset.mean), tuple(config.dataset.std)

  def eval_step(state: TrainState, batch: dict) -> jax.Array:
    x = normalize(batch["video"], mean, std)
    logits, _ = _apply(state, state.params, x, False, state.rng)
    return logits.astype(jnp.float32)

  return eval_step


def param_count(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def flat_shapes(params) -> dict:
  """{'a/b/kernel': [shape]} for checkpoint compatibility checks."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  return {k: list(v.shape) for k, v in flat.items()}
