"""AVA-style detection through the shared training loop (issue #21 part D,
vidjax/tasks/detection/task.py): `configs/ava_slowfast.py:tiny` on a tiny
`synthetic_ava` build, 8 forced CPU devices, stopped at step 2 and resumed
to step 4 (and the same run uninterrupted: identical metrics; one run per
session, tests/detection_runs.py); the final AVA result CSV read back; config
errors before anything is built."""
import json
import os

import jax
import numpy as np
import pytest

from configs import ava_slowfast
from tests.detection_runs import tiny
from vidjax import train
from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.detection import ava_io, data as data_lib
from vidjax.tasks.detection import task as det_task, train_step


def test_stop_then_resume_on_8_devices_writes_ava_results(tiny_detection_run):
  run = tiny_detection_run
  work, final, straight = run.work, run.final, run.straight
  assert jax.device_count() == 8
  # stopped at step 2 of 4, checkpointed
  assert run.first == {} and run.stopped == {"2": True, "4": False}
  assert 0.0 <= final["eval/frame_map"] <= 1.0
  aps = [v for k, v in final.items() if k.startswith("eval/ap_")]
  assert aps and np.isclose(final["eval/frame_map"], np.mean(aps))
  # a resumed run replays the same batches: the same final metrics
  for key in ("eval/frame_map", "eval/num_keyframes"):
    assert final[key] == pytest.approx(straight[key], rel=1e-5), key
  rows = [json.loads(line) for line in open(os.path.join(work,
                                                         "metrics.jsonl"))]
  assert sorted(r["step"] for r in rows if "train/loss" in r) == [2, 4]
  assert [r["step"] for r in rows if "eval/frame_map" in r] == [2, 4]
  out = os.path.join(work, "eval", "test_step4")
  dets = ava_io.read_csv(os.path.join(out, "detections.csv"))
  loaded = data_lib.load(tiny(run.data_dir).dataset)
  test, ids = loaded["test"], loaded["class_ids"]
  # one row per (test box, class), boxes in the keyframe's coordinates
  assert len(dets) == sum(len(k.boxes) for k in test.keyframes) * len(ids)
  assert {r.action for r in dets} == set(ids)
  assert all(0.0 <= r.extra <= 1.0 for r in dets)
  gt_boxes = {tuple(np.float64(b).tolist()) for k in test.keyframes
              for b in k.boxes}
  assert {r.box for r in dets} == gt_boxes
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  assert metrics["eval/frame_map"] == pytest.approx(final["eval/frame_map"])
  assert metrics["step"] == 4 and metrics["eval_boxes"] == "gt"
  per_class = open(os.path.join(out, "per_class.csv")).read().splitlines()
  assert per_class[0] == "class_id,name,num_gt,ap"
  assert len(per_class) == 1 + len(ids)


@pytest.mark.parametrize("key,value,expected", [
    ("dataset.eval_boxes", "pred", "config.dataset.eval_boxes='pred'"),
    ("model.pooling", "mean", "config.model.pooling='mean'"),
    ("dataset.box_crop_scale", (0.0, 1.0), "config.dataset.box_crop_scale"),
    ("dataset.max_boxes", -1, "config.dataset.max_boxes=-1"),
    ("batch_size", 12, "config.batch_size=12 is not divisible"),
])
def test_config_errors_before_any_build(key, value, expected, tmp_path,
                                        monkeypatch):
  config = tiny(str(tmp_path / "tfds"))
  node = config
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value

  def tripwire(*a, **k):
    raise AssertionError("built or compiled before the config error")
  monkeypatch.setattr(det_task.data_lib, "load", tripwire)
  monkeypatch.setattr(train, "compile_steps", tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)
  assert not os.path.exists(tmp_path / "tfds")


def test_task_is_registered_and_train_batches_are_a_function_of_step():
  config = ava_slowfast.get_config()
  assert isinstance(base.get_task(config), det_task.Detection)

  class Videos:
    def num_frames(self, vid):
      return 16

    def frames(self, vid, idx):
      return np.stack([np.full((24, 40, 3), int(vid[1:]) * 10 + i, np.uint8)
                       for i in idx])
  kfs = [data_lib.Keyframe(f"v{i}", 1, 8, np.array([[.1, .2, .5, .6]],
                                                   np.float32),
                           np.eye(3, dtype=np.uint8)[[i % 3]],
                           np.ones(1, np.float32)) for i in range(10)]
  kset = data_lib.KeyframeSet(kfs, Videos())
  spec = data_lib.ClipSpec(num_frames=4, crop_size=16, max_boxes=2)
  a = det_task.TrainLoader(kset, spec, 0, 4)
  b = det_task.TrainLoader(kset, spec, 0, 4)
  for key in ("video", "boxes", "labels"):
    np.testing.assert_array_equal(a.batch(3)[key], b.batch(3)[key])
  # an epoch (2 steps of 4 of 10 keyframes) sees distinct keyframes
  assert len(set(a.indices(0)) | set(a.indices(1))) == 8
  # two processes build complementary halves of the global batch
  halves = [det_task.TrainLoader(kset, spec, 0, 4, p, 2).batch(5)
            for p in (0, 1)]
  np.testing.assert_array_equal(
      np.concatenate([h["video"] for h in halves]), a.batch(5)["video"])
  # eval rows keep each keyframe's own (non-square) box coordinates
  batch = data_lib.make_batch(kset, [0, 1], spec)
  batch["valid"] = np.array([True, False])
  rows = train_step.prediction_rows(kset, batch, np.full((2, 2, 3), .5),
                                    [1, 2, 3])
  assert [r.box for r in rows] == [tuple(np.float64(
      kfs[0].boxes[0]).tolist())] * 3
  assert not np.allclose(batch["boxes"][0, 0], kfs[0].boxes[0])  # letterbox


def test_detections_to_rows_of_a_keyframe_without_boxes():
  assert ava_io.detections_to_rows("v", 902, np.zeros((0, 4)),
                                   np.zeros((0, 3)), [1, 2, 3]) == []
  assert ava_io.detections_to_rows("v", 902, [], [], [1, 2, 3]) == []
  rows = ava_io.detections_to_rows("v", 902, [[0, 0, 1, 1]], [[.1, .2]],
                                   [4, 7])
  assert [(r.action, r.extra) for r in rows] == [(4, .1), (7, .2)]
