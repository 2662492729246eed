"""The separation bars of issue #22 on `synthetic_av` (config `separation`).

  python -m tools.separation_check [--workdir=DIR] [--variant=] [--steps=N]
      [--out=FILE.json] [--wavs=DIR --num_wavs=3]

Runs `configs/sound_of_pixels.py[:variant]` through the shared loop, as
`python -m vidjax.main --config=configs/sound_of_pixels.py --workdir=DIR`
does (train.train_and_evaluate: a finished run in DIR is only evaluated
again), and prints the bar table from its final evaluation on the test
mixtures (voices at held-out pitches; vidjax/tasks/separation/evaluate.py):

  mean SDRi (BSS-Eval v3 SDR, estimate - mixture)      >= 6 dB
  mean SI-SDRi                                          reported
  SDRi with the OTHER object's visual condition         <= 0 dB
  oracle ideal-ratio-mask SDR (mixture phase)           >= 15 dB

`--wavs=DIR` writes, for the first `num_wavs` test examples, 16-bit wavs of
the mixture, each object's stem and its separated estimate
(`<i>_mixture.wav`, `<i>_stem<k>.wav`, `<i>_estimate<k>.wav`), from the
run's last checkpoint.
"""
from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # as vidjax.main
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from vidjax import cli  # noqa: F401,E402  (puts the project root on sys.path)

BARS = (("eval/sdri", ">=", 6.0), ("eval/si_sdri", "report", None),
        ("eval/swap_sdri", "<=", 0.0), ("eval/oracle_sdr", ">=", 15.0))
LABELS = {"eval/sdri": "SDRi (dB)", "eval/si_sdri": "SI-SDRi (dB)",
          "eval/swap_sdri": "SDRi, other object's condition (dB)",
          "eval/oracle_sdr": "oracle IRM SDR (dB)"}


def make_config(variant: str = "", steps: int = 0):
  from configs import sound_of_pixels  # noqa: PLC0415
  config = sound_of_pixels.get_config(variant)
  if steps > 0:
    config.num_train_steps = steps
    config.eval_every_steps = config.checkpoint_every_steps = steps
  return config


def bar_rows(final: dict) -> list:
  """[(label, value, bar text, passed or None)]."""
  rows = []
  for key, op, bar in BARS:
    v = float(final.get(key, float("nan")))
    ok = None if op == "report" else (v >= bar if op == ">=" else v <= bar)
    rows.append((LABELS[key], v, "" if bar is None else f"{op} {bar:g}", ok))
  return rows


def table(rows) -> str:
  lines = [f"{'metric':40s} {'value':>8s}  {'bar':8s} pass"]
  for label, v, bar, ok in rows:
    lines.append(f"{label:40s} {v:8.2f}  {bar:8s} "
                 f"{'-' if ok is None else ('yes' if ok else 'NO')}")
  return "\n".join(lines)


def write_wavs(config, workdir: str, out_dir: str, count: int,
               log=print) -> list:
  """The first `count` test examples' mixture, stems and estimates as wavs
  (int16) from the run's latest checkpoint; returns the paths."""
  from scipy.io import wavfile  # noqa: PLC0415
  from vidjax import checkpoint, optim, sharding, train  # noqa: PLC0415
  from vidjax.tasks.separation import task as sep_task  # noqa: PLC0415
  task = sep_task.Separation()
  mesh = sharding.make_mesh(config.num_devices)
  pre = task.preflight(config, mesh)
  data = task.load_data(config, workdir, log, pre.class_names)
  schedule = optim.make_schedule(config.optimizer, config.num_train_steps, 1)
  tx = optim.make_optimizer(config.optimizer, schedule)
  ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints)
  if ckpt.latest_step() is None:
    raise SystemExit(f"error: no checkpoint in {workdir}")
  state, _ = train.initial_state(config, pre.model, tx, mesh, ckpt, log,
                                 task=task)
  os.makedirs(out_dir, exist_ok=True)
  test, rate, paths = data.test, data.test.sample_rate, []
  n = min(count, len(test))
  est = sep_task.separate_batch(config, state, test.rows(np.arange(n)))
  for i in range(n):
    waves = {"mixture": test.waves("mixture", i)}
    for k in range(est.shape[1]):
      waves[f"stem{k}"] = test.waves("stems", i)[k]
      waves[f"estimate{k}"] = est[i, k]
    for name, w in waves.items():
      path = os.path.join(out_dir, f"{i}_{name}.wav")
      wavfile.write(path, rate, np.clip(np.round(w * 32767), -32768,
                                        32767).astype(np.int16))
      paths.append(path)
  ckpt.close()
  log(f"wrote {len(paths)} wavs to {out_dir}")
  return paths


def check(workdir: str, variant: str = "", steps: int = 0,
          log=print) -> dict:
  """Trains (or resumes / re-evaluates) the run; the bar row."""
  from vidjax import train  # noqa: PLC0415
  config = make_config(variant, steps)
  t0 = time.time()
  final = train.train_and_evaluate(config, workdir)
  rows = bar_rows(final)
  out = {"variant": variant or "default", "steps": int(config.num_train_steps),
         "workdir": workdir, "seconds": round(time.time() - t0, 1),
         "metrics": {k: float(v) for k, v in final.items()},
         "bars": {label: ok for label, _, _, ok in rows if ok is not None}}
  log(table(rows))
  return out


def main(argv):
  from absl import flags, logging  # noqa: PLC0415
  del argv
  logging.set_verbosity(logging.ERROR)
  f = flags.FLAGS
  workdir = f.workdir or os.path.join("runs", "separation_check")
  row = check(workdir, f.variant, f.steps)
  if f.wavs:
    row["wavs"] = write_wavs(make_config(f.variant, f.steps), workdir,
                             f.wavs, f.num_wavs)
  if f.out:
    with open(f.out, "w") as fh:
      json.dump(row, fh, indent=1)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("workdir", "", "Run directory (resumed / re-evaluated "
                      "when it holds the run); default runs/separation_check.")
  flags.DEFINE_string("variant", "", "configs/sound_of_pixels.py variant.")
  flags.DEFINE_integer("steps", 0, "Train steps (0: the config's).")
  flags.DEFINE_string("out", "", "Write the result as JSON here.")
  flags.DEFINE_string("wavs", "", "Write example wavs to this folder.")
  flags.DEFINE_integer("num_wavs", 3, "Test examples written as wavs.")
  app.run(main)
