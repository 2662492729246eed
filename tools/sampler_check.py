"""The clip-sampler bars of issue #23 (SCSampler, Korbar et al. ICCV 2019)
through the main job, and the table.

  python -m tools.sampler_check --workdir=DIR [--classifier_run=RUN]
      [--seed=0] [--data_seed=0] [--out=FILE.json]
  python -m tools.sampler_check --run=DIR      # a finished run: table only

Runs (or resumes; a finished run is only re-read) `configs/scsampler.py`
through `vidjax.train.train_and_evaluate` -- the code `python -m
vidjax.main --config=configs/scsampler.py --workdir=DIR` runs: the
single-action long videos, the classifier trained in DIR/classifier (or
--classifier_run), the candidate clips cached, the sampler trained -- then
prints the final evaluation's table (DIR/eval/test_step<N>/) and the
verdicts:

* the sampler's clip-saliency ROC-AUC >= 0.90;
* scsampler2 video accuracy >= dense + 10 points, evaluating <= 1/8 of the
  classifier's clips (dense's count);
* (stretch, notes d.5) scsampler2 >= uniform2 + 20 points.
"""
from __future__ import annotations

import glob
import json
import os
import time

from vidjax import cli  # noqa: F401  (puts the project root on sys.path)

AUC_BAR, DENSE_MARGIN, UNIFORM_MARGIN, MAX_FRACTION = 0.90, 0.10, 0.20, 1 / 8


def final_metrics(run_dir: str) -> dict:
  """The last eval/test_step<N>/metrics.json of a long_video run."""
  from vidjax.errors import VidjaxError  # noqa: PLC0415
  paths = glob.glob(os.path.join(run_dir, "eval", "test_step*",
                                 "metrics.json"))
  if not paths:
    raise VidjaxError(f"--run={run_dir}: no eval/test_step<N>/metrics.json "
                      "(not a finished long_video run)")
  path = max(paths, key=lambda p: int(p.split("test_step")[-1].split(
      os.sep)[0]))
  with open(path) as f:
    return json.load(f)


def verdicts(m: dict, k: int = 2) -> dict:
  """{bar: (value, passed)} of the final metrics."""
  acc = lambda s: m[f"eval/{s}/accuracy"]  # noqa: E731
  frac = m[f"eval/scsampler{k}/clip_fraction"]
  return {
      f"sampler ROC-AUC >= {AUC_BAR}": (m["eval/sampler_auc"],
                                        m["eval/sampler_auc"] >= AUC_BAR),
      f"scsampler{k} >= dense + {DENSE_MARGIN:.2f} at <= 1/8 of the clips": (
          acc(f"scsampler{k}") - acc("dense"),
          acc(f"scsampler{k}") - acc("dense") >= DENSE_MARGIN - 1e-9
          and frac <= MAX_FRACTION),
      f"scsampler{k} >= uniform{k} + {UNIFORM_MARGIN:.2f} (stretch)": (
          acc(f"scsampler{k}") - acc(f"uniform{k}"),
          acc(f"scsampler{k}") - acc(f"uniform{k}") >= UNIFORM_MARGIN - 1e-9),
  }


def report(m: dict) -> str:
  from vidjax.tasks.long_video import evaluate as ev  # noqa: PLC0415
  lines = [ev.format_table(m["rows"], m["eval/sampler_auc"],
                           m["classifier_gmacs_per_clip"],
                           m["sampler_gmacs_per_clip"],
                           int(m["eval/num_videos"]),
                           int(m["eval/num_candidates"]))]
  for bar, (value, ok) in verdicts(m).items():
    lines.append(f"{'PASS' if ok else 'FAIL'}  {bar}: {value:+.3f}"
                 if "+" in bar else
                 f"{'PASS' if ok else 'FAIL'}  {bar}: {value:.3f}")
  return "\n".join(lines)


def run(workdir: str, classifier_run: str = "", seed: int = 0,
        data_seed: int = 0) -> dict:
  """configs/scsampler.py through train_and_evaluate; the final metrics."""
  from configs import scsampler  # noqa: PLC0415
  from vidjax import train  # noqa: PLC0415
  config = scsampler.get_config()
  config.classifier_run, config.seed = classifier_run, seed
  config.dataset.synthetic.seed = data_seed
  t0 = time.time()
  train.train_and_evaluate(config, workdir)
  m = final_metrics(workdir)
  m["wall_seconds"] = round(time.time() - t0, 1)
  return m


def main(argv):
  from absl import flags, logging  # noqa: PLC0415
  del argv
  logging.set_verbosity(logging.ERROR)  # orbax's restore notes
  f = flags.FLAGS
  if f.run:
    m = final_metrics(f.run)
  elif f.workdir:
    m = run(f.workdir, f.classifier_run, f.seed, f.data_seed)
  else:
    raise SystemExit("give --workdir=DIR (run) or --run=DIR (read)")
  print(report(m))
  if f.out:
    with open(f.out, "w") as fh:
      json.dump(m, fh, indent=1)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("workdir", "", "Run configs/scsampler.py here "
                      "(resumed / re-read when it has one).")
  flags.DEFINE_string("run", "", "Only read this finished run's table.")
  flags.DEFINE_string("classifier_run", "", "A classification run to use "
                      "as the classifier (default: train it in the run).")
  flags.DEFINE_integer("seed", 0, "Sampler init, batches, random-k draws.")
  flags.DEFINE_integer("data_seed", 0, "The long videos' build seed "
                      "(config.dataset.synthetic.seed).")
  flags.DEFINE_string("out", "", "Write the final metrics as JSON here.")
  app.run(main)
