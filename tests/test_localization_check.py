"""tools.localization_check's controls and config (no training here: the
check itself runs as `python -m tools.localization_check`)."""
import numpy as np

from tools import localization_check as lc
from vidjax.tasks.localization import data, train_step
from vidjax.tasks.localization.timing import FeatureTiming


def _seqs():
  t = FeatureTiming.frames(8.0)
  return [data.Sequence(f"v{i}", np.zeros((4, 2)), t, 0.5,
                        np.array([[0.0, 0.1]] * n), np.arange(n) + i)
          for i, n in enumerate([1, 3, 2])]


def test_permuted_labels_keep_the_multiset_and_segments():
  seqs = _seqs()
  out = lc.permute_labels(seqs, seed=1)
  before = np.concatenate([s.labels for s in seqs])
  after = np.concatenate([s.labels for s in out])
  assert sorted(before) == sorted(after) and (before != after).any()
  assert [len(s.labels) for s in out] == [1, 3, 2]
  np.testing.assert_array_equal(out[1].segments, seqs[1].segments)


def test_permuted_classes_is_a_derangement():
  out = lc.shift_classes(_seqs(), 4)
  np.testing.assert_array_equal(out[1].labels, [2, 3, 0])


def test_default_configs_build():
  for mode, cls in (("one_stage", "ActionFormer"), ("two_stage", "TwoStage")):
    c = lc.default_config(mode)
    assert c.num_train_steps == 300
    model = train_step.build_model(c.model, 8)
    assert type(model).__name__ == cls and model.num_levels == lc.LEVELS
  assert lc.MAX_LEN % 2 ** (lc.LEVELS - 1) == 0
