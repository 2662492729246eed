"""Remote workdirs (gs://...) keep their scheme through the training loop.

No network: a fake `gs://` maps each bucket path onto a local folder at the
two places where vidjax hands a path to a file system (etils.epath via
`config_check.remote_path`, TensorBoard's event files included, and Orbax's
CheckpointManager), and records the paths they were given. A run with `--workdir=gs://bucket/run`
must hand them `gs://bucket/run/...`, never `/cwd/gs:/bucket/run`, and
another run must `init_from` it.
"""
import json
import os
import pathlib

import pytest

from conftest import tiny_config
from vidjax import checkpoint, config_check, evaluate, metrics, run_record, train
from vidjax.errors import VidjaxError

# Tiny runs of a few steps: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 32 -> 29 CPU-s).
pytestmark = pytest.mark.fast_compile


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
  root = tmp_path / "gcs"
  seen = {"orbax": [], "epath": []}

  def local(path) -> str:
    path = str(path)
    assert path.startswith("gs://"), path  # the scheme was kept
    return str(root / path[len("gs://"):])

  def fake_remote_path(path):
    seen["epath"].append(str(path))
    return pathlib.Path(local(path))

  for module in (config_check, checkpoint, metrics, evaluate, run_record):
    monkeypatch.setattr(module, "remote_path", fake_remote_path)
  real_manager = checkpoint._manager  # pylint: disable=protected-access

  def manager(directory, *args, **kwargs):
    if config_check.is_remote(directory):
      seen["orbax"].append(directory)
      directory = local(directory)
    return real_manager(directory, *args, **kwargs)

  monkeypatch.setattr(checkpoint, "_manager", manager)
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  return root, seen, cwd


def test_check_workdir_keeps_the_scheme(fake_gcs):
  root, seen, cwd = fake_gcs
  assert config_check.check_workdir("gs://bucket/new/run") == \
      "gs://bucket/new/run"
  assert (root / "bucket" / "new" / "run").is_dir()
  assert os.listdir(root / "bucket" / "new" / "run") == []  # probe removed
  (root / "bucket" / "file").write_text("x")
  with pytest.raises(VidjaxError, match="exists and is not a directory") as e:
    config_check.check_workdir("gs://bucket/file")
  assert "\n" not in str(e.value) and "gs://bucket/file" in str(e.value)
  assert config_check.absolute_path("gs://b/x") == "gs://b/x"
  assert config_check.absolute_path("x") == str(cwd / "x")
  assert os.listdir(cwd) == []


def test_training_and_init_from_on_a_gs_workdir(fake_gcs, tiny_data_dir,
                                                tmp_path, capsys):
  root, seen, cwd = fake_gcs
  config = tiny_config(tiny_data_dir, num_train_steps=4, eval_every_steps=100)
  train.train_and_evaluate(config, "gs://bucket/run")
  out = capsys.readouterr().out
  run = root / "bucket" / "run"
  assert "checkpoint gs://bucket/run/checkpoints/4" in out
  assert set(seen["orbax"]) == {"gs://bucket/run/checkpoints"}
  # TensorBoard's event file (vidjax/tb_events.py) goes through epath too.
  assert "gs://bucket/run/tb" in seen["epath"]
  (events,) = {p for p in seen["epath"] if p.startswith(
      "gs://bucket/run/tb/events.out.tfevents.")}
  assert "gs://bucket/run/metrics.jsonl" in seen["epath"]
  assert "gs://bucket/run/class_names.json" in seen["epath"]
  rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
  assert [r["step"] for r in rows if "train/loss" in r] == [2, 4]
  assert len(json.load(open(run / "class_names.json"))) == 8
  # the run record and the final evaluation's files land there too
  assert json.load(open(run / "config.json"))["num_train_steps"] == 4
  assert (run / "eval" / "test_step4" / "metrics.json").exists()
  assert "4" in os.listdir(run / "checkpoints")
  assert os.listdir(run / "tb") == [events.split("/")[-1]]
  assert os.listdir(cwd) == []  # nothing like ./gs:/bucket/run

  # A local run initialised from the remote one loads every parameter.
  target = tiny_config(tiny_data_dir, num_train_steps=4)
  target.init_from.checkpoint_path = "gs://bucket/run"
  train.train_and_evaluate(target, str(tmp_path / "fine"), stop_after_steps=0)
  out = capsys.readouterr().out
  assert "init_from gs://bucket/run/checkpoints/4: loaded" in out
  line = next(l for l in out.splitlines() if "init_from gs://" in l)
  loaded, total = line.split("loaded ")[1].split(" parameters")[0].split(" of ")
  assert loaded == total
