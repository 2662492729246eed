"""A small runner for ablations: config name -> trained, evaluated, measured row.

  from vidjax import experiment
  row = experiment.run("single_frame", dataset="motion", steps=200)
  row = experiment.run("two_stream", overrides={"model.streams": "flow"})

`run` builds `configs/<name>.py[:arg]`, points it at `synthetic_motion/<dataset>`,
applies dotted-key overrides, trains with `train.train_and_evaluate` in a
(temporary) workdir and returns one flat dict (`ROW_FIELDS`): parameters and
G multiply-adds per view (`vidjax.costs`, counted as the papers do), the median
train-step time read off `metrics.jsonl` (the first logging window, which holds
the compilation, is left out when there are others), test top-1/top-5 (video
level), clip-level top-1 and the wall time of the whole run. Pretraining
configs (`task="videomae_pretrain"`) give `recon_loss` and no accuracies.

`tiny=True` shrinks a run to seconds for the tests and the notebooks' tiny
mode: 2 train / 1 test videos per class, batch 8, 2 steps, one test view, one
device, and every width field the config has cut down (`tiny_model_overrides`;
explicit `overrides` win). Used by tools/accuracy_table.py and experiments/.

`inflate_checkpoint` writes an I3D-inflated copy (vidjax/models/inflate.py) of
a 2D run's parameters in the layout `config.init_from.checkpoint_path` reads.
"""
import importlib
import json
import math
import os
import shutil
import tempfile
import time
from typing import Optional

import numpy as np

from vidjax.errors import VidjaxError

ROW_FIELDS = ("config", "dataset", "model", "params", "gflops", "step_ms",
              "steps", "batch_size", "top1", "top5", "clip_top1", "recon_loss",
              "train_seconds")
DATASETS = ("motion", "appearance")
TINY_TRAIN_PER_CLASS = 2
TINY_TEST_PER_CLASS = 1
TINY_STEPS = 2
# config.model field -> its tiny value (tuples keep their length).
_TINY_FIELDS = {
    "widths": 8, "stem_width": 8, "stem_mid_width": 8, "fc_dim": 16,
    "mlp_dims": 16, "gru_features": 8, "hidden_size": 16, "num_heads": 2,
    "mlp_dim": 32, "num_layers": 1, "spatial_layers": 1, "temporal_layers": 1,
    "decoder_hidden_size": 16, "decoder_num_heads": 2, "decoder_num_layers": 1,
    "decoder_mlp_dim": 32, "embed_dim": 16, "width_multiplier": 0.125,
}


def load_config(config_name: str):
  """`name[:arg]` -> `configs/<name>.py`'s `get_config(arg)`."""
  name, _, arg = config_name.partition(":")
  from vidjax import cli  # noqa: F401  (puts the project root on sys.path)
  path = os.path.join(cli.ROOT, "configs", f"{name}.py")
  if not name.isidentifier() or not os.path.exists(path):
    raise VidjaxError(f"config {config_name!r}: no file configs/{name}.py")
  try:
    return importlib.import_module(f"configs.{name}").get_config(arg)
  except ValueError as e:
    raise VidjaxError(f"config {config_name!r}: {e}") from None


def set_field(config, key: str, value):
  """config[a][b][c] = value for key "a.b.c" (new keys only under `model`)."""
  *parents, leaf = key.split(".")
  node = config
  for i, part in enumerate(parents):
    if part not in node:
      raise VidjaxError(f"override {key!r}: the config has no field "
                        f"{'.'.join(parents[:i + 1])!r}")
    node = node[part]
  if leaf not in node and parents != ["model"]:
    raise VidjaxError(f"override {key!r}: the config has no field {key!r}")
  if isinstance(value, list):
    value = tuple(value)
  try:
    if leaf in node and value is not None and node[leaf] is not None and (
        type(value) is not type(node[leaf])):
      del node[leaf]  # e.g. a tuple of ints replacing a tuple of tuples
    node[leaf] = value
  except (TypeError, ValueError) as e:
    raise VidjaxError(f"override {key}={value!r}: {e}") from None


def apply_overrides(config, overrides: Optional[dict]):
  for key, value in (overrides or {}).items():
    set_field(config, key, value)
  return config


def tiny_model_overrides(config) -> dict:
  """Width/depth fields of `config.model` cut to tiny values (`_TINY_FIELDS`)."""
  out = {}
  for field, small in _TINY_FIELDS.items():
    if field not in config.model:
      continue
    value = config.model[field]
    if isinstance(value, (tuple, list)):
      out[f"model.{field}"] = tuple(min(v, small) for v in value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
      out[f"model.{field}"] = type(value)(min(value, small))
  return out


def tiny_overrides(config) -> dict:
  """Everything `tiny=True` changes: data, schedule, eval views, widths."""
  out = {
      "dataset.train_per_class": TINY_TRAIN_PER_CLASS,
      "dataset.test_per_class": TINY_TEST_PER_CLASS,
      "dataset.num_workers": 1, "dataset.prefetch": 1,
      "batch_size": 8, "eval_batch_size": 8, "num_devices": 1,
      "num_test_clips": 1, "num_test_crops": 1,
  }
  out.update(tiny_model_overrides(config))
  return out


def set_steps(config, steps: int):
  """Trains exactly `steps` steps: warm-up <= 10%, one eval/save at the end,
  several logging windows (for the step time)."""
  steps = int(steps)
  if steps < 1:
    raise VidjaxError(f"steps={steps} must be >= 1")
  config.num_train_steps = steps
  config.num_train_epochs = -1.0
  config.optimizer.warmup_epochs = -1.0
  config.optimizer.warmup_steps = min(config.optimizer.warmup_steps,
                                      steps // 10)
  config.eval_every_steps = steps
  config.checkpoint_every_steps = steps
  config.log_every_steps = max(1, min(config.log_every_steps, steps // 5))
  return config


def build_config(config_name: str, dataset: str = "motion",
                 steps: Optional[int] = None, overrides: Optional[dict] = None,
                 tiny: bool = False):
  """The config `run` trains (see `run`)."""
  config = load_config(config_name)
  if dataset not in DATASETS:
    raise VidjaxError(f"dataset={dataset!r}: synthetic_motion has "
                      f"{', '.join(DATASETS)}")
  if config.dataset.name != "synthetic_motion":
    raise VidjaxError(f"config {config_name!r} trains on "
                      f"{config.dataset.name!r}, not synthetic_motion: use "
                      "its default (small) variant")
  config.dataset.config = dataset
  if tiny:
    apply_overrides(config, tiny_overrides(config))
    steps = TINY_STEPS if steps is None else steps
  if steps is not None:
    set_steps(config, steps)
  return apply_overrides(config, overrides)


def step_ms_from_metrics(path: str) -> Optional[float]:
  """Median ms per train step over the logging windows of a metrics.jsonl
  (the first window, with the compilation, dropped when there are others)."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  rates = [r["train/steps_per_sec"] for r in rows if "train/steps_per_sec" in r]
  if len(rates) > 1:
    rates = rates[1:]
  return float(np.median([1000.0 / r for r in rates])) if rates else None


def model_costs(config) -> dict:
  """Parameters and G multiply-adds per view of the configured model."""
  from vidjax import costs
  model, shape = costs.configured_model(config)
  return {"params": int(costs.count_params(model, shape)),
          "gflops": float(costs.kernel_gmacs(model, shape))}


def _float(metrics: dict, key: str) -> Optional[float]:
  value = metrics.get(key)
  return None if value is None else float(value)


def run(config_name: str, dataset: str = "motion", steps: Optional[int] = None,
        overrides: Optional[dict] = None, workdir: Optional[str] = None,
        tiny: bool = False) -> dict:
  """Trains and evaluates one config; returns a row with `ROW_FIELDS`.

  Args:
    config_name: "name[:arg]" of configs/<name>.py.
    dataset: synthetic_motion config, "motion" or "appearance".
    steps: train steps (None: the config's own schedule; 2 when tiny).
    overrides: {"dotted.key": value} applied last (e.g. "model.streams").
    workdir: kept run folder (checkpoints, metrics.jsonl); None: a temporary
      one, deleted afterwards. An existing run there is resumed.
    tiny: seconds-long run for tests (module docstring).
  """
  from vidjax import host_memory, train
  # Notebooks call run() in their own kernel: keep freed host memory (no
  # page faults on every step's buffers) when JAX has not started yet.
  host_memory.retain_freed_memory()
  config = build_config(config_name, dataset, steps, overrides, tiny)
  row = {"config": config_name, "dataset": dataset,
         "model": config.model.name, **model_costs(config),
         "steps": int(config.num_train_steps),
         "batch_size": int(config.batch_size)}
  temp = workdir is None
  workdir = tempfile.mkdtemp(prefix="vidjax_exp_") if temp else workdir
  try:
    t0 = time.time()
    metrics = train.train_and_evaluate(config, workdir)
    row["train_seconds"] = time.time() - t0
    row["step_ms"] = step_ms_from_metrics(os.path.join(workdir,
                                                       "metrics.jsonl"))
  finally:
    if temp:
      shutil.rmtree(workdir, ignore_errors=True)
  for field, key in (("top1", "eval/top1"), ("top5", "eval/top5"),
                     ("clip_top1", "eval/clip_top1"),
                     ("recon_loss", "eval/recon_loss")):
    row[field] = _float(metrics, key)
  if not temp:
    row["workdir"] = os.path.abspath(workdir)
  row["overrides"] = {k: list(v) if isinstance(v, tuple) else v
                      for k, v in (overrides or {}).items()}
  return row


def inflate_checkpoint(source: str, config, out: str,
                       method: str = "mean") -> dict:
  """Inflates a 2D run's variables into `config`'s 3D model; writes them to
  `out` (finetune with `init_from.checkpoint_path=out`).

  `source`: a run of the same network with `temporal_kernel=1` (a per-frame
  2D ResNet with the 3D net's parameter names, e.g. r3d with
  `model.temporal_kernel=1, model.temporal_stride=False`), or any 2D parent
  whose parameter names match (inception2d -> i3d). Kernels are repeated over
  time and divided by Kt ("mean", I3D) or put at the centre tap ("center");
  BatchNorm statistics and the head are copied.
  """
  import jax
  import orbax.checkpoint as ocp
  from vidjax import checkpoint, costs
  from vidjax.models import inflate
  from vidjax.steps import flat_shapes

  params, stats, where = checkpoint.load_pretrained(source)
  model, shape = costs.configured_model(config)
  x = jax.ShapeDtypeStruct((1,) + tuple(shape), np.float32)
  target = jax.eval_shape(lambda x: model.init(
      {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, x,
      train=False), x)
  variables = inflate.inflate_variables({"params": params,
                                         "batch_stats": stats}, dict(target),
                                        method=method)
  out = os.path.abspath(out)
  if os.path.isdir(os.path.join(out, "checkpoints")):
    raise VidjaxError(f"inflate_checkpoint: {out} already holds checkpoints")
  meta = {"model": config.model.name, "inflated_from": where,
          "method": method, "param_shapes": flat_shapes(variables["params"])}
  manager = ocp.CheckpointManager(
      os.path.join(out, "checkpoints"),
      options=ocp.CheckpointManagerOptions(create=True))
  manager.save(0, args=ocp.args.Composite(
      state=ocp.args.StandardSave(jax.tree.map(np.asarray, variables)),
      meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()
  leaves = jax.tree.leaves(variables["params"])
  return {"out": out, "from": where,
          "params": int(sum(math.prod(np.shape(a)) for a in leaves))}


def format_table(rows, columns) -> str:
  """A markdown table of `rows` (dicts); floats in [0, 1] as percentages for
  accuracy-like columns (top1, top5, clip_top1), others with 4 digits."""
  def cell(key, value):
    if value is None:
      return "-"
    if key in ("top1", "top5", "clip_top1") and isinstance(value, float):
      return f"{100 * value:.1f}%"
    if isinstance(value, float):
      return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
      return f"{value:,}"
    return str(value)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(cell(c, row.get(c)) for c in columns)
                 + " |")
  return "\n".join(lines)
