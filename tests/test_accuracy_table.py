"""tools/accuracy_table.py in tiny mode: the JSON rows, their values, and
resumability (a second run trains nothing)."""
import json

import pytest

from tools import accuracy_table
from vidjax import experiment
from vidjax.errors import VidjaxError

MODELS = ["early_fusion", "vivit_factorized"]
DATASETS = ["motion"]
# One xdist worker runs this module: its module fixture runs once (pytest.ini).
# fast_compile: tiny 1-step runs cost their compiles, not their steps.
pytestmark = [pytest.mark.xdist_group("accuracy_table"),
              pytest.mark.fast_compile]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
  out = tmp_path_factory.mktemp("table") / "accuracy_table.json"
  data_dir = str(tmp_path_factory.mktemp("tfds_table"))
  rows = accuracy_table.build_table(MODELS, 1, DATASETS, str(out), tiny=True,
                                    data_dir=data_dir, log=lambda *a: None)
  return out, data_dir, rows


def test_one_row_per_model_and_dataset_with_values_in_range(table):
  out, _, rows = table
  saved = json.loads(out.read_text())["rows"]
  assert saved == json.loads(json.dumps(rows))
  assert sorted((r["config"], r["dataset"]) for r in saved) == sorted(
      (m, d) for m in MODELS for d in DATASETS)
  for r in saved:
    assert set(experiment.ROW_FIELDS) <= set(r)
    assert r["steps"] == 1 and r["tiny"] is True
    for field in ("top1", "top5", "clip_top1"):
      assert 0.0 <= r[field] <= 1.0, (r["config"], field, r[field])
    assert r["top5"] >= r["top1"]
    # 8 test videos (1 per class): top-1 is a multiple of 1/8.
    assert abs(r["top1"] * 8 - round(r["top1"] * 8)) < 1e-6
    assert r["params"] > 0 and r["gflops"] > 0 and r["step_ms"] > 0
    assert r["wall_seconds"] >= r["train_seconds"] > 0
  by = {(r["config"], r["dataset"]): r for r in saved}
  assert by[("early_fusion", "motion")]["model"] == "early_fusion"
  assert by[("vivit_factorized", "motion")]["model"] == "vivit_factorized"
  # Costs are those of the tiny configured model.
  config = experiment.build_config("early_fusion", "motion", 1, tiny=True)
  assert by[("early_fusion", "motion")]["params"] == experiment.model_costs(
      config)["params"]


def test_second_run_resumes_without_training(table, monkeypatch):
  out, data_dir, rows = table
  before = out.read_text()

  def no_training(*args, **kwargs):
    raise AssertionError("retrained a row that was already in the table")

  monkeypatch.setattr(experiment, "run", no_training)
  again = accuracy_table.build_table(MODELS, 1, DATASETS, str(out), tiny=True,
                                     data_dir=data_dir, log=lambda *a: None)
  assert out.read_text() == before
  assert len(again) == len(rows) == 2
  # A new step count is a new row: it does train.
  with pytest.raises(AssertionError, match="retrained"):
    accuracy_table.build_table(MODELS[:1], 2, DATASETS[:1], str(out),
                               tiny=True, data_dir=data_dir)


def test_markdown_table_lists_both_datasets(table):
  _, _, rows = table
  text = accuracy_table.markdown(rows, ["motion", "appearance"])
  lines = text.splitlines()
  assert "motion top-1" in lines[0] and "appearance top-1" in lines[0]
  assert len(lines) == 2 + len(MODELS)
  row = next(line for line in lines if line.startswith("| early_fusion"))
  assert row.count("%") == 1  # motion measured, appearance "-"
  assert row.split("|")[7].strip() == "-"


def test_unregistered_or_unknown_configs_are_skipped_with_a_reason():
  ok, skipped = accuracy_table.available(["single_frame", "no_such_model"])
  assert ok == ["single_frame"]
  assert "configs/no_such_model.py" in skipped["no_such_model"]
  with pytest.raises(VidjaxError, match="dataset='nope'"):
    experiment.build_config("single_frame", "nope")
  with pytest.raises(VidjaxError, match="override 'model.widths.x'"):
    experiment.build_config("single_frame", overrides={"model.widths.x": 1})
