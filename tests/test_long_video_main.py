"""The long_video task (SCSampler, issue #23 item 4) through the shared
training loop: `configs/scsampler.py:tiny` on the 8 forced CPU devices --
the single-action build, the classifier trained into WORKDIR/classifier, the
candidate clips cached, the sampler stopped at step 2 of 4 and resumed --
and its config errors before anything is built."""
import contextlib
import io
import json
import os

import numpy as np
import pytest

from configs import scsampler
from tests.localization_runs import TINY_TEST_PER_CLASS, TINY_TRAIN_PER_CLASS
from vidjax import train
from vidjax.errors import VidjaxError

# Tiny runs of a few steps: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 26 -> 20 CPU-s), same bars.
pytestmark = pytest.mark.fast_compile


def _config(root, motion_dir):
  config = scsampler.get_config("tiny")
  config.dataset.data_dir = os.path.join(root, "tfds")
  config.classifier.update({"data_dir": motion_dir,
                            "train_per_class": TINY_TRAIN_PER_CLASS,
                            "test_per_class": TINY_TEST_PER_CLASS})
  return config


def _train(config, work, **kw):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = train.train_and_evaluate(config, work, **kw)
  return result, out.getvalue()


def test_stop_resume_and_the_strategy_table(tmp_path, tiny_data_dir):
  config = _config(str(tmp_path), tiny_data_dir)
  work = str(tmp_path / "run")
  first, out1 = _train(config, work, stop_after_steps=2)
  assert first == {} and "classifier: training early_fusion" in out1
  assert os.path.isdir(os.path.join(work, "classifier", "checkpoints", "2"))
  assert "on 8 device(s)" in out1
  final, out2 = _train(config, work)
  assert "resumed from" in out2 and "at step 2" in out2
  assert "classifier: training" not in out2 and "clips:" not in out2
  n, v, k = 8, 4, 2
  assert final["eval/num_videos"] == v and final["eval/num_candidates"] == n
  assert final["eval/dense/clip_fraction"] == 1.0
  assert final[f"eval/scsampler{k}/clip_fraction"] == k / n
  assert final[f"eval/uniform{k}/clip_fraction"] == k / n
  assert 0.0 <= final["eval/sampler_auc"] <= 1.0
  out_dir = os.path.join(work, "eval", "test_step4")
  m = json.load(open(os.path.join(out_dir, "metrics.json")))
  cg, sg = m["classifier_gmacs_per_clip"], m["sampler_gmacs_per_clip"]
  assert 0 < sg < cg / 10  # the sampler is cheap
  rows = {r["strategy"]: r for r in m["rows"]}
  assert rows["dense"]["gmacs_per_video"] == pytest.approx(n * cg)
  assert rows[f"scsampler{k}"]["gmacs_per_video"] == pytest.approx(
      k * cg + n * sg)
  assert rows[f"random{k}"]["gmacs_per_video"] == pytest.approx(k * cg)
  # the cache: every test clip's probabilities, labels from the build
  z = np.load(os.path.join(work, "clips", "test.npz"))
  assert z["probs"].shape == (v, n, 8)
  np.testing.assert_allclose(z["probs"].sum(-1), 1.0, rtol=1e-5)
  assert z["features"].shape == (v, n, 28)
  dense_acc = np.mean(z["probs"].mean(1).argmax(-1) == z["labels"])
  assert final["eval/dense/accuracy"] == pytest.approx(dense_acc)
  table = open(os.path.join(out_dir, "table.txt")).read()
  assert "scsampler2" in table and "oracle" in table and table in out2
  # tools.sampler_check reads the same run back: table and verdicts
  from tools import sampler_check
  m2 = sampler_check.final_metrics(work)
  assert m2["eval/scsampler2/accuracy"] == final["eval/scsampler2/accuracy"]
  report = sampler_check.report(m2)
  assert report.startswith(table.strip().splitlines()[0])
  v2 = sampler_check.verdicts(m2)
  assert len(v2) == 3 and report.count("PASS") + report.count("FAIL") == 3
  gap = m2["eval/scsampler2/accuracy"] - m2["eval/dense/accuracy"]
  assert list(v2.values())[1] == (gap, False)  # 2 of 8 clips: over 1/8
  with pytest.raises(VidjaxError, match="no eval/test_step"):
    sampler_check.final_metrics(str(tmp_path))


@pytest.mark.parametrize("key,value,match", [
    ("long_video.ks", (9,), "config.long_video.ks: k=9"),
    ("long_video.num_candidates", 0, "config.long_video.num_candidates"),
    ("dataset.name", "activitynet", "config.dataset.name='activitynet'"),
    ("classifier_run", "/nonexistent", "config.classifier_run=/nonexistent"),
    ("model.name", "c3d", "config.model.name='c3d'"),
    ("dataset.synthetic.max_instances", 0, "config.dataset.min_instances"),
])
def test_config_errors_before_anything_runs(tmp_path, key, value, match):
  config = scsampler.get_config("tiny")
  node = config
  *path, last = key.split(".")
  for p in path:
    node = node[p]
  node[last] = value
  work = str(tmp_path / "run")
  with pytest.raises(VidjaxError, match=match.replace("(", r"\(")):
    train.train_and_evaluate(config, work)
  assert not os.path.exists(os.path.join(work, "clips"))
  assert not os.path.exists(os.path.join(work, "classifier"))
