"""Tiny localization runs through `python -m vidjax.main`'s loop, made once per
test session and shared (conftest.py's `tiny_localization_run` and
`tiny_two_stage_run` fixtures; tests/test_localization_main.py,
tests/test_localize.py).

* one-stage, `configs/actionformer.py:tiny` from pixels on the 8 forced CPU
  devices: the synthetic_untrimmed build, the backbone trained into
  WORKDIR/backbone, window features cached, the detector stopped at step 2 of
  4 and resumed (the outputs of both sessions are kept for the asserts).
* two-stage, `configs/actionformer_two_stage.py:tiny` on one device, for 2
  steps: the same build, and the one-stage run's backbone
  (`dataset.backbone_run`) and feature cache (copied: the same backbone and
  window geometry, so the same timing.json), so it compiles only the
  detector. The two-stage evaluation and tools.localize are tested on it.

Both compile at XLA optimisation level 0 (conftest.fast_compile: a few steps
of tiny models cost their compilation, not their running).
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import types

from configs import actionformer, actionformer_two_stage
from conftest import fast_compile

TINY_TRAIN_PER_CLASS, TINY_TEST_PER_CLASS = 8, 2  # conftest.tiny_data_dir


def tiny(data_dir, motion_dir, two_stage=False):
  """The tiny config on these TFDS dirs (synthetic_untrimmed, motion)."""
  config = (actionformer_two_stage if two_stage else actionformer).get_config(
      "tiny")
  config.dataset.data_dir = data_dir
  config.backbone.update({"data_dir": motion_dir,
                          "train_per_class": TINY_TRAIN_PER_CLASS,
                          "test_per_class": TINY_TEST_PER_CLASS})
  return config


def _train(config, work, **kw):
  from vidjax import train  # noqa: PLC0415
  out = io.StringIO()  # the loop's log (print), kept for the asserts
  with contextlib.redirect_stdout(out), fast_compile():
    result = train.train_and_evaluate(config, work, **kw)
  return result, out.getvalue()


def stop_and_resume(root: str, motion_dir: str):
  """The one-stage run: stopped at step 2, then resumed to step 4."""
  work = os.path.join(root, "run")
  config = tiny(os.path.join(root, "tfds"), motion_dir)
  first, first_out = _train(config, work, stop_after_steps=2)
  stopped = {p: os.path.isdir(os.path.join(work, "checkpoints", p))
             for p in ("2", "4")}
  final, resume_out = _train(config, work)
  return types.SimpleNamespace(
      work=work, data_dir=config.dataset.data_dir, motion_dir=motion_dir,
      config=config, first=first, first_out=first_out, stopped=stopped,
      final=final, resume_out=resume_out)


def two_stage(root: str, one) -> types.SimpleNamespace:
  """The two-stage run on `one`'s build, backbone and features."""
  from vidjax.tasks.localization import task  # noqa: PLC0415
  work = os.path.join(root, "run2")
  shutil.copytree(os.path.join(one.work, task.FEATURES_DIR),
                  os.path.join(work, task.FEATURES_DIR))
  config = tiny(one.data_dir, one.motion_dir, two_stage=True)
  config.dataset.backbone_run = os.path.join(one.work, task.BACKBONE_DIR)
  config.num_devices = 1
  config.num_train_steps = config.eval_every_steps = 2
  final, out = _train(config, work)
  return types.SimpleNamespace(work=work, config=config, final=final, out=out)
