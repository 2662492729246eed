"""tools/learning_suite.py: its claims, its verdicts, and its fast rows.

The verdict logic is checked on made-up results (a claim that holds passes,
one that does not fails, a missing row is pending). The fast row that runs
here, early fusion on `synthetic_motion/motion`, trains for real at the
suite's stated budget and must reach the suite's 80% (99 s, compile and
eval included, on the shared 2-core CPU); the slow rows are the tool's
(benchmarks/RESULTS.md).
"""
import json

import pytest

from tools import learning_suite as suite


def _result(top1, steps=600):
  return {"top1": top1, "steps": steps}


def test_the_issue_claims_are_all_there():
  kinds = {}
  for c in suite.CLAIMS:
    kinds.setdefault(c.kind, []).append(c)
  temporal = {c.row for c in kinds["temporal"]}
  # Issue #17's list of temporal models, each with an 80% bar on motion.
  for name in ("early_fusion", "slow_fusion", "c3d", "r3d", "r2plus1d", "i3d",
               "slowfast", "tsm", "lrcn", "conv_gru", "timesformer",
               "vivit_spatiotemporal", "vivit_factorized",
               "vivit_factorized_self_attention",
               "vivit_factorized_dot_product", "mvitv2", "videomae_encoder"):
    assert name in temporal, name
  assert all(c.bar == 0.80 for c in kinds["temporal"])
  assert {c.row for c in kinds["frame"]} == {"single_frame",
                                             "late_fusion_pool", "vit"}
  (tsm,) = kinds["beats"]
  assert (tsm.row, tsm.other, tsm.bar) == ("tsm", "tsm_none", 0.30)
  assert suite.BY_NAME["tsm"].steps == suite.BY_NAME["tsm_none"].steps
  assert dict(suite.BY_NAME["tsm_none"].overrides) == {
      "model.shift_place": "none"}
  # Every appearance row is held to the single-frame baseline (600 steps)
  # at the baseline's budget, or at the longer one APPEARANCE_STEPS states.
  baseline = suite.BY_NAME["single_frame@appearance"]
  assert baseline.steps == 600
  assert all(s > baseline.steps for s in suite.APPEARANCE_STEPS.values())
  for c in kinds["appearance"]:
    assert c.other == baseline.name and c.bar == 0.05
    model = c.row.split("@")[0]
    assert suite.BY_NAME[c.row].steps == suite.APPEARANCE_STEPS.get(
        model, baseline.steps)
  names = [r.name for r in suite.ROWS]
  assert len(names) == len(set(names))
  assert len({suite.key(r) for r in suite.ROWS}) == len(names)


def test_verdicts_pass_fail_and_pending():
  claims = [suite.Claim("temporal", "a", 0.8),
            suite.Claim("frame", "f", 0.08),
            suite.Claim("beats", "tsm", 0.3, "tsn"),
            suite.Claim("appearance", "b", 0.05, "base"),
            suite.Claim("temporal", "missing", 0.8)]
  results = {"a": _result(0.80), "f": _result(0.21), "tsm": _result(0.9),
             "tsn": _result(0.61), "b": _result(0.45), "base": _result(0.5)}
  got = [v for _, v, _ in suite.verdicts(results, claims)]
  assert got == ["pass", "FAIL", "FAIL", "pass", "pending"]
  results.update(f=_result(0.20), tsn=_result(0.60), b=_result(0.449))
  got = [v for _, v, _ in suite.verdicts(results, claims)]
  assert got == ["pass", "pass", "pass", "FAIL", "pending"]
  _, _, text = suite.verdicts(results, claims)[0]
  assert text.startswith("a: 80.0% at 600 steps")


def test_markdown_lists_every_row_and_its_verdict():
  results = {"early_fusion": dict(_result(0.9), wall_seconds=20.0)}
  table = suite.markdown(results, suite.verdicts(results))
  lines = table.splitlines()
  row = next(line for line in lines if line.startswith("| early_fusion |"))
  assert "90.0%" in row and row.rstrip(" |").endswith("pass")
  assert sum(line.startswith("| ") for line in lines[2:]) >= len(suite.ROWS)


@pytest.fixture(scope="module")
def fast_results(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds_suite"))
  out = tmp_path_factory.mktemp("suite") / "suite.json"
  rows = [suite.BY_NAME["early_fusion"]]
  # One device, as `python -m tools.learning_suite` runs, not conftest's 8
  # forced ones: the same batch of 64 and the same gradients, without 8-way
  # partitioning on 2 cores.
  return out, suite.train_rows(rows, str(out), data_dir,
                               extra={"num_devices": 1}, log=lambda *a: None)


def test_fast_row_early_fusion_learns_motion(fast_results):
  out, results = fast_results
  (claim, verdict, text), = [
      v for v in suite.verdicts(results) if v[0].row == "early_fusion"]
  assert verdict == "pass", text
  saved = json.loads(out.read_text())["rows"]
  assert [r["name"] for r in saved] == ["early_fusion"]
  assert saved[0]["steps"] == suite.BY_NAME["early_fusion"].steps
