"""The audio-visual bars of issue #22 (fusion, synchronisation), through
the CLI.

  python -m tools.av_check [--runs=mbt,late,...] [--workdir=DIR]
      [--steps=N] [--jobs=2] [--out=FILE.json]

Each run is `python -m vidjax.main --config=configs/<file>.py:<variant>
--workdir=DIR/<run>` exactly as a user types it (a finished run is only
read back: vidjax.main evaluates nothing new), then its final
WORKDIR/eval/test_step<N>/metrics.json is read and compared with its bar:

| run | config | bar |
|---|---|---|
| looks | mbt.py:looks (video stream pretraining: both objects' colours) | - |
| voice | mbt.py:voice (audio stream pretraining: the voice's colour) | - |
| mbt | mbt.py (bottleneck fusion, from looks + voice) | top-1 >= 0.90; bottlenecks zeroed at test time <= 0.60 |
| late | mbt.py:late | top-1 <= 0.65 |
| video_only | mbt.py:video_only | top-1 <= 0.65 |
| audio_only | mbt.py:audio_only | top-1 <= 0.65 |
| early | mbt.py:early (full cross-attention, reported beside) | - |
| mbt_scratch | mbt.py without init_from (reported beside) | - |
| sync | av_sync.py (Owens & Efros' early-fusion network) | accuracy >= 0.95 (chance 0.5) |
| sync_noise | av_sync.py:noise (audio replaced by noise) | accuracy <= 0.55 |
| sync_mbt | mbt.py:sync (MBT with a binary head, reported beside) | - |
| which_cnn | av_sync.py:which (the early-fusion network on the fusion task) | - |
| ast | ast.py (audio only, voice task) | - |

mbt, late and early start from the looks and voice runs' streams
(`--config.init_from.checkpoint_path=DIR/looks,DIR/voice`), video_only
from looks and audio_only from voice; those two run first. All on the
embedded synthetic_av "which" build (two objects of different looks, one
sounds with the voice of its look, label = its side; circular events),
except ast (the "fusion" build's voice task). `--steps` overrides
every run's num_train_steps (the bars are stated for the configs' own).
"""
from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import time

from vidjax import cli

PRETRAINED = ("looks", "voice")  # MBT's streams, init_from (configs/mbt.py)
RUNS = {
    "looks": ("mbt", "looks", {}),
    "voice": ("mbt", "voice", {}),
    "mbt": ("mbt", "", {"eval/top1": (">=", 0.90),
                        "eval/top1_zero_bottlenecks": ("<=", 0.60)}),
    "late": ("mbt", "late", {"eval/top1": ("<=", 0.65)}),
    "video_only": ("mbt", "video_only", {"eval/top1": ("<=", 0.65)}),
    "audio_only": ("mbt", "audio_only", {"eval/top1": ("<=", 0.65)}),
    "early": ("mbt", "early", {}),
    "mbt_scratch": ("mbt", "", {}),
    "sync": ("av_sync", "", {"eval/top1": (">=", 0.95)}),
    "sync_noise": ("av_sync", "noise", {"eval/top1": ("<=", 0.55)}),
    "sync_mbt": ("mbt", "sync", {}),
    "which_cnn": ("av_sync", "which", {}),
    "ast": ("ast", "", {}),
}
DEFAULT_RUNS = ("looks", "voice", "mbt", "late", "video_only",
                "audio_only", "sync", "sync_noise", "which_cnn")
# Runs that start from the pretrained streams (the paper starts both from
# ImageNet / AudioSet models): --config.init_from.checkpoint_path=
# <workdir>/looks,<workdir>/voice (a one-stream baseline: its stream's run).
FROM_STREAMS = {"mbt": PRETRAINED, "late": PRETRAINED, "early": PRETRAINED,
                "video_only": ("looks",), "audio_only": ("voice",)}


def command(run: str, workdir: str, steps: int = 0) -> list:
  stem, variant, _ = RUNS[run]
  config = os.path.join(cli.ROOT, "configs", f"{stem}.py")
  args = [sys.executable, "-m", "vidjax.main",
          f"--config={config}" + (f":{variant}" if variant else ""),
          f"--workdir={os.path.join(workdir, run)}"]
  if steps:
    args.append(f"--config.num_train_steps={steps}")
  if run in FROM_STREAMS:
    args.append("--config.init_from.checkpoint_path=" + ",".join(
        os.path.join(workdir, p) for p in FROM_STREAMS[run]))
  return args


def final_metrics(workdir: str) -> dict:
  """The last eval/test_step<N>/metrics.json of a run ({} if none)."""
  found = glob.glob(os.path.join(workdir, "eval", "test_step*",
                                 "metrics.json"))
  if not found:
    return {}
  last = max(found, key=lambda p: int(p.split("test_step")[1].split(
      os.sep)[0]))
  with open(last) as f:
    return json.load(f)


def run_one(run: str, workdir: str, steps: int = 0) -> dict:
  t0 = time.time()
  proc = subprocess.run(command(run, workdir, steps), cwd=cli.ROOT,
                        capture_output=True, text=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  got = final_metrics(os.path.join(workdir, run))
  out = {"run": run, "returncode": proc.returncode,
         "seconds": round(time.time() - t0, 1),
         "command": " ".join(command(run, workdir, steps)[1:]),
         "step": got.get("step")}
  if proc.returncode:
    out["error"] = proc.stderr.strip().splitlines()[-1:]
  for key, (op, bar) in RUNS[run][2].items():
    value = got.get(key)
    out[key] = value
    out[f"{key} bar"] = f"{op} {bar}"
    out[f"{key} pass"] = value is not None and (
        value >= bar if op == ">=" else value <= bar)
  if not RUNS[run][2]:
    out["eval/top1"] = got.get("eval/top1")
  return out


def prepare(runs) -> None:
  """Builds each synthetic_av config the runs read, one at a time, before
  runs start in parallel (two runs building the same TFDS config at once
  collide on its final rename)."""
  import importlib  # noqa: PLC0415
  seen = set()
  for run in runs:
    stem, variant, _ = RUNS[run]
    d = importlib.import_module(f"configs.{stem}").get_config(variant).dataset
    if d.name != "synthetic_av" or d.config in seen:
      continue
    seen.add(d.config)
    config = os.path.join(cli.ROOT, "configs", f"{stem}.py")
    subprocess.run([sys.executable, "-m", "tools.prepare_data",
                    f"--config={config}" + (f":{variant}" if variant else "")],
                   cwd=cli.ROOT, check=True, capture_output=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def check(runs=DEFAULT_RUNS, workdir: str = "runs/av_check", steps: int = 0,
          jobs: int = 1) -> list:
  """Runs `runs` (the pretrained streams first, one at a time, where a
  fusion run needs them) and returns their rows in `runs`' order."""
  runs = tuple(runs)
  first = tuple(p for p in PRETRAINED if p in runs or any(
      r in FROM_STREAMS for r in runs))
  rest = tuple(r for r in runs if r not in first)
  if jobs > 1:
    prepare(first + rest)
  done = {r: run_one(r, workdir, steps) for r in first}
  with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
    done.update(zip(rest, pool.map(lambda r: run_one(r, workdir, steps),
                                   rest)))
  return [done[r] for r in runs if r in done] + [
      done[r] for r in first if r not in runs]


def table(rows) -> str:
  lines = ["| run | metric | value | bar | pass | steps | wall s |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    keys = [k for k in r if k.startswith("eval/") and not k.endswith(
        ("bar", "pass"))]
    for k in keys:
      v = r[k]
      lines.append(f"| {r['run']} | {k} | "
                   f"{'-' if v is None else format(v, '.4f')} | "
                   f"{r.get(k + ' bar', '-')} | "
                   f"{r.get(k + ' pass', '-')} | {r['step']} | "
                   f"{r['seconds']} |")
  return "\n".join(lines)


def main(argv):
  del argv
  from absl import flags  # noqa: PLC0415
  f = flags.FLAGS
  rows = check(tuple(f.runs), f.workdir, f.steps, f.jobs)
  print(table(rows))
  if f.out:
    with open(f.out, "w") as fh:
      json.dump(rows, fh, indent=1)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_list("runs", list(DEFAULT_RUNS), f"Of {', '.join(RUNS)}.")
  flags.DEFINE_string("workdir", "runs/av_check", "One folder per run.")
  flags.DEFINE_integer("steps", 0, "Override num_train_steps (0: the "
                       "configs').")
  flags.DEFINE_integer("jobs", 1, "Runs at once.")
  flags.DEFINE_string("out", "", "Write the rows as JSON here.")
  app.run(main)
