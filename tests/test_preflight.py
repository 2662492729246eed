"""Paper configs store, sample and test their data as their papers do, and
everything the config can tell fails before any dataset is built.

The storage properties are checked on every paper variant; the run-time
cases call `train.train_and_evaluate` with the dataset build and `jax.jit`
replaced by tripwires.
"""
import glob
import os
import re

import numpy as np
import pytest

from conftest import tiny_config
from tools.model_table import config_rows
from vidjax import train
from vidjax.data import frame_sizes, pipeline
from vidjax.errors import VidjaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The 1-step run behind the init_from case: compile-bound, so XLA
# optimisation level 0 (conftest.fast_compile: 34 -> 21 CPU-s).
pytestmark = pytest.mark.fast_compile
BUILDABLE = ("kinetics400", "something_something_v2", "ucf101", "hmdb51")
PAPER = [(n, c) for n, c in config_rows() if ":" in n and
         c.dataset.name in BUILDABLE]


def test_there_are_27_runnable_paper_variants():
  assert len(PAPER) == 27, [n for n, _ in PAPER]


@pytest.mark.parametrize("name,config", PAPER, ids=[n for n, _ in PAPER])
def test_paper_variants_fit_their_stored_frames_without_upsampling(name,
                                                                   config):
  d = config.dataset
  frame_sizes.check(d)  # raises on a crop that cannot fit or an upsample
  s = frame_sizes.sizes(d)
  assert s.stored == {"kinetics400": {112: 128, 312: 446}.get(  # 446: X3D-L
      d.crop_size, 320),
                      "something_something_v2": 240, "ucf101": 256}[d.name]
  limit = d.max_upsample
  if d.crop_mode == "random":
    assert s.train_high / s.stored <= limit and s.crop <= s.train_low
  else:
    assert s.crop / s.stored <= limit
  assert s.test / s.stored <= limit and s.test_crop <= s.test
  assert d.fps == 0.0  # native frame rate, as the papers sample


def test_every_recipe_is_used_by_a_config():
  from configs import recipes
  names = [n for n, v in vars(recipes).items() if callable(v) and
           v.__module__ == recipes.__name__ and n != "storage"
           and not n.startswith("_")]
  sources = "".join(open(p).read() for p in glob.glob(f"{ROOT}/configs/*.py")
                    if not p.endswith("recipes.py"))
  unused = [n for n in names if not re.search(rf"recipes\.{n}\(", sources)]
  assert not unused, unused


def test_upsampling_is_a_one_line_error_naming_both_sizes():
  from configs import vivit_factorized
  d = vivit_factorized.get_config("k400").dataset
  d.resize_short = 128
  with pytest.raises(VidjaxError) as e:
    frame_sizes.check(d)
  assert str(e.value) == (
      "config.dataset.resize_short=128 is too small for this recipe: "
      "training would upsample the stored frames (short side 128) 2.66x "
      "(resized to a short side of up to 340) > config.dataset.max_upsample="
      "1.15; --config.dataset.resize_short=341 stores them without "
      "upsampling")
  d.train_resize_short, d.scale_jitter, d.crop_mode = 0, (1.0, 1.0), "resized"
  with pytest.raises(VidjaxError, match=r"1\.75x \(resized crops of 224\)"):
    frame_sizes.check(d)
  d.crop_mode = "random"
  with pytest.raises(VidjaxError, match="crop_size=224 is larger than the "
                     "frames' short side 128"):
    frame_sizes.check(d)
  d.crop_mode, d.max_upsample = "resized", 1.9  # a deliberate choice
  with pytest.raises(VidjaxError, match="testing would upsample"):
    frame_sizes.check(d)  # test_resize_short 256 from 128: 2x
  d.test_resize_short = 0
  with pytest.raises(VidjaxError, match="crop_size=224 is larger than the "
                     "test frames' short side 128"):
    frame_sizes.check(d)
  d.resize_short = 224
  frame_sizes.check(d)


def _tripwires(monkeypatch):
  def built(*a, **k):
    raise AssertionError("the dataset was built before the error")
  monkeypatch.setattr(train, "load_data", built)

  def jit(*a, **k):
    raise AssertionError("jax.jit was called before the error")
  monkeypatch.setattr(train.jax, "jit", jit)


def _kinetics_tree(root, classes=("abseiling", "juggling balls")):
  (root / "kinetics400").mkdir(parents=True)
  rows = ["label,youtube_id,time_start,time_end,split"]
  rows += [f"{c},id{i:09d},0,10,train" for i, c in enumerate(classes)]
  (root / "kinetics400" / "train.csv").write_text("\n".join(rows) + "\n")
  (root / "kinetics400" / "validate.csv").write_text(
      rows[0] + f"\n{classes[0]},v{0:010d},0,10,val\n")
  return root


PAPER_CASES = {
    "stored frames too small for the paper crop": (
        "r3d:k400", {"dataset.resize_short": 100},
        "config.dataset.crop_size=112 is larger than the frames' short side "
        "100 (config.dataset.resize_short=100)"),
    "stored frames upsampled": (
        "videomae_finetune:k400_vit_s", {"dataset.resize_short": 160},
        "config.dataset.resize_short=160 is too small for this recipe: "
        "training would upsample the stored frames (short side 160) 1.40x"),
    "architecture-only variant": (
        "c3d:sports1m", {},
        "config.dataset.name='sports1m': vidjax has no Sports-1M"),
    "mistyped model name": (
        "timesformer:k400", {"model.name": "timesformr"},
        "config.model.name='timesformr' is not a registered model"),
    "a fixed class count that is not the data's": (
        "tsm:k400", {"model.num_classes": 400},
        "config.model.num_classes=400 but the data has 2 classes"),
    "batch the recipe cannot pair": (
        "mvitv2:s_16x4_k400", {"batch_size": 3},
        "config.dataset.repeated_aug=2 must divide config.batch_size=3"),
    "test crop a ViT cannot take": (
        "vivit_factorized:k400", {"dataset.test_crop_size": 256},
        "config.dataset.test_crop_size=256: model 'vivit_factorized' cannot"),
}


@pytest.mark.parametrize("case", sorted(PAPER_CASES))
def test_paper_config_problems_fail_before_any_data_is_built(
    case, tmp_path, monkeypatch):
  name, overrides, expected = PAPER_CASES[case]
  config = dict(config_rows())[name]
  config.dataset.manual_dir = str(_kinetics_tree(tmp_path / "k400"))
  config.num_devices = 1
  with config.unlocked():
    for key, value in overrides.items():
      node = config
      *parents, leaf = key.split(".")
      for p in parents:
        node = node[p]
      node[leaf] = value
  _tripwires(monkeypatch)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert "\n" not in str(e.value)
  assert str(e.value).startswith(expected), str(e.value)


def test_class_count_comes_from_the_data_for_mixup(tmp_path):
  """A 2-class Kinetics tree: mixup's soft labels are 2 wide, as the head."""
  from vidjax import preflight, sharding
  config = dict(config_rows())["videomae_finetune:k400_vit_s"]
  config.dataset.manual_dir = str(_kinetics_tree(tmp_path / "k400"))
  config.batch_size, config.num_devices = 2, 1
  pre = preflight.check_run(config, sharding.make_mesh(1))
  assert pre.class_names == ["abseiling", "juggling balls"]
  assert pre.spec.aug.num_classes == 2
  assert pre.abstract_params["head"]["kernel"].shape[-1] == 2
  source = [{"video": np.full((40, 240, 320, 3), 100 + 50 * k, np.uint8),
             "label": k} for k in range(2)]
  batch = pipeline.TrainLoader(source, pre.spec, 0, 2).batch(0)
  assert batch["label"].shape == (2, 2)
  np.testing.assert_allclose(batch["label"].sum(-1), 1.0, rtol=1e-6)


def test_init_from_is_checked_from_saved_shapes_only(tiny_data_dir, tmp_path,
                                                     monkeypatch):
  """A checkpoint of another model fails before the build, even with its
  parameter arrays deleted: only the saved shapes were read."""
  import shutil
  other = tiny_config(tiny_data_dir, "single_frame", num_train_steps=1,
                      **{"model.widths": (8, 12)})
  train.train_and_evaluate(other, str(tmp_path / "sf"))
  for folder in glob.glob(str(tmp_path / "sf" / "checkpoints" / "*" /
                              "state")):
    shutil.rmtree(folder)
    os.makedirs(folder)
  config = tiny_config(tiny_data_dir, **{
      "init_from.checkpoint_path": str(tmp_path / "sf")})
  _tripwires(monkeypatch)
  with pytest.raises(VidjaxError, match="only 1 of 20 checkpoint parameters"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
