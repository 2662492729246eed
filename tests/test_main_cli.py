"""`python -m vidjax.main` as a user runs it: files written, values in them."""
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_TEST_PER_CLASS, TINY_TRAIN_PER_CLASS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny `vidjax.main` runs of a few steps: compile-bound, so XLA optimisation
# level 0, their subprocesses too (conftest.fast_compile: 30 -> 25 CPU-s).
pytestmark = pytest.mark.fast_compile


def run_main(*args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "vidjax.main", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True,
                        timeout=timeout)


def tiny_flags(data_dir):
  return [
      f"--config.dataset.data_dir={data_dir}",
      f"--config.dataset.train_per_class={TINY_TRAIN_PER_CLASS}",
      f"--config.dataset.test_per_class={TINY_TEST_PER_CLASS}",
      "--config.dataset.num_frames=4", "--config.dataset.crop_size=16",
      "--config.model.hidden_size=16", "--config.model.mlp_dim=32",
      "--config.model.num_heads=2", "--config.model.spatial_layers=1",
      "--config.model.temporal_layers=1", "--config.batch_size=16",
      "--config.eval_batch_size=16", "--config.num_train_steps=6",
      "--config.log_every_steps=2", "--config.eval_every_steps=4",
      "--config.checkpoint_every_steps=3", "--config.num_test_clips=2",
      "--config.optimizer.warmup_steps=2",
  ]


def test_main_job_end_to_end(tiny_data_dir, tmp_path):
  workdir = tmp_path / "run"
  proc = run_main("--config=configs/vivit_factorized.py",
                  f"--workdir={workdir}", *tiny_flags(tiny_data_dir))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "done: 6 steps" in proc.stdout
  assert "step 4: " in proc.stdout and "train/loss=" in proc.stdout
  assert "eval/top1=" in proc.stdout
  assert f"checkpoint {workdir}/checkpoints/6" in proc.stdout
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  train_rows = [r for r in rows if "train/loss" in r]
  eval_rows = [r for r in rows if "eval/top1" in r]
  assert [r["step"] for r in train_rows] == [2, 4, 6]
  assert [r["step"] for r in eval_rows] == [4, 6]
  # Untrained 8-way classifier: loss near ln 8.
  assert abs(train_rows[0]["train/loss"] - math.log(8)) < 0.5
  # Warm-up of 2 steps to 2e-3, then cosine over the remaining 4 steps: at
  # step 5 (the last one logged at 6) the rate is 2e-3 * (1 + cos(pi*3/4))/2.
  lr5 = 2e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 4))
  assert train_rows[-1]["train/lr"] == pytest.approx(lr5, rel=1e-5)
  for r in eval_rows:
    assert r["eval/num_videos"] == 8 * TINY_TEST_PER_CLASS
    for key in ("eval/top1", "eval/top5", "eval/clip_top1", "eval/clip_top5"):
      assert 0.0 <= r[key] <= 1.0
    assert r["eval/top5"] >= r["eval/top1"]
    # top-1 is a multiple of 1/16 videos, clip top-1 of 1/32 clips.
    assert r["eval/top1"] * 16 == pytest.approx(round(r["eval/top1"] * 16))
  assert glob.glob(str(workdir / "tb" / "events.out.tfevents.*"))
  assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]


def test_main_unknown_field_is_one_line(tmp_path):
  proc = run_main("--config=configs/vivit_factorized.py",
                  f"--workdir={tmp_path}", "--config.model.hiden_size=3")
  assert proc.returncode == 1
  assert proc.stderr.strip() == (
      "error: --config.model.hiden_size: the config has no field "
      "'hiden_size'; did you mean 'hidden_size'?")
  assert not os.listdir(tmp_path)


def test_main_missing_config_file_is_one_line(tmp_path):
  proc = run_main("--config=configs/nope.py", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith("error: --config=configs/nope.py: ")
  assert len(proc.stderr.strip().splitlines()) == 1
