"""Evaluate AVA results offline: frame-mAP@0.5 (Python 3, numpy only).

  python -m vidjax.tasks.detection.eval_cli --gt=ava_val_v2.2.csv \\
      --pred=results.csv \\
      --labelmap=ava_action_list_v2.2_for_activitynet_2019.pbtxt \\
      [--exclusions=ava_val_excluded_timestamps_v2.2.csv] [--top_k=50] \\
      [--iou=0.5] [--unlisted=false_positive|ignore] [--out=metrics.json]

Files in AVA's formats (vidjax/tasks/detection/ava_io.py); semantics of the
official v2.x evaluator (vidjax/tasks/detection/evaluate.py). Prints the
mAP and one line per evaluated class; `--out` writes everything as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from vidjax.errors import VidjaxError
from vidjax.tasks.detection import evaluate as ev


def run(gt: str, pred: str, labelmap: str, exclusions: str = "",
        top_k: int = ev.TOP_K, iou: float = ev.IOU_THRESHOLD,
        unlisted: str = "false_positive") -> dict:
  if not 0.0 < iou <= 1.0:
    raise VidjaxError(f"--iou={iou}: an IoU threshold is in (0, 1]")
  return ev.evaluate_files(gt, pred, labelmap, exclusions or None,
                           top_k=top_k, iou_threshold=iou, unlisted=unlisted)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--gt", required=True, help="ground-truth box CSV")
  p.add_argument("--pred", required=True, help="result CSV (with scores)")
  p.add_argument("--labelmap", required=True, help="action list pbtxt")
  p.add_argument("--exclusions", default="", help="excluded timestamps CSV")
  p.add_argument("--top_k", type=int, default=ev.TOP_K)
  p.add_argument("--iou", type=float, default=ev.IOU_THRESHOLD)
  p.add_argument("--unlisted", default="false_positive", choices=ev.UNLISTED)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  try:
    out = run(args.gt, args.pred, args.labelmap, args.exclusions,
              args.top_k, args.iou, args.unlisted)
  except VidjaxError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for cid, name, n, ap in ev.per_class_table(out):
    if n:
      print(f"AP@{args.iou:g} {cid:3d} {name}: {100 * ap:.2f} ({n} GT)")
  print(f"frame-mAP@{args.iou:g}: {100 * out['map']:.2f} "
        f"({sum(1 for v in out['ap'].values() if not math.isnan(v))} classes"
        f" with GT, {out['num_keyframes']} keyframes, "
        f"{out['num_detections']} detections kept)")
  if args.out:
    js = dict(out, ap={str(k): (None if math.isnan(v) else v)
                       for k, v in out["ap"].items()},
              num_gt={str(k): v for k, v in out["num_gt"].items()},
              class_names={str(k): v for k, v in out["class_names"].items()})
    with open(args.out, "w") as f:
      json.dump(js, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
