"""VideoMAE end to end: pretrain (CLI) -> export (CLI) -> finetune."""
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import videomae_finetune
from conftest import TINY_TEST_PER_CLASS, TINY_TRAIN_PER_CLASS
from vidjax import checkpoint, train
from vidjax.errors import VidjaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATA = {"dataset.train_per_class": TINY_TRAIN_PER_CLASS,
        "dataset.test_per_class": TINY_TEST_PER_CLASS,
        "dataset.num_frames": 4, "dataset.crop_size": 16,
        "dataset.num_workers": 2, "batch_size": 16, "eval_batch_size": 16,
        "num_test_clips": 1, "optimizer.warmup_steps": 1}
ENCODER = {"model.hidden_size": 16, "model.num_layers": 2,
           "model.num_heads": 2, "model.mlp_dim": 32}
DECODER = {"model.decoder_hidden_size": 8, "model.decoder_num_heads": 2,
           "model.decoder_num_layers": 1, "model.decoder_mlp_dim": 16,
           # grid 2 x 2 x 2: 2 of the 4 positions of each slot hidden
           "model.mask_ratio": 0.5}
SCHEDULE = {"num_train_steps": 4, "log_every_steps": 2, "eval_every_steps": 4,
            "checkpoint_every_steps": 4}
# 4-step `vidjax.main` runs: compile-bound, so XLA optimisation level 0, their
# subprocesses too (conftest.fast_compile: 64 -> 53 CPU-s).
pytestmark = pytest.mark.fast_compile


def run_module(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)


def flat_params(path):
  params, _, _ = checkpoint.load_pretrained(str(path))
  return {jax.tree_util.keystr(k): v
          for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_pretrain_export_finetune_round_trip(tiny_data_dir, tmp_path, capsys):
  pre, enc, fine = tmp_path / "pre", tmp_path / "enc", tmp_path / "fine"
  overrides = {"dataset.data_dir": tiny_data_dir, **DATA, **ENCODER,
               **DECODER, **SCHEDULE}
  proc = run_module("vidjax.main", "--config=configs/videomae_pretrain.py",
                    f"--workdir={pre}",
                    *(f"--config.{k}={v}" for k, v in overrides.items()))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "done: 4 steps" in proc.stdout
  assert "reconstruction loss=" in proc.stdout and "top1" not in proc.stdout
  rows = [json.loads(line) for line in open(pre / "metrics.jsonl")]
  train_rows = [r for r in rows if "train/loss" in r]
  eval_rows = [r for r in rows if "eval/recon_loss" in r]
  assert [r["step"] for r in train_rows] == [2, 4]
  assert [r["step"] for r in eval_rows] == [4]
  assert not any("eval/top1" in r for r in rows)
  # 16 test videos x 1 view; per-tubelet normalised targets have unit
  # variance, so an untrained decoder's error is of order 1.
  assert eval_rows[0]["eval/num_views"] == 8 * TINY_TEST_PER_CLASS
  for value in [r["train/loss"] for r in train_rows] + [
      eval_rows[0]["eval/recon_loss"]]:
    assert math.isfinite(value) and 0.3 < value < 10.0

  proc = run_module("tools.export_checkpoint", f"--workdir={pre}",
                    f"--out={enc}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["dropped"] == ["decoder", "decoder_head",
                               "encoder_to_decoder", "mask_token"]
  pretrained, exported = flat_params(pre), flat_params(enc)
  assert set(exported) == {k for k in pretrained
                           if k.startswith("['encoder']")}
  for key, value in exported.items():
    np.testing.assert_array_equal(value, pretrained[key])
  with open(enc / "config.json") as f:
    assert json.load(f)["config"]["model"]["name"] == "videomae_pretrain"

  config = videomae_finetune.get_config()
  for key, value in {"dataset.data_dir": tiny_data_dir, **DATA, **ENCODER,
                     **SCHEDULE, "init_from.checkpoint_path": str(enc)
                     }.items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  # The small config has none (issue #17): fine-tune through the paper
  # recipe's layer decay here.
  config.optimizer.layer_decay = 0.75
  capsys.readouterr()
  train.train_and_evaluate(config, str(fine), stop_after_steps=0)
  out = capsys.readouterr().out
  loaded = flat_params(fine)
  encoder_keys = [k for k in loaded if k.startswith("['encoder']")]
  assert len(encoder_keys) == len(exported) - 2  # all but the final norm
  assert f"loaded {len(encoder_keys)} of {len(loaded)} parameters" in out
  for key in encoder_keys:  # every encoder parameter, bit for bit
    np.testing.assert_array_equal(loaded[key], exported[key], err_msg=key)
  assert sorted(set(loaded) - set(encoder_keys)) == [
      "['fc_norm']['bias']", "['fc_norm']['scale']", "['head']['bias']",
      "['head']['kernel']"]
  assert "unused from the checkpoint: encoder/transformer/norm/scale" in out

  final = train.train_and_evaluate(config, str(fine))  # resume, finish
  assert 0.0 <= final["eval/top1"] <= final["eval/top5"] <= 1.0
  assert math.isfinite(final["eval/loss"])
  trained = flat_params(fine)
  assert not np.array_equal(trained["['head']['kernel']"],
                            loaded["['head']['kernel']"])


@pytest.mark.parametrize("task,model,pattern", [
    ("classification", "videomae_pretrain", "set config.task="),
    ("videomae_pretrain", "videomae", "needs config.model.name="),
    ("mae", "videomae", "config.task='mae'"),
])
def test_task_and_model_must_agree(tiny_data_dir, tmp_path, task, model,
                                   pattern):
  config = videomae_finetune.get_config()
  config.task, config.model.name = task, model
  with pytest.raises(VidjaxError, match=pattern) as err:
    train.train_and_evaluate(config, str(tmp_path))
  assert "\n" not in str(err.value)
