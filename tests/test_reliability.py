"""Runs that survive (issue #7): preemption, kill -9, a crash mid-save,
non-finite losses, a full disk, and two processes run as one.

Each fault is real: signals are sent to a `python -m vidjax.main` process,
the mid-save crash is a SIGKILL while orbax's asynchronous write is in flight,
the full disk is the kernel refusing writes past RLIMIT_FSIZE (EFBIG), and
the two processes talk through `jax.distributed` on 127.0.0.1.
"""
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import tiny_config
from vidjax import checkpoint, train
from vidjax.errors import VidjaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One xdist worker runs this module: its module fixture runs once (pytest.ini).
# Its runs are a few steps of a tiny model, in this process and in
# `python -m vidjax.main` subprocesses (which inherit the environment):
# compile-bound, so all compile at XLA optimisation level 0 (conftest.py).
pytestmark = [pytest.mark.xdist_group("reliability"),
              pytest.mark.fast_compile]


def reliability_config(data_dir, **overrides):
  """single_frame on the tiny dataset: fast steps, a checkpoint every 2."""
  fields = dict(num_train_steps=8, checkpoint_every_steps=2, log_every_steps=1,
                eval_every_steps=100, keep_checkpoints=10)
  fields.update(overrides)
  return tiny_config(data_dir, "single_frame", **fields)


def write_config_file(config, path) -> str:
  """A config file that rebuilds exactly `config` (for the CLI)."""
  with open(path, "w") as f:
    f.write("import ml_collections\n\n\ndef get_config():\n"
            f"  return ml_collections.ConfigDict({config.to_dict()!r})\n")
  return str(path)


def start_main(config_file, workdir, *flags, env=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
  return subprocess.Popen(
      [sys.executable, "-m", "vidjax.main", f"--config={config_file}",
       f"--workdir={workdir}", *flags], cwd=ROOT, env=env, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=300):
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


def wait_for(predicate, proc, timeout=180.0):
  t0 = time.time()
  while not predicate():
    assert proc.poll() is None, f"exited early: {proc.communicate()[1][-2000:]}"
    assert time.time() - t0 < timeout, "timed out"
    time.sleep(0.02)


def complete_steps(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if \
      os.path.isdir(d) else []


def params_of(workdir, step=None):
  path = os.path.join(workdir, "checkpoints", str(step)) if step else workdir
  params, _, _ = checkpoint.load_pretrained(str(path))
  return {jax.tree_util.keystr(k): v for k, v in
          jax.tree_util.tree_flatten_with_path(params)[0]}


def assert_identical(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(tiny_data_dir, tmp_path_factory):
  """An uninterrupted run (8 devices, in this process) to compare against."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  config = reliability_config(tiny_data_dir)
  train.train_and_evaluate(config, workdir)
  return config, workdir


def test_sigterm_saves_exits_and_resumes(tiny_data_dir, tmp_path):
  config = reliability_config(tiny_data_dir, num_train_steps=60,
                              checkpoint_every_steps=1000)
  cfg = write_config_file(config, tmp_path / "cfg.py")
  workdir = str(tmp_path / "run")
  proc = start_main(cfg, workdir)
  metrics = os.path.join(workdir, "metrics.jsonl")
  wait_for(lambda: os.path.exists(metrics) and
           len(open(metrics).readlines()) >= 2, proc)
  proc.send_signal(signal.SIGTERM)
  rc, out, err = finish(proc)
  assert rc == 128 + signal.SIGTERM, err[-2000:]
  last = err.strip().splitlines()[-1]
  m = re.fullmatch(r"stopped by SIGTERM at step (\d+) of 60; checkpoint "
                   r"(\S+); run the same command to resume", last)
  assert m, last
  stopped = int(m.group(1))
  assert 2 <= stopped < 60
  assert m.group(2) == os.path.join(workdir, "checkpoints", str(stopped))
  # The step in flight was finished and saved (no regular save before 60).
  assert complete_steps(workdir) == [stopped]
  rc, out, err = finish(start_main(cfg, workdir))
  assert rc == 0, err[-2000:]
  assert f"resumed from {m.group(2)} at step {stopped}" in out
  assert "done: 60 steps" in out
  rows = [json.loads(line) for line in open(metrics)]
  steps = [r["step"] for r in rows if "train/loss" in r]
  assert steps == list(range(1, 61))  # every step once: none lost or repeated


def test_sigint_saves_and_exits(tiny_data_dir, tmp_path):
  config = reliability_config(tiny_data_dir, num_train_steps=60,
                              checkpoint_every_steps=1000)
  cfg = write_config_file(config, tmp_path / "cfg.py")
  workdir = str(tmp_path / "run")
  proc = start_main(cfg, workdir)
  metrics = os.path.join(workdir, "metrics.jsonl")
  wait_for(lambda: os.path.exists(metrics), proc)
  proc.send_signal(signal.SIGINT)
  rc, _, err = finish(proc)
  assert rc == 128 + signal.SIGINT, err[-2000:]
  last = err.strip().splitlines()[-1]
  assert re.fullmatch(r"stopped by SIGINT at step \d+ of 60; checkpoint \S+; "
                      r"run the same command to resume", last), last
  assert len(complete_steps(workdir)) == 1


def test_kill9_then_restart_is_bit_identical(reference, tmp_path):
  config, ref_dir = reference
  cfg = write_config_file(config, tmp_path / "cfg.py")
  workdir = str(tmp_path / "run")
  seed = random.randrange(1 << 30)
  delay = random.Random(seed).uniform(0.0, 0.4)
  proc = start_main(cfg, workdir)
  wait_for(lambda: 2 in complete_steps(workdir), proc)
  time.sleep(delay)
  proc.kill()
  proc.communicate()
  killed_at = complete_steps(workdir)
  rc, out, err = finish(start_main(cfg, workdir))
  assert rc == 0, err[-2000:]
  assert "done: 8 steps" in out
  assert_identical(params_of(workdir), params_of(ref_dir))
  print(f"killed after {delay:.3f}s (seed {seed}); complete checkpoints "
        f"then: {killed_at}")


def test_crash_during_save_keeps_previous_checkpoint(reference, tmp_path):
  config, ref_dir = reference
  cfg = write_config_file(config, tmp_path / "cfg.py")
  workdir = str(tmp_path / "run")
  rc, _, err = finish(start_main(
      cfg, workdir, env={"VIDJAX_FAULT": "kill_after_save_start:4"}))
  assert rc == -signal.SIGKILL, err[-2000:]
  ckpt_dir = os.path.join(workdir, "checkpoints")
  assert complete_steps(workdir) == [2]
  half = [n for n in os.listdir(ckpt_dir) if n.startswith("4.")]
  assert half, os.listdir(ckpt_dir)  # the interrupted write left a tmp folder
  rc, out, err = finish(start_main(cfg, workdir))
  assert rc == 0, err[-2000:]
  assert f"resumed from {ckpt_dir}/2 at step 2" in out
  assert not [n for n in os.listdir(ckpt_dir) if not n.isdigit()]
  assert_identical(params_of(workdir), params_of(ref_dir))


def metric_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {r["step"]: r for r in map(json.loads, f) if "train/loss" in r}


def test_injected_nan_steps_are_skipped_inside_the_step(tiny_data_dir,
                                                        tmp_path):
  base = reliability_config(tiny_data_dir, num_train_steps=6)
  before = str(tmp_path / "before")
  train.train_and_evaluate(base, before, stop_after_steps=2)
  config = reliability_config(tiny_data_dir, num_train_steps=6,
                              inject_nan_at_steps=(3, 4))
  workdir = str(tmp_path / "nan")
  result = train.train_and_evaluate(config, workdir)
  rows = metric_rows(workdir)
  assert [rows[s]["train/skipped_steps"] for s in range(1, 7)] == \
      [0, 0, 1, 2, 2, 2]
  assert rows[3]["train/loss"] == "nan" and rows[4]["train/loss"] == "nan"
  assert np.isfinite(rows[5]["train/loss"]) and np.isfinite(result["eval/loss"])
  # Steps 3 and 4 changed nothing: the step-4 checkpoint holds step 2's params.
  assert_identical(params_of(workdir, 4), params_of(before, 2))
  for step in complete_steps(workdir):
    assert all(np.isfinite(v).all() for v in params_of(workdir, step).values())


def test_nonfinite_streak_stops_with_clear_error(tiny_data_dir, tmp_path):
  config = reliability_config(tiny_data_dir, num_train_steps=8,
                              inject_nan_at_steps=(3, 4, 5, 6, 7, 8),
                              max_consecutive_nonfinite=3)
  workdir = str(tmp_path / "run")
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, workdir)
  assert str(e.value) == (
      "3 consecutive non-finite losses/gradients at step 5 (config."
      "max_consecutive_nonfinite=3); the last checkpoint holds the last "
      "finite parameters")
  assert complete_steps(workdir) == [2, 4]
  assert_identical(params_of(workdir, 4), params_of(workdir, 2))


def test_nonfinite_parameters_are_never_saved(tiny_data_dir, tmp_path):
  config = reliability_config(tiny_data_dir, num_train_steps=2)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  from vidjax import optim, steps
  from vidjax.registry import build_model
  model = build_model(config.model, 8)
  tx = optim.make_optimizer(config.optimizer, lambda s: 1e-3)
  state = steps.create_state(model, tx, config, jax.random.PRNGKey(0))
  bad = jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(np.nan), state.params)
  state = state.replace(params=bad, step=state.step + 5)
  ckpt = checkpoint.Checkpointer(workdir, 10)
  with pytest.raises(VidjaxError) as e:
    ckpt.save(state, {})
  ckpt.close()
  assert str(e.value) == (
      "parameters are not finite at step 5: not saving them; last complete "
      f"checkpoint: {workdir}/checkpoints/2")
  assert complete_steps(workdir) == [2]


def tree_bytes(directory):
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def test_disk_full_mid_run_is_one_line_and_keeps_last_checkpoint(
    tiny_data_dir, tmp_path):
  config = reliability_config(tiny_data_dir, num_train_steps=6)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir, stop_after_steps=2)
  good = tree_bytes(os.path.join(workdir, "checkpoints", "2"))
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  # Files may not grow past 12 KB: metrics and TensorBoard lines still fit,
  # the next checkpoint's arrays do not (EFBIG, as on a full disk).
  resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, hard))
  try:
    with pytest.raises(VidjaxError) as e:
      train.train_and_evaluate(config, workdir)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, old_handler)
  message = str(e.value)
  assert "\n" not in message
  assert re.fullmatch(
      rf"cannot write checkpoint {workdir}/checkpoints/\d+: .*; last complete "
      rf"checkpoint: {workdir}/checkpoints/2", message), message
  assert tree_bytes(os.path.join(workdir, "checkpoints", "2")) == good
  result = train.train_and_evaluate(config, workdir)  # space again: resumes
  assert complete_steps(workdir)[-1] == 6 and np.isfinite(result["eval/loss"])


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_two_processes(cfg, workdir, *flags):
  port = free_port()
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  procs = [start_main(cfg, workdir, "--multihost",
                      f"--coordinator_address=127.0.0.1:{port}",
                      "--num_processes=2", f"--process_id={i}", *flags,
                      env=env) for i in range(2)]
  results = [finish(p) for p in procs]
  for rc, _, err in results:
    assert rc == 0, err[-3000:]
  return results


def test_two_processes_equal_one_process(tiny_data_dir, tmp_path):
  config = reliability_config(tiny_data_dir, num_train_steps=6,
                              checkpoint_every_steps=3)
  single = str(tmp_path / "single")
  train.train_and_evaluate(config, single)  # 1 process x 8 devices
  cfg = write_config_file(config, tmp_path / "cfg.py")
  workdir = str(tmp_path / "two")
  # 2 processes x 4 devices = one global mesh of 8: first 3 steps, then a
  # restart restores the checkpoint both processes wrote, and finishes.
  first = run_two_processes(cfg, workdir, "--stop_after_steps=3")
  assert "stopped at step 3 of 6" in first[0][1]
  second = run_two_processes(cfg, workdir)
  assert "resumed from" in second[0][1] and "at step 3" in second[0][1]
  assert "done: 6 steps" in second[0][1]
  for _, out, _ in (first[1], second[1]):  # process 1 logs nothing
    assert "step " not in out
  two, one = metric_rows(workdir), metric_rows(single)
  assert sorted(two) == sorted(one) == list(range(1, 7))  # process 0 wrote
  np.testing.assert_allclose([two[s]["train/loss"] for s in range(1, 7)],
                             [one[s]["train/loss"] for s in range(1, 7)],
                             rtol=1e-5)
  assert complete_steps(workdir) == [3, 6]
