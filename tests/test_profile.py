"""The main job's view of where time goes: profile traces, the persistent
compilation cache, and the data-wait / MFU / memory figures it logs.

Two starts of `python -m vidjax.main` (tiny ViViT, 8 forced CPU devices)
with the same config and cache folder in different workdirs: the first
writes the cache and a trace of steps 2-3; the second loads both compiled
steps from the cache (jax's monitoring events count the hits).
"""
import glob
import json
import os
import subprocess
import sys

import pytest

from conftest import tiny_config
from test_main_cli import ROOT, tiny_flags

# Runs vidjax.main and prints the persistent-cache hits it saw at exit.
_WRAPPER = """
import atexit, sys
import jax.monitoring
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(1)
    if event == "/jax/compilation_cache/cache_hits" else None)
atexit.register(lambda: print(f"CACHE_HITS {len(hits)}", flush=True))
sys.argv = ["vidjax.main"] + sys.argv[1:]
from vidjax import main
main.run()
"""
PEAK = 1e12  # a given device peak, so that train/mfu is logged on a CPU
# One xdist worker runs this module: its module fixture runs once (pytest.ini).
# Both starts compile at XLA optimisation level 0 (conftest.py; the
# subprocesses inherit it): 4 steps of a tiny model cost their compilation.
pytestmark = [pytest.mark.xdist_group("profile"), pytest.mark.fast_compile]


def _run(workdir, cache, data_dir):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the config's folder only
  proc = subprocess.run(
      [sys.executable, "-c", _WRAPPER, "--config=configs/vivit_factorized.py",
       f"--workdir={workdir}", *tiny_flags(data_dir),
       "--config.num_train_steps=4", "--config.eval_every_steps=100",
       "--config.profile_steps=2,2", f"--config.device_peak_flops={PEAK}",
       f"--config.compilation_cache_dir={cache}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, proc.stderr[-3000:]
  hits = [int(line.split()[1]) for line in proc.stdout.splitlines()
          if line.startswith("CACHE_HITS")]
  return proc.stdout, hits[-1]


@pytest.fixture(scope="module")
def two_starts(tiny_data_dir, tmp_path_factory):
  base = tmp_path_factory.mktemp("starts")
  cache = base / "cache"
  first = _run(base / "a", cache, tiny_data_dir)
  files = sorted(os.listdir(cache))
  second = _run(base / "b", cache, tiny_data_dir)
  return base, files, first, second


def test_second_start_compiles_from_the_cache(two_starts):
  _, files, (out1, hits1), (out2, hits2) = two_starts
  assert files  # the first start wrote executables to the config's folder
  assert "train step memory per device" in out1
  assert "eval step memory per device" in out1
  # Both steps are compiled before step 0; the second start loads them.
  assert hits2 >= 2 and hits2 > hits1
  assert "compiled the train and eval steps in" in out2


def test_profile_trace_holds_the_train_steps(two_starts):
  base = two_starts[0]
  traces = glob.glob(str(base / "a" / "profile" / "plugins" / "profile" /
                         "*" / "*.xplane.pb"))
  assert len(traces) == 1  # TensorBoard's profile plugin reads this layout
  data = open(traces[0], "rb").read()
  assert b"train_step" in data  # the StepTraceAnnotation and the jitted step


def test_metrics_hold_data_wait_and_mfu(two_starts):
  from vidjax import costs, steps
  base = two_starts[0]
  rows = [json.loads(line) for line in open(base / "a" / "metrics.jsonl")]
  rows = [r for r in rows if "train/loss" in r]
  assert [r["step"] for r in rows] == [2, 4]
  config = tiny_config("", num_train_steps=4)
  model, shape = costs.configured_model(config)
  per_step = 6 * costs.kernel_gmacs(model, shape) * 1e9 * 16
  for r in rows:
    assert 0.0 <= r["train/data_wait_frac"] <= 1.0
    # MFU = model FLOPs per step x steps/s / (8 devices x the given peak).
    assert r["train/mfu"] == pytest.approx(
        per_step * r["train/steps_per_sec"] / (8 * PEAK), rel=1e-6)
    assert "train/device_peak_bytes" not in r  # XLA:CPU reports none


@pytest.mark.parametrize("value", ["5", "a,b", "-1,2", "3,0", "1,2,3"])
def test_bad_profile_steps_are_one_line(value):
  from vidjax.config_check import check_config
  from vidjax.errors import VidjaxError
  with pytest.raises(VidjaxError, match="config.profile_steps must be") as e:
    check_config(tiny_config("", profile_steps=value))
  assert "\n" not in str(e.value)


def test_profile_window_and_cache_dir_choice(monkeypatch, tmp_path):
  from vidjax import main, train
  assert train.profile_window(tiny_config("")) is None
  assert train.profile_window(tiny_config("", profile_steps="10,5")) == (10, 5)
  assert train.profile_window({"profile_steps": (3, 2)}) == (3, 2)
  config = tiny_config("")
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/from/env")
  assert main.compilation_cache_dir(config) == "/from/env"
  config.compilation_cache_dir = "gs://bucket/cache"  # the config's wins
  assert main.compilation_cache_dir(config) == "gs://bucket/cache"
  config.compilation_cache_dir = "none"
  assert main.compilation_cache_dir(config) == ""
  config.compilation_cache_dir = ""
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert main.compilation_cache_dir(config) == str(tmp_path / "vidjax" / "jax")
