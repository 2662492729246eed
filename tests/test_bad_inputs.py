"""The bad-input matrix (issue #7): every case with the exact one line the
user sees.

Command-line cases run `python -m vidjax.main` (they fail while parsing, so
they are quick). Run-time cases call `train.train_and_evaluate` with
`jax.jit` and the dataset build replaced by tripwires: the error must come
before anything is compiled, and (except where only the data can tell)
before any dataset is built or opened. The last cases show the counted skips: one corrupt video in a
folder is named in the build report and the run goes on.
"""
import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest

from conftest import tiny_config
from vidjax import train
from vidjax.errors import VidjaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 1-step runs of tiny models (the checkpoints of the init_from / resume cases,
# the corrupt-video run): compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 57 -> 31 CPU-s).
pytestmark = pytest.mark.fast_compile


# --- command line: parsed before anything else is imported ----------------
def run_main(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "vidjax.main", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120)


def _raising_config(tmp_path):
  path = tmp_path / "raises.py"
  path.write_text("def get_config():\n  raise ValueError('no such recipe')\n")
  return f"--config={path}"


CLI_CASES = {
    "unknown field": (
        lambda tmp: ["--config=configs/vivit_factorized.py",
                     "--config.model.hiden_size=3"],
        "error: --config.model.hiden_size: the config has no field "
        "'hiden_size'; did you mean 'hidden_size'?"),
    "wrong type": (
        lambda tmp: ["--config=configs/vivit_factorized.py",
                     "--config.batch_size=big"],
        None),  # filled from absl/ml_collections: asserted one line, names key
    "missing config file": (
        lambda tmp: ["--config=configs/nope.py"], None),
    "config file raises": (
        lambda tmp: [_raising_config(tmp)], None),
    "unexpected argument": (
        lambda tmp: ["--config=configs/vivit_factorized.py", "extra"], None),
}
CLI_KEYS = {  # what each one-line message must name
    "wrong type": "--config.batch_size",
    "missing config file": "configs/nope.py",
    "config file raises": "no such recipe",
    "unexpected argument": "extra",
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_command_line_bad_input(case, tmp_path):
  make_args, expected = CLI_CASES[case]
  proc = run_main(*make_args(tmp_path), f"--workdir={tmp_path / 'run'}")
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  if expected is not None:
    assert lines[0] == expected
  else:
    assert lines[0].startswith(("error: ", "FATAL Flags parsing error: "))
    assert CLI_KEYS[case] in lines[0], lines[0]
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


# --- run time: every check before the first compile -----------------------
class Compiled(Exception):
  """Raised by the tripwire that replaces jax.jit in vidjax.train."""


def write_video(path, num_frames=12, size=(40, 48), seed=0):
  rng = np.random.default_rng(seed)
  with av.open(str(path), "w") as out:
    stream = out.add_stream("mpeg4", rate=25)
    stream.height, stream.width = size
    stream.pix_fmt = "yuv420p"
    for _ in range(num_frames):
      frame = rng.integers(0, 255, size + (3,), np.uint8)
      out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    out.mux(stream.encode())


def video_tree(root, corrupt=False, empty_class=False):
  for c, name in enumerate(("cat", "dog")):
    (root / name).mkdir(parents=True)
    for i in range(5):
      write_video(root / name / f"{name}{i}.avi", seed=10 * c + i)
  if corrupt:
    (root / "cat" / "broken.avi").write_bytes(b"\x00\x01 not a video" * 50)
  if empty_class:
    (root / "emu").mkdir()
  return root


_TRAINED = {}  # (model, data_dir, extra) -> the workdir it was trained in


def _ckpt_of(model, data_dir, workdir, **extra):
  """A 1-step run of `model` in `workdir`: trained once per process, then
  copied (the init_from and resume cases share one run)."""
  key = (model, data_dir, tuple(sorted(extra.items())))
  if key in _TRAINED and os.path.isdir(_TRAINED[key]):
    shutil.copytree(_TRAINED[key], workdir)
    return workdir
  config = tiny_config(data_dir, model, num_train_steps=1, **extra)
  train.train_and_evaluate(config, str(workdir))
  _TRAINED[key] = workdir
  return workdir


def runtime_cases(data_dir, tmp):
  """name -> (config, workdir, expected message); built lazily per case."""
  base = lambda **kw: tiny_config(data_dir, **kw)  # noqa: E731
  vf = lambda path, **kw: base(**{  # noqa: E731
      "dataset.name": "video_folder", "dataset.path": str(path),
      "dataset.data_dir": str(tmp / "tfds"), "dataset.resize_short": 24,
      **kw})
  run = str(tmp / "run")
  return {
      "frames not divisible by the tubelet": lambda: (
          base(**{"dataset.num_frames": 5}), run,
          "config.dataset.num_frames=5 is not divisible by the tubelet's "
          "time 2 (config.model.patch_size=(2, 8, 8))"),
      "crop not divisible by the patch": lambda: (
          base(**{"dataset.crop_size": 20}), run,
          "config.dataset.crop_size=20 is not divisible by the tubelet's "
          "height 8 (config.model.patch_size=(2, 8, 8))"),
      "batch not divisible by the devices": lambda: (
          base(batch_size=12), run,
          "config.batch_size=12 is not divisible by the device count (8)"),
      "eval batch not divisible by the devices": lambda: (
          base(eval_batch_size=10), run,
          "config.eval_batch_size=10 is not divisible by the device count "
          "(8)"),
      "more devices than visible": lambda: (
          base(num_devices=16), run,
          "config.num_devices=16 but only 8 devices are visible"),
      "unknown model": lambda: (
          base(**{"model.name": "vivit_factorised"}), run, None),
      "unknown model option": lambda: (
          _with(base(), "model.depth", 3), run, None),
      "unknown dataset": lambda: (
          base(**{"dataset.name": "kinetics700"}), run, None),
      "unknown optimizer": lambda: (
          base(**{"optimizer.name": "lamb"}), run,
          "config.optimizer.name='lamb': use 'adamw' or 'sgd'"),
      "non-positive batch size": lambda: (
          base(batch_size=0), run, "config.batch_size must be > 0, got 0"),
      "flip on a direction-sensitive dataset": lambda: (
          base(**{"dataset.flip": True}), run,
          "config.dataset.flip=True on synthetic_motion/motion: its classes "
          "depend on left/right direction, so a flipped clip changes its "
          "label; set config.dataset.flip=False"),
      "two test crops": lambda: (
          base(num_test_crops=2), run,
          "config.num_test_crops must be 1 or 3, got 2"),
      "label smoothing of 1": lambda: (
          base(label_smoothing=1.0), run,
          "config.label_smoothing must be in [0, 1), got 1.0"),
      "mean with 2 values": lambda: (
          base(**{"dataset.mean": (0.5, 0.5)}), run, None),
      "unknown modality": lambda: (
          base(**{"dataset.modality": "depth"}), run,
          "config.dataset.modality='depth' must be one of 'rgb', 'flow', "
          "'rgb+flow'"),
      "crop larger than the stored frames": lambda: (
          base(**{"dataset.crop_size": 48, "model.patch_size": (2, 8, 8)}),
          run, "config.dataset.crop_size=48 is larger than the frames' short "
          "side 32 (the 32x32 synthetic frames)"),
      "stored frames upsampled": lambda: (
          base(**{"dataset.crop_size": 48, "dataset.crop_mode": "resized",
                  "dataset.test_crop_size": 16, "model.patch_size": (2, 8, 8)}),
          run, "the 32x32 synthetic frames are too small for this recipe: "
          "training would upsample the stored frames (short side 32) 1.50x "
          "(resized crops of 48) > config.dataset.max_upsample=1.15"),
      "a fixed class count that is not the data's": lambda: (
          _with(base(), "model.num_classes", 400), run,
          "config.model.num_classes=400 but the data has 8 classes; the "
          "class count comes from the data: drop config.model.num_classes"),
      "dataset without a builder": lambda: (
          base(**{"dataset.name": "sports1m"}), run, None),
      "workdir is a file": lambda: (
          base(), _touch(tmp / "afile"), None),
      "missing dataset path": lambda: (
          vf(tmp / "nowhere"), run, None),
      "class folders without videos": lambda: (
          vf(_empty_classes(tmp / "empty")), run, None),
      "init_from path missing": lambda: (
          base(**{"init_from.checkpoint_path": str(tmp / "nope")}), run,
          f"config.init_from.checkpoint_path={tmp / 'nope'} does not exist"),
      "init_from folder without checkpoints": lambda: (
          base(**{"init_from.checkpoint_path": _mkdir(tmp / "plain")}), run,
          f"config.init_from.checkpoint_path={tmp / 'plain'} holds no "
          "vidjax checkpoint (expected checkpoints/<step>/state)"),
      "init_from checkpoint of another model": lambda: (
          base(**{"init_from.checkpoint_path": str(_ckpt_of(
              "single_frame", data_dir, tmp / "sf",
              **{"model.widths": (8, 12)}))}), run,
          f"config.init_from.checkpoint_path={tmp / 'sf'}: only 1 of 20 "
          "checkpoint parameters (8 of 3,848 values) fit this model by name "
          "and shape; is it a checkpoint of another model?"),
      "resume from a checkpoint of another model": lambda: (
          base(), str(_ckpt_of("single_frame", data_dir, tmp / "other",
                               **{"model.widths": (8, 12)})), None),
  }


def _with(config, dotted, value):
  parent, leaf = dotted.rsplit(".", 1)
  with config.unlocked():
    config[parent][leaf] = value
  return config


def _touch(path):
  path.write_text("")
  return str(path)


def _mkdir(path):
  path.mkdir()
  return str(path)


def _empty_classes(root):
  for name in ("a", "b"):
    (root / name).mkdir(parents=True)
    (root / name / "notes.txt").write_text("not a video")
  return root


EXPECTED_KEY = {  # each message names the key / path at fault
    "frames not divisible by the tubelet": "config.dataset.num_frames",
    "crop not divisible by the patch": "config.dataset.crop_size",
    "unknown model": "config.model.name='vivit_factorised'",
    "unknown model option": "config.model.depth",
    "unknown dataset": "config.dataset.name='kinetics700'",
    "dataset without a builder": "config.dataset.name='sports1m': vidjax "
                                 "has no Sports-1M",
    "unknown optimizer": "config.optimizer.name",
    "mean with 2 values": "config.dataset.mean",
    "unknown modality": "config.dataset.modality",
    "crop larger than the stored frames": "config.dataset.crop_size=48",
    "workdir is a file": "--workdir=",
    "missing dataset path": "nowhere",
    "class folders without videos": "empty",
    "init_from checkpoint of another model":
        "config.init_from.checkpoint_path=",
    "resume from a checkpoint of another model": "does not fit the configured",
}
RUNTIME_NAMES = [
    "frames not divisible by the tubelet", "crop not divisible by the patch",
    "batch not divisible by the devices",
    "eval batch not divisible by the devices", "more devices than visible",
    "unknown model", "unknown model option", "unknown dataset",
    "unknown optimizer", "non-positive batch size", "two test crops",
    "flip on a direction-sensitive dataset",
    "label smoothing of 1", "mean with 2 values", "unknown modality",
    "crop larger than the stored frames", "stored frames upsampled",
    "a fixed class count that is not the data's", "dataset without a builder",
    "workdir is a file",
    "missing dataset path", "class folders without videos",
    "init_from path missing", "init_from folder without checkpoints",
    "init_from checkpoint of another model",
    "resume from a checkpoint of another model",
]


# Only the data can tell these: every other case fails before the dataset
# is built or opened (a second tripwire replaces train.load_data).
AFTER_THE_BUILD = ("class folders without videos",)


@pytest.mark.parametrize("case", RUNTIME_NAMES)
def test_run_time_bad_input_fails_before_compiling(case, tiny_data_dir,
                                                   tmp_path, monkeypatch):
  config, workdir, expected = runtime_cases(tiny_data_dir, tmp_path)[case]()
  monkeypatch.setattr(train.jax, "jit", _tripwire)  # after any set-up runs
  if case not in AFTER_THE_BUILD:
    monkeypatch.setattr(train, "load_data", _build_tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, workdir)
  message = str(e.value)
  assert "\n" not in message and message
  if expected is not None:
    assert message == expected
  else:
    assert EXPECTED_KEY[case] in message, message


def _build_tripwire(*args, **kwargs):
  raise Compiled("the dataset was built or opened before the error")


def _tripwire(*args, **kwargs):
  def call(*a, **k):
    raise Compiled("jax.jit was called before the error")
  return call


def test_matrix_has_at_least_twenty_cases():
  assert len(CLI_CASES) + len(RUNTIME_NAMES) + 1 >= 20


# --- counted skips: the run goes on -----------------------------------------
def test_one_corrupt_video_is_skipped_named_and_the_run_goes_on(
    tiny_data_dir, tmp_path, capsys):
  root = video_tree(tmp_path / "videos", corrupt=True, empty_class=True)
  config = tiny_config(tiny_data_dir, "single_frame", **{
      "dataset.name": "video_folder", "dataset.path": str(root),
      "dataset.data_dir": str(tmp_path / "tfds"), "dataset.resize_short": 24,
      "num_train_steps": 1, "batch_size": 8, "eval_batch_size": 8})
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  out = capsys.readouterr().out
  assert "1 videos skipped:" in out or "1 video skipped:" in out, out
  skipped = [line for line in out.splitlines() if "broken.avi" in line]
  assert len(skipped) == 1 and " — " in skipped[0], out
  assert np.isfinite(result["eval/loss"])
