"""Every model's default config, trained with the same short CPU budget on
`synthetic_motion/motion` and `/appearance` (issue #4's evidence table).

  python -m tools.accuracy_table [--models=single_frame,c3d] [--steps=200]
      [--datasets=motion,appearance] [--out=benchmarks/accuracy_table.json]
      [--markdown]

One JSON row per (config, dataset) (`vidjax.experiment.ROW_FIELDS`: params,
G multiply-adds per view, median train-step ms, test top-1/top-5 video level,
clip top-1, wall seconds). RESUMABLE: rows already in `--out` for the same
config, dataset and step count are kept and not retrained, and the file is
rewritten after every row, so the table can be built in pieces (stop it any
time; run the same command again). Configs whose model is not registered
(yet) are listed as skipped. `--markdown` prints the table (and writes it
next to the JSON, `.md`): model, params, GFLOPs/view, step ms, motion top-1,
appearance top-1, wall time.

Budget: every config trains `--steps` steps of its own batch (64) with its
own optimiser; warm-up is cut to 10% of the steps, cosine decay over them.
200 steps x 20 configs x 2 datasets: 80 min on the 2-core CPU (measured;
the table is in benchmarks/RESULTS.md), the 3D CNNs taking most of it. The
lecture predicts the single-frame model near chance (12.5%) on motion and
strong on appearance.
"""
import json
import os
import sys
import time

from absl import app, flags, logging

from vidjax import cli

# The CNN family, then the transformers (lecture order).
MODELS = (
    "single_frame", "late_fusion", "late_fusion:pool", "early_fusion",
    "slow_fusion", "c3d", "r3d", "r2plus1d", "two_stream", "lrcn", "conv_gru",
    "i3d", "i3d_r50", "tsm", "slowfast",
    "vivit_factorized", "timesformer", "vit", "mvitv2", "videomae_finetune")
DEFAULT_STEPS = 200
DEFAULT_OUT = os.path.join("benchmarks", "accuracy_table.json")

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _MODELS = flags.DEFINE_list("models", [], "Config names (default: MODELS).")
  _STEPS = flags.DEFINE_integer("steps", DEFAULT_STEPS, "Train steps, all models.")
  _DATASETS = flags.DEFINE_list("datasets", ["motion", "appearance"],
                                "synthetic_motion configs.")
  _OUT = flags.DEFINE_string("out", DEFAULT_OUT, "JSON file (resumable).")
  _MARKDOWN = flags.DEFINE_bool("markdown", False, "Print/write the table.")
  _TINY = flags.DEFINE_bool("tiny", False, "Seconds-long runs (tests).")
  _DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir ('': default).")


def available(models=MODELS):
  """(runnable config names, {name: why skipped})."""
  from vidjax import experiment, registry
  registered = set(registry.model_names())
  ok, skipped = [], {}
  for name in models:
    try:
      config = experiment.load_config(name)
    except Exception as e:  # noqa: BLE001  (a config being written elsewhere)
      skipped[name] = str(e)
      continue
    if config.model.name not in registered:
      skipped[name] = f"model {config.model.name!r} is not registered"
    else:
      ok.append(name)
  return ok, skipped


def read_rows(path: str) -> list:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f).get("rows", [])


def write_rows(path: str, rows: list):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump({"rows": rows}, f, indent=1)
  os.replace(tmp, path)


def _key(row) -> tuple:
  return (row["config"], row["dataset"], row["steps"], bool(row.get("tiny")))


def build_table(models, steps: int, datasets, out: str, tiny: bool = False,
                data_dir: str = "", log=print) -> list:
  """Trains every missing (model, dataset) row; returns all rows of `out`."""
  from vidjax import experiment
  rows = read_rows(out)
  done = {_key(r) for r in rows}
  overrides = {"dataset.data_dir": data_dir} if data_dir else {}
  for name in models:
    for dataset in datasets:
      config = experiment.build_config(name, dataset, steps, overrides, tiny)
      key = (name, dataset, int(config.num_train_steps), tiny)
      if key in done:
        log(f"{name} / {dataset}: in {out}, skipped")
        continue
      t0 = time.time()
      row = experiment.run(name, dataset, steps, overrides, tiny=tiny)
      row.pop("overrides", None)
      row.update(tiny=tiny, wall_seconds=time.time() - t0)
      rows.append(row)
      done.add(key)
      write_rows(out, rows)
      log(f"{name} / {dataset}: top1={row['top1']:.4f} "
          f"({row['wall_seconds']:.0f} s)")
  return rows


def markdown(rows: list, datasets=("motion", "appearance")) -> str:
  """One line per config: params, GFLOPs/view, step ms, top-1 per dataset."""
  by_config = {}
  for r in rows:
    by_config.setdefault(r["config"], {})[r["dataset"]] = r
  head = ["config", "model", "params", "GFLOPs/view", "step ms"] + [
      f"{d} top-1" for d in datasets] + ["steps", "wall s"]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for name, per in by_config.items():
    any_row = next(iter(per.values()))
    ms = [r["step_ms"] for r in per.values() if r.get("step_ms")]
    cells = [name, any_row["model"], f"{any_row['params']:,}",
             f"{any_row['gflops']:.4f}",
             f"{sorted(ms)[len(ms) // 2]:.0f}" if ms else "-"]
    cells += [f"{100 * per[d]['top1']:.1f}%" if d in per and per[d].get(
        "top1") is not None else "-" for d in datasets]
    cells += [str(any_row["steps"]), f"{sum(r.get('wall_seconds', 0) for r in per.values()):.0f}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  from vidjax import host_memory
  host_memory.retain_freed_memory()  # before JAX's CPU client starts
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  from vidjax.errors import VidjaxError
  wanted = _MODELS.value or list(MODELS)
  models, skipped = available(wanted)
  for name, why in skipped.items():
    print(f"skipped {name}: {why}")
  try:
    rows = build_table(models, _STEPS.value, _DATASETS.value, _OUT.value,
                       _TINY.value, _DATA_DIR.value)
  except VidjaxError as e:
    cli.fail(str(e))
  if _MARKDOWN.value:
    table = markdown([r for r in rows if r["config"] in models],
                     _DATASETS.value)
    print(table)
    with open(os.path.splitext(_OUT.value)[0] + ".md", "w") as f:
      f.write(table + "\n")


if __name__ == "__main__":
  sys.exit(app.run(main))
