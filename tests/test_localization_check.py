"""tools.localization_check's controls and config (no training here: the
check itself runs as `python -m tools.localization_check`)."""
import numpy as np
import pytest

from tools import localization_check as lc
from vidjax.errors import VidjaxError
from vidjax.tasks.localization import data, train_step
from vidjax.tasks.localization import task as loc_task
from vidjax.tasks.localization.timing import FeatureTiming


def _seqs():
  t = FeatureTiming.frames(8.0)
  return [data.Sequence(f"v{i}", np.zeros((4, 2)), t, 0.5,
                        np.array([[0.0, 0.1]] * n), np.arange(n) + i)
          for i, n in enumerate([1, 3, 2])]


def test_permuted_labels_keep_the_multiset_and_segments():
  seqs = _seqs()
  out = loc_task.permute_train_labels(
      seqs, lc.CONTROL_PERMUTATION["permuted_labels"], 8, seed=1)
  before = np.concatenate([s.labels for s in seqs])
  after = np.concatenate([s.labels for s in out])
  assert sorted(before) == sorted(after) and (before != after).any()
  assert [len(s.labels) for s in out] == [1, 3, 2]
  np.testing.assert_array_equal(out[1].segments, seqs[1].segments)


def test_permuted_classes_is_a_derangement():
  out = loc_task.permute_train_labels(
      _seqs(), lc.CONTROL_PERMUTATION["permuted_classes"], 4)
  np.testing.assert_array_equal(out[1].labels, [2, 3, 0])
  assert [len(s.labels) for s in out] == [1, 3, 2]
  seqs = _seqs()
  assert loc_task.permute_train_labels(seqs, "none", 4) is seqs
  with pytest.raises(VidjaxError, match="config.dataset.label_permutation="):
    loc_task.permute_train_labels(seqs, "reverse", 4)


def test_verdicts_read_against_the_bar_and_the_chance_band():
  row = {"average_map": 0.185, "map": {"0.5": 0.19, "0.7": 0.16},
         "chance": {"mean": 0.14, "std": 0.01, "draws": 20},
         "chance_classes": {"mean": 0.15, "std": 0.02, "draws": 20}}
  assert lc._band(row) == pytest.approx((0.15 - 0.06 - 0.01, 0.21 + 0.01))
  v = lc.verdict("permuted_labels", row)
  assert v.startswith("at chance") and " met; at chance (0.080 .. 0.220" in v
  assert "chance_classes 0.150 +- 0.020" in v
  v = lc.verdict("permuted_classes", row)
  assert "(labels permuted: avg <= 0.10) NOT met; at chance" in v
  low = dict(row, average_map=0.053)
  assert "met; below chance" in lc.verdict("permuted_classes", low)
  good = dict(row, average_map=0.87, map={"0.5": 0.9, "0.7": 0.78})
  assert "met; above chance" in lc.verdict("none", good)
  assert "NOT met" in lc.verdict("none", dict(good, **{"ar@10_tiou0.5": 0.5}))
  assert "NOT met" in lc.verdict("no_regression", good)
  assert "NOT met; above" in lc.verdict("permuted_labels", good)
  assert "no verdict" in lc.verdict("permuted_labels", {
      "average_map": 0.2, "map": {}})


def test_default_configs_build():
  for mode, cls in (("one_stage", "ActionFormer"), ("two_stage", "TwoStage")):
    c = lc.default_config(mode)
    assert c.num_train_steps == 300
    model = train_step.build_model(c.model, 8)
    assert type(model).__name__ == cls and model.num_levels == lc.LEVELS
  assert lc.MAX_LEN % 2 ** (lc.LEVELS - 1) == 0
