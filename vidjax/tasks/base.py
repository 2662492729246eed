"""What the shared training loop (vidjax/train.py) asks of a task.

`config.task` picks one `Task` object per run (`get_task`):

* "classification" (default): clip classification (vidjax/steps.py,
  vidjax/evaluate.py), `Classification` below;
* "videomae_pretrain": masked-video reconstruction
  (vidjax/pretrain_step.py), `Pretraining` below;
* "localization": temporal action localization on window features
  (vidjax/tasks/localization/task.py);
* "detection": AVA-style action detection (vidjax/tasks/detection/task.py);
* "long_video": clip samplers on untrimmed videos (SCSampler;
  vidjax/tasks/long_video/task.py).

The loop itself -- preflight, checkpoint/resume, the state's shardings, the
jitted train step with the state donated, metric windows, non-finite
guards, SIGTERM, TensorBoard -- is the same for every task; a task supplies
only what differs (big_vision's and scenic's trainers are organised the same
way: one loop, per-task steps and evaluators). A new task (e.g. AVA-style
detection: clips + person boxes, multi-label) subclasses `Task` and
registers its class in `TASKS`:

  preflight(config, mesh) -> preflight.Preflight
      every config check before anything is built or compiled (class names,
      model, `abstract_params` or None when the input size is only known
      from the data); one-line VidjaxErrors naming the key.
  load_data(config, workdir, log, class_names) -> object with .train,
      .test, .class_names (class_names: the preflight's, to check against)
  train_size(data) -> int            (epochs -> steps)
  loaders(config, pre, data, pidx, pcount) -> (train_loader, eval_loader,
      test): train_loader.batch(step) / .iterate(start, end, num_workers,
      prefetch) (host batches, deterministic in (seed, step) so a resumed
      run replays the same ones); eval_loader.batch(0) gives the eval step's
      shapes; test: the evaluated test source.
  create_state(model, tx, config, rng) -> steps.TrainState
  make_train_step(config, schedule) / make_eval_step(config)
  eval_keys: the eval batch's device keys (the eval step's input)
  evaluate(ctx, state, eval_step, step) -> (metrics dict, record): record
      is None or a callable run after the metrics are written, returning a
      TensorBoard image or None; at the final step (ctx.num_steps) it also
      writes WORKDIR/eval/test_step<N>/.
  record_start(writer, config, first_batch, class_names): TensorBoard, once
  final_report(ctx) -> str | None    (logged after the final evaluation)
  summary(config, final) -> str      (the "done" line's test part)
  counts_flops: whether train/mfu applies (costs.kernel_gmacs of a clip)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from vidjax.errors import VidjaxError


@dataclasses.dataclass
class EvalContext:
  """What an evaluation needs besides the state (train.py builds it once)."""

  config: Any
  workdir: str
  mesh: Any
  data: Any
  eval_loader: Any
  test: Any                       # the evaluated test source
  workers: dict                   # num_workers, prefetch
  num_steps: int
  checkpoint_path: Callable[[int], str]
  is_main: bool = True
  last: dict = dataclasses.field(default_factory=dict)


class Task:
  """The interface (module docstring); `Classification` is the reference."""

  name = ""
  eval_keys = None          # None: every key of the eval batch
  counts_flops = True

  def preflight(self, config, mesh):
    raise NotImplementedError

  def load_data(self, config, workdir: str, log=print, class_names=None):
    raise NotImplementedError

  def train_size(self, data) -> int:
    return len(data.train)

  def record_start(self, writer, config, batch: dict, class_names):
    """The config (Text) and hparams, once; classification adds clips."""
    from vidjax import run_record  # noqa: PLC0415
    writer.write_text(0, "config/fields", run_record.config_markdown(config))
    writer.write_hparams(run_record.flat_fields(config))

  def final_report(self, ctx: EvalContext):
    return None


class Classification(Task):
  """Clip classification: cross-entropy on labels, multi-view test."""

  name = "classification"
  eval_keys = ("video",)

  def preflight(self, config, mesh):
    from vidjax import preflight  # noqa: PLC0415
    return preflight.check_run(config, mesh)

  def load_data(self, config, workdir: str, log=print, class_names=None):
    from vidjax import train  # noqa: PLC0415
    data = train.load_data(config.dataset)
    if class_names is not None and list(data.class_names) != list(
        class_names):
      raise VidjaxError(
          f"the built dataset's classes ({len(data.class_names)}) differ from "
          f"its annotations' ({len(class_names)}): run python -m "
          "tools.prepare_data with the same config to rebuild it")
    return data

  def loaders(self, config, pre, data, pidx: int, pcount: int):
    from vidjax.data import pipeline  # noqa: PLC0415
    train_loader = pipeline.TrainLoader(data.train, pre.spec, config.seed,
                                        config.batch_size, pidx, pcount)
    test = pipeline.Subset(data.test, config.get("eval_max_videos", 0))
    eval_loader = pipeline.EvalLoader(test, pre.spec, config.num_test_clips,
                                      config.num_test_crops,
                                      config.eval_batch_size, pidx, pcount)
    return train_loader, eval_loader, test

  def create_state(self, model, tx, config, rng):
    from vidjax import steps  # noqa: PLC0415
    return steps.create_state(model, tx, config, rng)

  def make_train_step(self, config, schedule):
    from vidjax import steps  # noqa: PLC0415
    return steps.make_train_step(config, schedule)

  def make_eval_step(self, config):
    from vidjax import steps  # noqa: PLC0415
    return steps.make_eval_step(config)

  def record_start(self, writer, config, batch: dict, class_names):
    from vidjax import run_record  # noqa: PLC0415
    run_record.record_start(writer, config, batch, class_names, 0)

  def evaluate(self, ctx: EvalContext, state, eval_step, step: int):
    """Multi-view metrics; the confusion matrix (its files at the end)."""
    from vidjax import evaluate, run_record  # noqa: PLC0415
    result, ctx.last["logits"], ctx.last["labels"] = evaluate.full_evaluation(
        state, eval_step, ctx.eval_loader, ctx.mesh, **ctx.workers)

    def record():
      figure = run_record.eval_record(
          ctx.workdir, step, step == ctx.num_steps, ctx.last,
          ctx.eval_loader.views_per_video, ctx.data.class_names,
          getattr(ctx.test, "paths", None), ctx.checkpoint_path(step))
      return figure if ctx.is_main else None
    return result, record

  def final_report(self, ctx: EvalContext):
    """The final evaluation's first 5 test videos."""
    from vidjax import evaluate  # noqa: PLC0415
    views = ctx.eval_loader.views_per_video
    return evaluate.format_predictions(evaluate.video_probabilities(
        ctx.last["logits"][:5 * views], ctx.last["labels"][:5 * views],
        views), ctx.data.class_names, getattr(ctx.test, "paths", None))

  def summary(self, config, final: dict) -> str:
    return (f"test ({config.num_test_clips} clips x {config.num_test_crops} "
            f"crops per video): top1={final['eval/top1']:.4f} "
            f"top5={final['eval/top5']:.4f} "
            f"(clip-level top1={final['eval/clip_top1']:.4f})")


class Pretraining(Classification):
  """VideoMAE pretraining: reconstruction loss, no labels, no confusion."""

  name = "videomae_pretrain"

  def make_eval_step(self, config):
    from vidjax import pretrain_step  # noqa: PLC0415
    return pretrain_step.make_pretrain_eval_step(config)

  def evaluate(self, ctx: EvalContext, state, eval_step, step: int):
    from vidjax import pretrain_step  # noqa: PLC0415
    return pretrain_step.evaluate_pretrain(
        state, eval_step, ctx.eval_loader, ctx.mesh, **ctx.workers), None

  def final_report(self, ctx: EvalContext):
    return None

  def summary(self, config, final: dict) -> str:
    return (f"test ({config.num_test_clips} clips x {config.num_test_crops} "
            f"crops per video): reconstruction loss="
            f"{final['eval/recon_loss']:.4f}")


def _localization():
  from vidjax.tasks.localization.task import Localization  # noqa: PLC0415
  return Localization


def _detection():
  from vidjax.tasks.detection.task import Detection  # noqa: PLC0415
  return Detection


def _long_video():
  from vidjax.tasks.long_video.task import LongVideo  # noqa: PLC0415
  return LongVideo


def _audio_visual():
  from vidjax.tasks.audio_visual.task import AudioVisual  # noqa: PLC0415
  return AudioVisual


def _separation():
  from vidjax.tasks.separation.task import Separation  # noqa: PLC0415
  return Separation


TASKS = {"classification": lambda: Classification,
         "videomae_pretrain": lambda: Pretraining,
         "localization": _localization,
         "detection": _detection,
         "separation": _separation,
         "audio_visual": _audio_visual,
         "long_video": _long_video}


def get_task(config) -> Task:
  """A fresh Task object for `config.task` (one-line error when unknown or
  when the model does not fit the task)."""
  name = config.get("task", "classification")
  if name not in TASKS:
    raise VidjaxError(f"config.task={name!r}: use one of "
                      f"{', '.join(TASKS)}")
  if name not in ("localization", "detection", "separation", "audio_visual",
                  "long_video"):  # their own model checks
    from vidjax import pretrain_step  # noqa: PLC0415
    pretrain_step.task(config)  # the model fits the task
  return TASKS[name]()()
