"""Does every model learn what its paper says it learns? (issue #17)

  python -m tools.learning_suite [--rows=tsm,tsm_none] [--check] [--fast]
      [--out=benchmarks/learning_suite.json] [--markdown] [--data_dir=DIR]
      [--report] [--list]

Each row trains one config's small default model on the embedded
`synthetic_motion` dataset (`vidjax.experiment.run`: 800 test videos, 4 clips
x 1 crop, video-level top-1; chance 12.5%) with a STATED budget (steps of
batch 64, seed 0) and is checked against a claim of the lecture / the paper:

* "temporal": a model that mixes frames reaches >= 80% on `motion` (classes
  defined only by how the object moves);
* "frame": a model that sees frames one at a time and pools them
  (single frame, late fusion by pooling, image ViT) stays within 8 points of
  chance on `motion`;
* "beats": a row beats another row by a margin at the same budget (TSM
  over its own `shift_place=none` TSN baseline: >= 30 points);
* "appearance": on `appearance` (classes by shape) a model reaches at least
  the single-frame baseline's top-1 (600 steps) minus 5 points at its
  stated budget: 600 steps too, except the models in `APPEARANCE_STEPS`,
  which get their motion row's budget.

VideoMAE's claims (pretraining loss, data efficiency) are
`tools/videomae_learning.py`'s.

RESUMABLE like `tools.accuracy_table`: rows already in `--out` with the same
config, overrides and steps are kept, the file is rewritten after each row.
`--report` trains nothing and judges the rows already in `--out`.
`--check` exits 1 with one line per failed claim (a claim whose rows are not
all there yet is "pending", not a failure). `--fast` keeps the rows marked
fast: a few minutes on the 2-core CPU; tests/test_learning_suite.py runs
smaller versions of them in CI. The full table's wall time and the figures
are in benchmarks/RESULTS.md ("Every model learns").
"""
import dataclasses
import json
import os
import sys
import time
from typing import Optional

from absl import app, flags, logging

from vidjax import cli
from tools.accuracy_table import read_rows, write_rows

CHANCE = 1.0 / 8
DEFAULT_OUT = os.path.join("benchmarks", "learning_suite.json")


@dataclasses.dataclass(frozen=True)
class Row:
  """One trained run: `config` on `dataset` for `steps`, with overrides."""
  name: str
  config: str
  dataset: str
  steps: int
  overrides: tuple = ()   # ((dotted key, value), ...)
  fast: bool = False


@dataclasses.dataclass(frozen=True)
class Claim:
  """kind: "temporal" (row >= bar), "frame" (|row - chance| <= bar),
  "beats" (row - other >= bar), "appearance" (row >= other - bar)."""
  kind: str
  row: str
  bar: float
  other: Optional[str] = None


# Appearance budgets above the single-frame baseline's 600 steps (issue #17),
# for the two models that underfit there (train top-1 41% / 31%): X3D
# (36.1% at 600, 50.9% at 900, 57.3% at 1200) and LRCN with Donahue et
# al.'s random crops (32.1% at 600, 78.2% at 2400; its motion row needs
# 4800). The baseline stays at 600: at equal budgets the single frame is
# ahead (88.0% at 1200). RESULTS.md, "Every model learns".
APPEARANCE_STEPS = {"x3d": 1200, "lrcn": 2400}


def _rows():
  m, a = "motion", "appearance"
  temporal = [
      # Temporal models on motion: budgets are each config's own short
      # schedule where that is enough, more where the curve says so.
      Row("early_fusion", "early_fusion", m, 600, fast=True),
      Row("slow_fusion", "slow_fusion", m, 300, fast=True),
      Row("c3d", "c3d", m, 300),
      Row("r3d", "r3d", m, 600),
      Row("r2plus1d", "r2plus1d", m, 400),
      Row("i3d", "i3d", m, 600),
      Row("slowfast", "slowfast", m, 600),
      Row("tsm", "tsm", m, 600),
      Row("lrcn", "lrcn:last", m, 4800),
      Row("conv_gru", "conv_gru", m, 600),
      Row("two_stream", "two_stream", m, 300),
      Row("timesformer", "timesformer", m, 2400),
      Row("vivit_spatiotemporal", "vivit_spatiotemporal", m, 1200),
      Row("vivit_factorized", "vivit_factorized", m, 1200),
      Row("vivit_factorized_self_attention",
          "vivit_factorized_self_attention", m, 1200),
      Row("vivit_factorized_dot_product", "vivit_factorized_dot_product", m,
          1200),
      Row("mvitv2", "mvitv2", m, 1200),
      Row("videomae_encoder", "videomae_finetune", m, 1200),
      Row("x3d", "x3d", m, 900),
  ]
  frame = [  # frame-at-a-time models on motion
      Row("single_frame", "single_frame", m, 600, fast=True),
      Row("late_fusion_pool", "late_fusion:pool", m, 600),
      Row("vit", "vit", m, 600),
  ]
  tsn = Row("tsm_none", "tsm", m, 600, (("model.shift_place", "none"),))
  # Appearance: every model at the single-frame baseline's budget (600),
  # or, where that was not enough, at most the budget its motion row needs.
  appearance = [Row(f"{r.name}@appearance", r.config, a,
                    APPEARANCE_STEPS.get(r.name, 600), r.overrides,
                    fast=r.name == "single_frame") for r in temporal + frame]
  appearance.append(Row("late_fusion_mlp@appearance", "late_fusion", a, 600))
  rows = temporal + [tsn] + frame + appearance
  claims = [Claim("temporal", r.name, 0.80) for r in temporal]
  claims += [Claim("frame", r.name, 0.08) for r in frame]
  claims.append(Claim("beats", "tsm", 0.30, "tsm_none"))
  claims += [Claim("appearance", r.name, 0.05, "single_frame@appearance")
             for r in appearance if r.name != "single_frame@appearance"]
  return rows, claims


ROWS, CLAIMS = _rows()
BY_NAME = {r.name: r for r in ROWS}


def key(row: Row) -> str:
  return json.dumps([row.config, row.dataset, row.steps,
                     [list(kv) for kv in row.overrides]])


def train_rows(rows, out: str, data_dir: str = "", extra=None, log=print):
  """Trains the rows missing from `out`; returns {row name: result dict} of
  every suite row found in `out`."""
  from vidjax import experiment
  saved = read_rows(out)
  done = {r["key"]: r for r in saved}
  for row in rows:
    k = key(row)
    if k in done:
      log(f"{row.name}: in {out}")
      continue
    overrides = dict(row.overrides)
    overrides.update(extra or {})
    if data_dir:
      overrides["dataset.data_dir"] = data_dir
    t0 = time.time()
    result = experiment.run(row.config, row.dataset, row.steps, overrides)
    result.pop("overrides", None)
    result.update(key=k, name=row.name, seed=0,
                  wall_seconds=time.time() - t0)
    saved.append(result)
    done[k] = result
    write_rows(out, saved)
    log(f"{row.name}: top1={result['top1']:.3f} "
        f"({result['wall_seconds']:.0f} s)")
  return {r.name: done[key(r)] for r in ROWS if key(r) in done}


def verdicts(results: dict, claims=CLAIMS):
  """[(claim, "pass" | "FAIL" | "pending", text)] for every claim."""
  out = []
  for c in claims:
    names = [c.row] + ([c.other] if c.other else [])
    if any(n not in results for n in names):
      out.append((c, "pending", f"{c.row}: not run yet"))
      continue
    top1 = results[c.row]["top1"]
    other = results[c.other]["top1"] if c.other else None
    steps = results[c.row]["steps"]
    if c.kind == "temporal":
      ok, text = top1 >= c.bar, f">= {c.bar:.0%}"
    elif c.kind == "frame":
      ok, text = abs(top1 - CHANCE) <= c.bar, (
          f"within {c.bar * 100:.0f} points of chance")
    elif c.kind == "beats":
      ok, text = top1 - other >= c.bar, (
          f"{c.other} ({other:.1%}) + {c.bar * 100:.0f} points")
    elif c.kind == "appearance":
      ok, text = top1 >= other - c.bar, (
          f"{c.other} ({other:.1%}) - {c.bar * 100:.0f} points")
    else:
      raise ValueError(f"unknown claim kind {c.kind!r}")
    out.append((c, "pass" if ok else "FAIL",
                f"{c.row}: {top1:.1%} at {steps} steps, claim {text}"))
  return out


def markdown(results: dict, checked) -> str:
  lines = ["| row | config | dataset | steps | top-1 | wall s | claim | "
           "verdict |", "|---|---|---|---|---|---|---|---|"]
  by_row = {}
  for claim, verdict, text in checked:
    by_row.setdefault(claim.row, []).append((claim, verdict, text))
  for row in ROWS:
    r = results.get(row.name)
    for claim, verdict, text in by_row.get(row.name, [(None, "-", "")]):
      desc = "" if claim is None else text.split("claim ", 1)[-1]
      cells = [row.name, row.config + "".join(
          f" {k}={v}" for k, v in row.overrides), row.dataset,
               str(row.steps), f"{r['top1']:.1%}" if r else "-",
               f"{r['wall_seconds']:.0f}" if r else "-",
               f"{claim.kind}: {desc}" if claim else "", verdict]
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


if __name__ == "__main__":
  _ROWS = flags.DEFINE_list("rows", [], "Row names (default: all, or --fast).")
  _FAST = flags.DEFINE_bool("fast", False, "Only the rows marked fast.")
  _CHECK = flags.DEFINE_bool("check", False, "Exit 1 if a claim fails.")
  _OUT = flags.DEFINE_string("out", DEFAULT_OUT, "JSON file (resumable).")
  _MARKDOWN = flags.DEFINE_bool("markdown", False, "Print/write the table.")
  _DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir.")
  _LIST = flags.DEFINE_bool("list", False, "Print the rows and claims only.")
  _REPORT = flags.DEFINE_bool("report", False,
                              "Train nothing: verdicts of the rows in --out.")


def main(argv):
  from vidjax import host_memory
  host_memory.retain_freed_memory()
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  unknown = [n for n in _ROWS.value if n not in BY_NAME]
  if unknown:
    cli.fail(f"--rows: unknown rows {unknown}; see --list")
  rows = [BY_NAME[n] for n in _ROWS.value] or [
      r for r in ROWS if r.fast or not _FAST.value]
  if _LIST.value:
    for r in rows:
      print(r.name, r.config, r.dataset, r.steps, dict(r.overrides))
    return 0
  results = train_rows([] if _REPORT.value else rows, _OUT.value,
                       _DATA_DIR.value)
  checked = verdicts(results)
  table = markdown(results, checked)
  if _MARKDOWN.value:
    print(table)
    with open(os.path.splitext(_OUT.value)[0] + ".md", "w") as f:
      f.write(table + "\n")
  failed = [text for _, verdict, text in checked if verdict == "FAIL"]
  for text in failed:
    print(f"FAIL {text}")
  passed = sum(v == "pass" for _, v, _ in checked)
  print(f"{passed} passed, {len(failed)} failed, "
        f"{sum(v == 'pending' for _, v, _ in checked)} pending")
  return 1 if failed and _CHECK.value else 0


if __name__ == "__main__":
  sys.exit(app.run(main))
