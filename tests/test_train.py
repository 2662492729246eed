"""The spine end to end: sharding parity, exact resume, init_from, bad input."""
import hashlib
import json
import os

import jax
import numpy as np
import pytest

from conftest import tiny_config
from vidjax import checkpoint, train
from vidjax.errors import VidjaxError

# Runs of 2-6 steps of a tiny model: compile-bound, so XLA optimisation level
# 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def losses(workdir):
  return {r["step"]: r["train/loss"] for r in read_metrics(workdir)
          if "train/loss" in r}


def final_params(workdir):
  params, _, _ = checkpoint.load_pretrained(workdir)
  return jax.tree_util.tree_flatten_with_path(params)[0]


def test_eight_devices_match_one_device(tiny_data_dir, tmp_path):
  assert jax.device_count() == 8
  runs = {}
  for n in (1, 8):
    config = tiny_config(tiny_data_dir, num_devices=n, log_every_steps=1,
                         num_train_steps=4, eval_every_steps=100)
    train.train_and_evaluate(config, str(tmp_path / f"d{n}"))
    runs[n] = losses(tmp_path / f"d{n}")
  assert sorted(runs[1]) == [1, 2, 3, 4]
  one, eight = (np.array([runs[n][s] for s in range(1, 5)]) for n in (1, 8))
  assert np.all(np.isfinite(one))
  np.testing.assert_allclose(eight, one, rtol=1e-4)
  assert one[0] != one[-1]  # the steps changed the parameters


def test_interrupted_run_equals_uninterrupted(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir, num_train_steps=6, log_every_steps=1,
                       label_smoothing=0.1)
  config.model.dropout_rate = 0.1  # the dropout stream must resume too
  train.train_and_evaluate(config, str(tmp_path / "straight"))
  stopped = train.train_and_evaluate(config, str(tmp_path / "split"),
                                     stop_after_steps=3)
  assert stopped == {}
  assert sorted(os.listdir(tmp_path / "split" / "checkpoints")) == ["3"]
  final = train.train_and_evaluate(config, str(tmp_path / "split"))
  a, b = final_params(tmp_path / "straight"), final_params(tmp_path / "split")
  assert [k for k, _ in a] == [k for k, _ in b]
  for (key, x), (_, y) in zip(a, b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(key))
  assert losses(tmp_path / "straight") == losses(tmp_path / "split")
  assert 0.0 <= final["eval/top1"] <= 1.0


def test_resume_of_a_finished_run_only_evaluates(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir, num_train_steps=2, eval_every_steps=2)
  first = train.train_and_evaluate(config, str(tmp_path))
  again = train.train_and_evaluate(config, str(tmp_path))
  assert first["eval/top1"] == again["eval/top1"]
  steps = [r["step"] for r in read_metrics(tmp_path) if "train/loss" in r]
  assert steps == [2]  # no training step ran the second time


def test_incompatible_checkpoint_is_named_and_left_intact(tiny_data_dir,
                                                          tmp_path):
  config = tiny_config(tiny_data_dir, num_train_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  ckpt_dir = tmp_path / "checkpoints"
  before = _digest(ckpt_dir)
  config.model.hidden_size = 24
  with pytest.raises(VidjaxError) as err:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(err.value)
  assert "\n" not in message
  assert "does not fit the configured model" in message
  assert "[16] in checkpoint vs [24] in model" in message
  assert _digest(ckpt_dir) == before


def test_init_from_loads_matching_and_names_the_rest(tiny_data_dir, tmp_path,
                                                     capsys):
  source = tiny_config(tiny_data_dir, num_train_steps=2)
  train.train_and_evaluate(source, str(tmp_path / "pre"))
  target = tiny_config(tiny_data_dir, num_train_steps=2)
  target.model.temporal_layers = 2  # one extra block: not in the checkpoint
  target.init_from.checkpoint_path = str(tmp_path / "pre")
  train.train_and_evaluate(target, str(tmp_path / "fine"),
                           stop_after_steps=0)
  out = capsys.readouterr().out
  assert "not loaded (kept its initialisation)" in out
  pre = dict((jax.tree_util.keystr(k), v)
             for k, v in final_params(tmp_path / "pre"))
  fine = dict((jax.tree_util.keystr(k), v)
              for k, v in final_params(tmp_path / "fine"))
  shared = [k for k in fine if k in pre]
  extra = [k for k in fine if k not in pre]
  assert shared and extra
  assert all(np.array_equal(pre[k], fine[k]) for k in shared)
  assert all(k.split("'")[1] in out for k in extra[:1])


def test_init_from_missing_path_fails_first(tiny_data_dir, tmp_path):
  config = tiny_config(tiny_data_dir)
  config.init_from.checkpoint_path = str(tmp_path / "nope")
  with pytest.raises(VidjaxError, match="init_from.checkpoint_path=.*nope "
                     "does not exist"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "checkpoints" / "0")


@pytest.mark.parametrize("key,value,pattern", [
    ("batch_size", 12, r"config.batch_size=12 is not divisible by the device "
     r"count \(8\)"),
    ("num_test_crops", 2, "config.num_test_crops must be 1 or 3"),
    ("dataset.num_frames", 0, "config.dataset.num_frames must be > 0"),
    ("dataset.name", "nope", "config.dataset.name='nope': vidjax has no builder for it"),
    ("model.name", "nope", "config.model.name='nope' is not a registered"),
    ("optimizer.name", "lamb", "config.optimizer.name='lamb'"),
])
def test_bad_config_values(tiny_data_dir, tmp_path, key, value, pattern):
  config = tiny_config(tiny_data_dir, **{key: value})
  with pytest.raises(VidjaxError, match=pattern):
    train.train_and_evaluate(config, str(tmp_path))


def test_workdir_that_is_a_file(tiny_data_dir, tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(VidjaxError, match="is not a directory"):
    train.train_and_evaluate(tiny_config(tiny_data_dir), str(path))


def _digest(directory) -> str:
  h = hashlib.sha256()
  for root, _, files in sorted(os.walk(directory)):
    for name in sorted(files):
      h.update(name.encode())
      with open(os.path.join(root, name), "rb") as f:
        h.update(f.read())
  return h.hexdigest()
