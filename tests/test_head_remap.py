"""A converted classifier's head matched to the data's classes by name.

A tiny transformers VideoMAE with 8 Kinetics class names (id2label) is
converted once; `init_adapt.adapt_pretrained` + `checkpoint.merge_pretrained`
(what `config.init_from` runs) then load it into models built for data whose
classes are a permutation, a subset, a partial match or none of the head's:
the vidjax logits must be exactly the matching columns of PyTorch's logits
(1e-4), zero for classes the head lacks, and a fresh head when nothing
matches. Also: the evaluation's per-video predictions and class_names.json.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_convert_checkpoint import (  # noqa: E402
    TINY, TOL, _clip, _load_written_config, _randomize, _torch_logits)
from vidjax import checkpoint, convert, evaluate, head_remap  # noqa: E402
from vidjax import init_adapt  # noqa: E402
from vidjax.registry import build_model  # noqa: E402

# One xdist worker runs this module: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("head_remap")

NAMES = ["abseiling", "air drumming", "answering questions", "applauding",
         "applying cream", "archery", "arm wrestling", "arranging flowers"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """(PyTorch model, converted folder, logits of PyTorch on `_clip()`)."""
  tmp = tmp_path_factory.mktemp("remap")
  cfg = transformers.VideoMAEConfig(**dict(
      TINY, patch_size=8, tubelet_size=2, id2label=dict(enumerate(NAMES))))
  torch.manual_seed(0)
  hf = _randomize(transformers.VideoMAEForVideoClassification(cfg))
  hf.save_pretrained(tmp / "hf")
  out = convert.save(convert.convert(str(tmp / "hf"), "hf_videomae"),
                     str(tmp / "out"))
  return hf, out, _torch_logits(hf, _clip())


def _run_init_from(out, data_names, init_from_names=True):
  """Logits on `_clip()` of a model built for `data_names`, initialised from
  `out` as train.initial_state does; and the log lines, skipped leaves and
  the fresh head."""
  config = _load_written_config(out)
  model = build_model(config.model, len(data_names))
  x = jnp.asarray(_clip().transpose(0, 1, 3, 4, 2))
  abstract = jax.eval_shape(lambda: model.init(
      {"params": jax.random.key(1), "dropout": jax.random.key(2)}, x[:1],
      train=False)["params"])
  # Stands in for the fresh initialisation (compiling init costs seconds).
  rng = np.random.RandomState(3)
  fresh = jax.tree.map(lambda s: rng.randn(*s.shape).astype(s.dtype) * 0.02,
                       abstract)
  loaded, _, where = checkpoint.load_pretrained(out)
  lines = []
  adapted = init_adapt.adapt_pretrained(
      config, loaded, abstract, where, lines.append,
      class_names=data_names if init_from_names else ())
  checkpoint.check_fits(fresh, adapted, out)
  merged, _, skipped, _ = checkpoint.merge_pretrained(fresh, adapted)
  logits = np.asarray(jax.jit(lambda p: model.apply(
      {"params": p}, x, train=False))(merged))
  return logits, lines, skipped, fresh, merged


def test_names_are_compared_without_case_spaces_or_underscores():
  assert (head_remap.normalize_name("air drumming")
          == head_remap.normalize_name("Air_Drumming")
          == head_remap.normalize_name("AirDrumming"))
  assert head_remap.match_classes(
      NAMES, ["Archery", "air_drumming", "juggling fire"]) == [5, 1, -1]


def test_converted_meta_and_config_carry_id2label_in_order(converted):
  _, out, _ = converted
  _, _, where = checkpoint.load_pretrained(out)
  meta = init_adapt.read_source_meta(where)
  assert meta["class_names"] == NAMES
  assert _load_written_config(out).dataset.class_names == tuple(NAMES)


@pytest.mark.parametrize("order", [[3, 0, 7, 1, 6, 2, 5, 4], [5, 1]])
def test_permuted_or_subset_data_gets_pytorchs_logits(converted, order):
  """Another order of all 8 classes, or 2 of them (Kinetics-subset style,
  names spelt as folder names): exactly PyTorch's logits of those classes."""
  _, out, want = converted
  data_names = [NAMES[i].replace(" ", "_").title() for i in order]
  logits, lines, skipped, _, _ = _run_init_from(out, data_names)
  assert skipped == []
  assert np.std(want) > 0.1
  assert np.abs(logits - want[:, order]).max() <= TOL
  assert any(f"{len(order)} of {len(order)} data classes matched the "
             "checkpoint's 8 classes by name" in line for line in lines)


def test_data_classes_the_head_lacks_start_from_zero_rows(converted):
  _, out, want = converted
  logits, lines, _, _, _ = _run_init_from(out, ["archery", "juggling fire"])
  assert np.abs(logits[:, 0] - want[:, 5]).max() <= TOL
  assert np.all(logits[:, 1] == 0.0)
  assert any("1 not in the head start from zero rows: 'juggling fire'" in line
             for line in lines)


def test_no_matching_name_starts_a_fresh_head_even_at_the_same_shape(
    converted):
  """8 data classes, none of them the head's: the 8-row head is not loaded
  (by shape it would fit), and the log says why."""
  _, out, _ = converted
  data_names = [f"class {i}" for i in range(8)]
  _, lines, skipped, fresh, merged = _run_init_from(out, data_names)
  assert sorted(s.split(":")[0] for s in skipped) == ["head/bias",
                                                      "head/kernel"]
  np.testing.assert_array_equal(merged["head"]["kernel"],
                                fresh["head"]["kernel"])
  assert any("none of the 8 data classes ('class 0', 'class 1', 'class 2', "
             "...) is among the checkpoint's 8 classes" in line and
             "the head starts fresh" in line for line in lines)
  # Without data names the head is loaded by shape, as before.
  logits, lines, skipped, _, _ = _run_init_from(out, data_names,
                                                init_from_names=False)
  assert skipped == [] and not any("head" in line for line in lines)


def test_head_names_from_meta_else_config_with_one_name_per_row():
  from configs import default
  config = default.get_config()
  config.dataset.class_names = ("a", "b", "c")
  meta = {"class_names": ["x", "y"], "config": {"dataset": {
      "class_names": ["p", "q", "r", "s"]}}}
  assert init_adapt.head_class_names(meta, config, 2) == ("x", "y")
  assert init_adapt.head_class_names(meta, config, 4) == ("p", "q", "r", "s")
  assert init_adapt.head_class_names(meta, config, 3) == ("a", "b", "c")
  assert init_adapt.head_class_names({}, config, 5) == ()


def test_class_names_file_and_named_predictions(tmp_path):
  path = evaluate.write_class_names(str(tmp_path), ["cat", "dog", "owl"])
  assert path == os.path.join(str(tmp_path), "class_names.json")
  with open(path) as f:
    assert json.load(f) == ["cat", "dog", "owl"]
  # 2 videos x 2 views, video-major: probabilities are averaged over views.
  logits = np.log(np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1],
                            [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]))
  videos = evaluate.video_probabilities(logits, np.array([0, 0, 2, 2]), 2)
  np.testing.assert_allclose(videos.probs, [[0.6, 0.3, 0.1],
                                            [0.15, 0.15, 0.7]], atol=1e-12)
  np.testing.assert_array_equal(videos.labels, [0, 2])
  text = evaluate.format_predictions(videos, ["cat", "dog", "owl"],
                                     ["cat/a.mp4", "owl/b.mp4"], top=2)
  assert text.splitlines() == [
      "test video 0 (cat/a.mp4): true 'cat'; predicted 'cat' 0.600, "
      "'dog' 0.300",
      "test video 1 (owl/b.mp4): true 'owl'; predicted 'owl' 0.700, "
      "'cat' 0.150"]
