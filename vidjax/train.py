"""The training loop: config -> data -> model -> jitted step -> checkpoint.

`train_and_evaluate(config, workdir)` trains `config.num_train_steps` steps,
evaluates every `eval_every_steps` and at the end, checkpoints every
`checkpoint_every_steps` and at the end, and resumes from the latest
checkpoint in `workdir` when there is one (same step count, schedule and data
order: batches are a function of (seed, step)).

What differs between tasks (`config.task`: classification, VideoMAE
pretraining, temporal action localization) is a small `Task` object
(vidjax/tasks/base.py: data, loaders, state, steps, evaluation); the loop is
the same for all of them.

The run's record (vidjax/run_record.py): WORKDIR/config.json (the resolved
config) and class_names.json; TensorBoard gets the config (text, HParams)
and the first batch's clips when the run starts, and the confusion matrix at
each evaluation; the final evaluation writes WORKDIR/eval/test_step<N>/
(predictions.jsonl, metrics.json, confusion.json/.png: evaluate.write_outputs),
as `tools/evaluate.py` does for any checkpoint.
"""
import os
import time
from typing import Optional

import jax
import numpy as np

from vidjax import checkpoint, costs, evaluate, metrics as metrics_lib, optim
from vidjax import init_adapt, preemption, run_record, sharding, step_memory
from vidjax import steps
from vidjax.config_check import check_config, check_workdir
from vidjax.data import datasets
from vidjax.errors import VidjaxError
from vidjax.tasks import base as tasks

# Mean over the logging window for these; the last value for the rest.
_AVERAGED = ("train/loss", "train/top1", "train/grad_norm")


def schedule_steps(config, train_size: int):
  """(num_train_steps, warmup_steps), converting epochs when given."""
  total = config.num_train_steps
  if config.num_train_epochs > 0:
    total = optim.steps_from_epochs(config.num_train_epochs, train_size,
                                    config.batch_size)
  warmup = config.optimizer.warmup_steps
  if config.optimizer.warmup_epochs > 0:
    warmup = optim.steps_from_epochs(config.optimizer.warmup_epochs,
                                     train_size, config.batch_size)
  return int(total), int(warmup)


def initial_state(config, model, tx, mesh, ckpt, log, class_names=(),
                  task=None):
  """Fresh, resumed (latest checkpoint in workdir) or `init_from` state.

  Returns (state, its shardings: `config.sharding`'s rule, vidjax/sharding.py);
  creation, restore and `init_from` all place the state with them.
  """
  rng = jax.random.PRNGKey(config.seed)
  task = task or tasks.Classification()
  create = lambda: task.create_state(model, tx, config, rng)  # noqa: E731
  abstract = jax.eval_shape(create)
  shardings = sharding.config_state_shardings(config, abstract, mesh)
  abstract = sharding.with_shardings(abstract, shardings)
  latest = ckpt.latest_step()
  if latest is not None:
    state = ckpt.restore(abstract, latest)
    log(f"resumed from {ckpt.path(latest)} at step {latest}")
    return state, shardings
  paths = checkpoint.init_paths(config.init_from.checkpoint_path)
  loaded = []  # ViT -> ViViT, position embeddings, the head's rows by name
  for path in paths:
    params, stats, where = checkpoint.load_pretrained(path)
    params = init_adapt.adapt_pretrained(config, params, abstract.params,
                                         where, log, class_names=class_names)
    stats = init_adapt.adapt_batch_stats(config, stats)
    checkpoint.check_fits(abstract.params, params, path)
    loaded.append((params, stats, where))
  state = jax.jit(create, out_shardings=shardings)()
  if loaded:
    new_params, dones, skipped, unused = checkpoint.merge_first(
        state.params, [p for p, _, _ in loaded])
    new_stats = state.batch_stats
    if state.batch_stats:
      new_stats, *_ = checkpoint.merge_first(state.batch_stats,
                                             [s for _, s, _ in loaded])
    total = sum(len(d) for d in dones) + len(skipped)
    for (_, _, where), done in zip(loaded, dones):
      log(f"init_from {where}: loaded {len(done)} of {total} parameters")
    for line in skipped:
      log(f"  not loaded (kept its initialisation): {line}")
    for names in unused:
      for name in names:
        log(f"  unused from the checkpoint: {name}")
    state = jax.device_put(
        state.replace(params=new_params, batch_stats=new_stats), shardings)
  return state, shardings


def abstract_batch(host_batch: dict, mesh, keys=None) -> dict:
  """Global-batch ShapeDtypeStructs (split on `data`) of one process's batch."""
  rows = jax.process_count()
  return {k: jax.ShapeDtypeStruct((v.shape[0] * rows,) + v.shape[1:], v.dtype,
                                  sharding=sharding.batch_sharded(mesh))
          for k, v in host_batch.items() if keys is None or k in keys}


def compile_steps(config, schedule, state, shardings, train_batch, eval_batch,
                  mesh, log=print, task=None):
  """The train and eval steps, compiled ahead of step 0 for their fixed
  batch shapes (jit(...).lower(abstract args).compile()); each one's
  per-device memory is logged and checked against the device's
  (vidjax/step_memory.py), so a step that cannot fit is one error line
  before training starts. Returns (train, eval, compile seconds)."""
  rep, split = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  abstract = sharding.with_shardings(
      jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state),
      shardings)
  task = task or tasks.get_task(config)
  t0 = time.perf_counter()
  train_fn = jax.jit(task.make_train_step(config, schedule), donate_argnums=0,
                     in_shardings=(shardings, split),
                     out_shardings=(shardings, rep))
  train_step = train_fn.lower(abstract, train_batch).compile()
  eval_fn = jax.jit(task.make_eval_step(config),
                    in_shardings=(shardings, split),
                    out_shardings=split)
  eval_step = eval_fn.lower(abstract, eval_batch).compile()
  seconds = time.perf_counter() - t0
  for compiled, name in ((train_step, "train"), (eval_step, "eval")):
    log(step_memory.memory_line(compiled, name))
    step_memory.check_fits(compiled, name)
  return train_step, eval_step, seconds


def device_peak_bytes() -> Optional[int]:
  """The largest `peak_bytes_in_use` of this process's devices, where the
  backend reports it (GPU, TPU); None on XLA:CPU."""
  peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use")
           for d in jax.local_devices()]
  peaks = [p for p in peaks if p is not None]
  return max(peaks) if peaks else None


def step_flops(config, model, mesh):
  """(FLOPs of one train step, the device's peak FLOP/s) for `train/mfu`:
  the model's own multiply-adds per clip (vidjax/costs.py `kernel_gmacs`,
  scan bodies x their length) x 2 FLOPs x 3 (forward + backward) x clips
  per step. (0, None) when the device's peak is unknown (XLA:CPU, unless
  `config.device_peak_flops` gives one): then nothing is counted."""
  peak = costs.device_peak_flops(mesh.devices.flat[0],
                                 config.get("device_peak_flops", 0.0))
  if not peak:
    return 0.0, None
  macs = costs.kernel_gmacs(model, steps.input_shape(config)) * 1e9
  return costs.train_flops_per_clip(macs) * config.batch_size, peak


def profile_window(config):
  """`config.profile_steps` as (first step, count), or None (off)."""
  value = config.get("profile_steps", "")
  if not value:
    return None
  if isinstance(value, str):
    value = value.split(",")
  first, count = (int(v) for v in value)
  return first, count


def load_data(dataset_config):
  """Opens the dataset; on several processes, process 0 builds it first.

  (Two processes building one TFDS dataset into a shared data dir at once
  would race on its final rename.)
  """
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    if jax.process_index() == 0:
      datasets.load(dataset_config)
    multihost_utils.sync_global_devices("vidjax: dataset ready")
  return datasets.load(dataset_config)


def train_and_evaluate(config, workdir: str,
                       stop_after_steps: Optional[int] = None) -> dict:
  """Runs (or resumes) training; returns the final eval metrics.

  `stop_after_steps`: stop (with a checkpoint) once the state reaches that
  step, as a preempted job would; a later call resumes the same run.
  """
  check_config(config)
  task = tasks.get_task(config)
  workdir = check_workdir(workdir)
  is_main = jax.process_index() == 0
  mesh = sharding.make_mesh(config.num_devices)
  log = print if is_main else (lambda *a, **k: None)
  # Everything the config can tell, before any data is built or compiled.
  pre = task.preflight(config, mesh)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
  if ckpt.latest_step() is not None and pre.abstract_params is not None:
    ckpt.check_resumable(pre.abstract_params, ckpt.latest_step())

  data = task.load_data(config, workdir, log, class_names=pre.class_names)
  model = pre.model
  num_steps, warmup = schedule_steps(config, task.train_size(data))
  schedule = optim.make_schedule(config.optimizer, num_steps, warmup)
  tx = optim.make_optimizer(config.optimizer, schedule)
  pidx, pcount = jax.process_index(), jax.process_count()
  train_loader, eval_loader, test = task.loaders(config, pre, data, pidx,
                                                 pcount)
  # One clip of each kind now, so a data problem the config cannot tell
  # (e.g. natively stored frames smaller than the crop) fails before
  # anything is compiled; their shapes are the compiled steps' batches.
  first_train, first_eval = train_loader.batch(0), eval_loader.batch(0)

  state, shardings = initial_state(config, model, tx, mesh, ckpt, log,
                                  data.class_names, task)
  meta = checkpoint.make_meta(config, state.params, data.class_names)
  evaluate.write_class_names(workdir, data.class_names)  # process 0 only
  run_record.write_config(workdir, config)
  start = int(jax.device_get(state.step))
  end = num_steps if stop_after_steps is None else min(num_steps,
                                                       stop_after_steps)
  log(f"model {config.model.name}: {steps.param_count(state.params):,} "
      f"parameters; {num_steps} steps of {config.batch_size} clips on "
      f"{mesh.devices.size} device(s) ({jax.devices()[0].platform}, "
      f"{config.get('sharding', 'replicate')} state)")

  train_step, eval_step, compile_s = compile_steps(
      config, schedule, state, shardings, abstract_batch(first_train, mesh),
      abstract_batch(first_eval, mesh, task.eval_keys), mesh, log, task)
  log(f"compiled the train and eval steps in {compile_s:.1f} s")
  flops_per_step, peak_flops = (step_flops(config, model, mesh)
                                if task.counts_flops else (0.0, None))
  profile = profile_window(config)
  workers = dict(num_workers=config.dataset.num_workers,
                 prefetch=config.dataset.prefetch)
  writer = metrics_lib.MetricWriter(workdir, enabled=is_main)
  if start == 0 and is_main:  # the config and sample clips, once
    task.record_start(writer, config, first_train, data.class_names)
  ctx = tasks.EvalContext(config, workdir, mesh, data, eval_loader, test,
                          workers, num_steps, ckpt.path, is_main)

  def run_eval(step: int) -> dict:
    t0 = time.perf_counter()
    result, record = task.evaluate(ctx, state, eval_step, step)
    result["eval/seconds"] = time.perf_counter() - t0
    writer.write(step, result)
    if record is not None:  # e.g. the confusion matrix; the final files
      figure = record()
      if figure is not None:
        writer.write_image(step, "eval/confusion_matrix", figure)
    progress.write(f"step {step}: {metrics_lib.format_metrics(result)}")
    return result

  progress = metrics_lib.Progress(start, end, enabled=is_main)
  pending, window_start, final = [], time.perf_counter(), {}
  step, ok, waited, tracing = start, False, 0.0, False
  stopper = preemption.StopSignal()
  try:
    with stopper:
      batches = train_loader.iterate(start, end, **workers)
      while True:
        t0 = time.perf_counter()
        host_batch = next(batches, None)  # time blocked waiting for data
        waited += time.perf_counter() - t0
        if host_batch is None:
          break
        if profile and step == profile[0] and is_main:
          jax.profiler.start_trace(os.path.join(workdir, "profile"))
          tracing = True
        with jax.profiler.StepTraceAnnotation("train_step", step_num=step):
          state, step_metrics = train_step(
              state, sharding.put_batch(host_batch, mesh))
        pending.append(step_metrics)
        step += 1
        if tracing and step == profile[0] + profile[1]:
          jax.block_until_ready(state)  # the traced steps' device work
          jax.profiler.stop_trace()
          tracing = False
        progress.update()
        if step % config.log_every_steps == 0 or step == end:
          fetched = jax.device_get(pending)  # the one host sync per window
          row = {k: (np.mean([m[k] for m in fetched]) if k in _AVERAGED
                     else fetched[-1][k]) for k in fetched[-1]}
          elapsed = time.perf_counter() - window_start
          row["train/steps_per_sec"] = len(fetched) / elapsed
          row["train/clips_per_sec"] = (len(fetched) * config.batch_size /
                                        elapsed)
          row["train/data_wait_frac"] = min(waited / elapsed, 1.0)
          if peak_flops:
            row["train/mfu"] = costs.mfu(len(fetched) * flops_per_step,
                                         elapsed, mesh.devices.size,
                                         peak_flops)
          peak_bytes = device_peak_bytes()
          if peak_bytes is not None:
            row["train/device_peak_bytes"] = peak_bytes
          streak = int(row.pop("train/nonfinite_streak"))
          writer.write(step, row)
          progress.set_loss(row["train/loss"])
          progress.write(f"step {step}: {metrics_lib.format_metrics(row)}")
          pending, window_start, waited = [], time.perf_counter(), 0.0
          if streak >= config.max_consecutive_nonfinite:
            raise VidjaxError(
                f"{streak} consecutive non-finite losses/gradients at step "
                f"{step} (config.max_consecutive_nonfinite="
                f"{config.max_consecutive_nonfinite}); the last checkpoint "
                "holds the last finite parameters")
        if step % config.checkpoint_every_steps == 0 or step == end:
          ckpt.save(state, meta)
        if step % config.eval_every_steps == 0 and step < num_steps:
          run_eval(step)
          window_start, waited = time.perf_counter(), 0.0
        if stopper.should_stop(step):  # SIGTERM/SIGINT: stop after this step
          batches.close()
          break
    progress.close()
    ckpt.save(state, meta)  # no-op if this step is saved already
    ckpt.wait()  # a failed background write surfaces here, as a VidjaxError
    if step == num_steps:
      final = run_eval(num_steps)
      report = task.final_report(ctx)
      if report:
        log(report)
    ok = True
  except OSError as e:  # metrics/TensorBoard writes: disk full, read-only...
    raise VidjaxError(f"cannot write to {e.filename or workdir}: "
                      f"{e.strerror or e} at step {step}; last complete "
                      f"checkpoint: {ckpt.last_good()}") from None
  finally:
    if tracing:
      jax.profiler.stop_trace()
    progress.close()
    ckpt.close(wait=ok)
    writer.close(quiet=not ok)

  if stopper.signum is not None:
    raise preemption.Preempted(
        f"stopped by {stopper.signal_name} at step {step} of {num_steps}; "
        f"checkpoint {ckpt.path(step)}; run the same command to resume",
        stopper.signum)

  if end < num_steps:
    log(f"stopped at step {step} of {num_steps}; checkpoint "
        f"{ckpt.path(step)}; run again with the same --workdir to resume")
    return {}
  log(f"done: {num_steps} steps; {task.summary(config, final)}; checkpoint "
      f"{ckpt.path(num_steps)}; metrics {os.path.join(workdir, 'metrics.jsonl')}")
  return final
