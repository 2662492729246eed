"""Evaluate an ActivityNet result JSON offline (no server, Python 3, numpy).

  python -m vidjax.tasks.localization.eval_cli --annotations=FILE_OR_DIR \\
      --predictions=results.json [--subset=validation] \\
      [--thresholds=activitynet|thumos|0.3,0.5] [--proposals] [--out=m.json]

`--annotations`: an ActivityNet-schema JSON (activity_net.v1-3.min.json, or
the one `synthetic_untrimmed` writes), or a folder holding the THUMOS14
`<Class>_val|test.txt` lists (its `Ambiguous_*` intervals then apply).
`--subset`: the annotation subset evaluated (default: "validation" for
ActivityNet JSON, "test" for THUMOS lists). `--proposals`: AR@AN / AUC of
class-agnostic proposals instead of detection mAP. Prints one line per
threshold and the average; `--out` writes the full result as JSON.
Semantics: vidjax/tasks/localization/evaluate.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from vidjax.errors import VidjaxError
from vidjax.tasks.localization import annotations as ann
from vidjax.tasks.localization import evaluate as ev


def _thresholds(text: str, thumos: bool):
  if text in ("", None):
    return ev.THUMOS_THRESHOLDS if thumos else ev.ACTIVITYNET_THRESHOLDS
  if text in ("activitynet", "thumos"):
    return ev.ACTIVITYNET_THRESHOLDS if text == "activitynet" else \
        ev.THUMOS_THRESHOLDS
  try:
    values = [float(x) for x in text.split(",")]
  except ValueError:
    raise VidjaxError(f"--thresholds={text}: expected activitynet, thumos or "
                      "comma-separated numbers") from None
  if not values or not all(0 < v <= 1 for v in values):
    raise VidjaxError(f"--thresholds={text}: tIoU thresholds are in (0, 1]")
  return values


def run(annotations: str, predictions: str, subset: str = "",
        thresholds: str = "", proposals: bool = False) -> dict:
  """The metrics dict (evaluate.detection_map or proposal_metrics) plus
  "subset" and "num_videos"."""
  thumos = os.path.isdir(annotations)
  db = (ann.read_thumos14(annotations) if thumos
        else ann.read_activitynet(annotations))
  subset = subset or ("test" if thumos else "validation")
  gt = ann.ground_truth(db, subset)
  if not gt:
    have = sorted({v.subset for v in db.values()})
    raise VidjaxError(f"--subset={subset}: no video of that subset in "
                      f"{annotations} (subsets: {', '.join(have)})")
  preds = ev.read_predictions(predictions)
  if proposals:
    out = ev.proposal_metrics(gt, preds)
  else:
    out = ev.detection_map(gt, preds, _thresholds(thresholds, thumos),
                           ambiguous=ann.ambiguous(db, subset) or None)
  out.update(subset=subset, num_videos=len(gt))
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--annotations", required=True)
  p.add_argument("--predictions", required=True)
  p.add_argument("--subset", default="")
  p.add_argument("--thresholds", default="")
  p.add_argument("--proposals", action="store_true")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  try:
    out = run(args.annotations, args.predictions, args.subset,
              args.thresholds, args.proposals)
  except VidjaxError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if args.proposals:
    for key in ("ar@1", "ar@5", "ar@10", "ar@50", "ar@100", "auc"):
      print(f"{key}: {100 * out[key]:.2f}")
  else:
    for t, m in zip(out["thresholds"], out["map"]):
      print(f"mAP@{t:.2f}: {100 * m:.2f}")
    print(f"average mAP: {100 * out['average_map']:.2f} ({out['num_videos']}"
          f" videos, subset {out['subset']})")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
