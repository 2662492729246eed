"""The training loop: config -> data -> model -> jitted step -> checkpoint.

`train_and_evaluate(config, workdir)` trains `config.num_train_steps` steps,
evaluates every `eval_every_steps` and at the end, checkpoints every
`checkpoint_every_steps` and at the end, and resumes from the latest
checkpoint in `workdir` when there is one (same step count, schedule and data
order: batches are a function of (seed, step)).
"""
import os
import time
from typing import Optional

import jax
import numpy as np

from vidjax import checkpoint, evaluate, metrics as metrics_lib, optim
from vidjax import init_adapt, preemption, preflight, pretrain_step
from vidjax import sharding, steps
from vidjax.config_check import check_config, check_workdir
from vidjax.data import datasets
from vidjax.data import pipeline
from vidjax.data.pipeline import EvalLoader, TrainLoader
from vidjax.errors import VidjaxError

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


def initial_state(config, model, tx, mesh, ckpt, log, class_names=()):
  """Fresh, resumed (latest checkpoint in workdir) or `init_from` state."""
  rng = jax.random.PRNGKey(config.seed)
  create = lambda: steps.create_state(model, tx, config, rng)  # noqa: E731
  abstract = jax.eval_shape(create)
  rep = sharding.replicated(mesh)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), abstract)
  latest = ckpt.latest_step()
  if latest is not None:
    state = ckpt.restore(abstract, latest)
    log(f"resumed from {ckpt.path(latest)} at step {latest}")
    return state
  path = config.init_from.checkpoint_path
  if path:  # ViT -> ViViT, position embeddings, the head's rows by name
    params, stats, where = checkpoint.load_pretrained(path)
    params = init_adapt.adapt_pretrained(config, params, abstract.params,
                                         where, log, class_names=class_names)
    checkpoint.check_fits(abstract.params, params, path)
  state = jax.jit(create, out_shardings=rep)()
  if path:
    new_params, done, skipped, unused = checkpoint.merge_pretrained(
        state.params, params)
    new_stats = state.batch_stats
    if state.batch_stats:
      new_stats, *_ = checkpoint.merge_pretrained(state.batch_stats, stats)
    log(f"init_from {where}: loaded {len(done)} of "
        f"{len(done) + len(skipped)} parameters")
    for line in skipped:
      log(f"  not loaded (kept its initialisation): {line}")
    for name in unused:
      log(f"  unused from the checkpoint: {name}")
    state = jax.device_put(
        state.replace(params=new_params, batch_stats=new_stats), rep)
  return state


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
  pretraining = pretrain_step.task(config) == "videomae_pretrain"
  workdir = check_workdir(workdir)
  is_main = jax.process_index() == 0
  mesh = sharding.make_mesh(config.num_devices)
  log = print if is_main else (lambda *a, **k: None)
  # Everything the config can tell, before any data is built or compiled.
  pre = preflight.check_run(config, mesh)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
  if ckpt.latest_step() is not None:
    ckpt.check_resumable(pre.abstract_params, ckpt.latest_step())

  data = load_data(config.dataset)
  if list(data.class_names) != list(pre.class_names):
    raise VidjaxError(
        f"the built dataset's classes ({len(data.class_names)}) differ from "
        f"its annotations' ({len(pre.class_names)}): run python -m "
        "tools.prepare_data with the same config to rebuild it")
  spec, model = pre.spec, pre.model
  num_steps, warmup = schedule_steps(config, len(data.train))
  schedule = optim.make_schedule(config.optimizer, num_steps, warmup)
  tx = optim.make_optimizer(config.optimizer, schedule)
  pidx, pcount = jax.process_index(), jax.process_count()
  train_loader = TrainLoader(data.train, spec, config.seed, config.batch_size,
                             pidx, pcount)
  test = pipeline.Subset(data.test, config.get("eval_max_videos", 0))
  eval_loader = EvalLoader(test, spec, config.num_test_clips,
                           config.num_test_crops, config.eval_batch_size,
                           pidx, pcount)
  # One clip of each kind now, so a data problem the config cannot tell
  # (e.g. natively stored frames smaller than the crop) fails before
  # anything is compiled.
  train_loader.batch(0), eval_loader.batch(0)

  state = initial_state(config, model, tx, mesh, ckpt, log, data.class_names)
  meta = checkpoint.make_meta(config, state.params, data.class_names)
  evaluate.write_class_names(workdir, data.class_names)  # process 0 only
  start = int(jax.device_get(state.step))
  end = num_steps if stop_after_steps is None else min(num_steps,
                                                       stop_after_steps)
  log(f"model {config.model.name}: {steps.param_count(state.params):,} "
      f"parameters; {num_steps} steps of {config.batch_size} clips on "
      f"{mesh.devices.size} device(s) ({jax.devices()[0].platform})")

  rep = sharding.replicated(mesh)
  train_step = jax.jit(steps.make_train_step(config, schedule),
                       donate_argnums=0, out_shardings=(rep, rep))
  make_eval_step, evaluate_fn = (
      (pretrain_step.make_pretrain_eval_step, pretrain_step.evaluate_pretrain)
      if pretraining else (steps.make_eval_step, evaluate.evaluate))
  eval_step = jax.jit(make_eval_step(config), out_shardings=
                      sharding.batch_sharded(mesh))
  workers = dict(num_workers=config.dataset.num_workers,
                 prefetch=config.dataset.prefetch)
  writer = metrics_lib.MetricWriter(workdir, enabled=is_main)

  def run_eval(step: int) -> dict:
    t0 = time.time()
    result = evaluate_fn(state, eval_step, eval_loader, mesh, **workers)
    result["eval/seconds"] = time.time() - t0
    writer.write(step, result)
    progress.write(f"step {step}: {metrics_lib.format_metrics(result)}")
    return result

  progress = metrics_lib.Progress(start, end, enabled=is_main)
  pending, window_start, final = [], time.time(), {}
  step, ok = start, False
  stopper = preemption.StopSignal()
  try:
    with stopper:
      batches = train_loader.iterate(start, end, **workers)
      for host_batch in batches:
        state, step_metrics = train_step(state, sharding.put_batch(host_batch,
                                                                   mesh))
        pending.append(step_metrics)
        step += 1
        progress.update()
        if step % config.log_every_steps == 0 or step == end:
          fetched = jax.device_get(pending)  # the one host sync per window
          row = {k: (np.mean([m[k] for m in fetched]) if k in _AVERAGED
                     else fetched[-1][k]) for k in fetched[-1]}
          elapsed = time.time() - window_start
          row["train/steps_per_sec"] = len(fetched) / elapsed
          row["train/clips_per_sec"] = (len(fetched) * config.batch_size /
                                        elapsed)
          streak = int(row.pop("train/nonfinite_streak"))
          writer.write(step, row)
          progress.set_loss(row["train/loss"])
          progress.write(f"step {step}: {metrics_lib.format_metrics(row)}")
          pending, window_start = [], time.time()
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
          window_start = time.time()
        if stopper.should_stop(step):  # SIGTERM/SIGINT: stop after this step
          batches.close()
          break
    progress.close()
    ckpt.save(state, meta)  # no-op if this step is saved already
    ckpt.wait()  # a failed background write surfaces here, as a VidjaxError
    if step == num_steps:
      final = run_eval(num_steps)
      if not pretraining:  # every process runs it; process 0 prints
        log(evaluate.format_predictions(evaluate.predict_videos(
            state, eval_step, eval_loader, mesh, count=5), data.class_names,
            getattr(test, "paths", None)))
    ok = True
  except OSError as e:  # metrics/TensorBoard writes: disk full, read-only...
    raise VidjaxError(f"cannot write to {e.filename or workdir}: "
                      f"{e.strerror or e} at step {step}; last complete "
                      f"checkpoint: {ckpt.last_good()}") from None
  finally:
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
  scores = (f"reconstruction loss={final['eval/recon_loss']:.4f}"
            if pretraining else
            f"top1={final['eval/top1']:.4f} top5={final['eval/top5']:.4f} "
            f"(clip-level top1={final['eval/clip_top1']:.4f})")
  log(f"done: {num_steps} steps; test ({config.num_test_clips} clips x "
      f"{config.num_test_crops} crops per video): {scores}; checkpoint "
      f"{ckpt.path(num_steps)}; metrics {os.path.join(workdir, 'metrics.jsonl')}")
  return final
