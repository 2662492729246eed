"""A run that a task trains inside its own job, or takes from a finished one.

Temporal localization trains its window-feature backbone into
WORKDIR/backbone (vidjax/tasks/localization/task.py) and the long-video
sampler its expensive clip classifier into WORKDIR/classifier
(vidjax/tasks/long_video/task.py). Either comes from a finished run folder
(`run`, e.g. config.dataset.backbone_run) or from a spec (`spec`, e.g.
config.backbone: a synthetic_motion `config` name, `dataset`, `steps`,
optional `tiny`, `data_dir`, `train_per_class`, `test_per_class`) trained
by the same `train.train_and_evaluate` as any job, so it checkpoints and
resumes like one.
"""
from __future__ import annotations

import os

from vidjax.errors import VidjaxError


def check(run: str, run_key: str, spec, spec_key: str):
  """One-line VidjaxErrors naming the key, before anything runs."""
  if run:
    if not os.path.isdir(os.path.join(os.path.expanduser(run),
                                      "checkpoints")):
      raise VidjaxError(f"{run_key}={run}: not a vidjax run folder (no "
                        "checkpoints/)")
    return
  from vidjax import experiment  # noqa: PLC0415
  if spec is None:
    raise VidjaxError(f"config.{spec_key} is missing (or set {run_key})")
  if int(spec.steps) < 1:
    raise VidjaxError(f"config.{spec_key}.steps must be >= 1, got "
                      f"{spec.steps}")
  try:
    experiment.build_config(spec.config, spec.dataset, int(spec.steps),
                            tiny=bool(spec.get("tiny", False)))
  except VidjaxError as e:
    raise VidjaxError(f"config.{spec_key}.config={spec.config!r}: {e}"
                      ) from None


def ensure(run: str, spec, work: str, what: str, log=print) -> str:
  """`run` (expanded), or `spec` trained (or resumed) in `work`."""
  if run:
    return os.path.expanduser(run)
  from vidjax import experiment, train  # noqa: PLC0415
  config = experiment.build_config(spec.config, spec.dataset, int(spec.steps),
                                   tiny=bool(spec.get("tiny", False)))
  for key in ("data_dir", "train_per_class", "test_per_class"):
    if spec.get(key) not in (None, "", -1):
      config.dataset[key] = spec[key]
  if not os.path.isdir(os.path.join(work, "checkpoints",
                                    str(int(spec.steps)))):
    log(f"{what}: training {spec.config} on synthetic_motion/{spec.dataset} "
        f"for {spec.steps} steps in {work}")
    train.train_and_evaluate(config, work)
  return work
