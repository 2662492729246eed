"""The tiny detection run through `python -m vidjax.main`'s loop, made once per
test session and shared (conftest.py's `tiny_detection_run` fixture;
tests/test_detection_main.py, tests/test_detect_video.py,
tests/test_detection_init_from.py).

`configs/ava_slowfast.py:tiny` on a tiny `synthetic_ava` build, on the 8
forced CPU devices: stopped at step 2 of 4 and resumed, and the same config
uninterrupted in another workdir (a resumed run must end with the same
metrics). The outputs of every call are kept for the asserts. All three
compile at XLA optimisation level 0 (conftest.fast_compile: 4 steps of a
tiny model cost their compilation, not their running).
"""
from __future__ import annotations

import os
import types

from configs import ava_slowfast
from conftest import fast_compile


def tiny(data_dir: str):
  """configs/ava_slowfast.py:tiny on the TFDS dir `data_dir`."""
  config = ava_slowfast.get_config("tiny")
  config.dataset.data_dir = data_dir
  return config


def stop_and_resume(root: str):
  """(stopped + resumed run, uninterrupted run) of the tiny config."""
  from vidjax import train  # noqa: PLC0415
  config = tiny(os.path.join(root, "tfds"))
  work = os.path.join(root, "run")
  with fast_compile():
    first = train.train_and_evaluate(config, work, stop_after_steps=2)
    stopped = {p: os.path.isdir(os.path.join(work, "checkpoints", p))
               for p in ("2", "4")}
    final = train.train_and_evaluate(config, work)
    straight = train.train_and_evaluate(config,
                                        os.path.join(root, "straight"))
  return types.SimpleNamespace(work=work, data_dir=config.dataset.data_dir,
                               config=config, first=first, stopped=stopped,
                               final=final, straight=straight)
