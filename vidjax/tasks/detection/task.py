"""AVA-style spatio-temporal action detection as a task of the shared loop.

`config.task = "detection"` (configs/ava_slowfast.py, configs/ava_videomae.py)
trains a per-box multi-label action classifier (Gu et al., CVPR 2018;
Feichtenhofer et al., SlowFast, ICCV 2019, Sec. 5) through
`python -m vidjax.main`, with the loop's checkpoints, resume, metric
windows and data-parallel sharding (vidjax/tasks/base.py is the interface).

* Data: `vidjax.tasks.detection.data.load` (`synthetic_ava` or `ava`):
  keyframes with GT boxes for training; the test keyframes carry GT or the
  detector's boxes (`config.dataset.eval_boxes`).
* Train batches (`data.make_batch`, fixed shapes) are a function of
  (seed, step): the step's slice of a per-epoch permutation drawn from
  (seed, epoch), each row augmented with a generator seeded by (seed, step,
  row), so a resumed run replays the same batches; each process builds its
  own rows.
* Evaluation: per-box sigmoid probabilities over every test keyframe, as
  AVA result rows in the keyframe's own coordinates
  (`data.prediction_rows`), scored by the exact frame-mAP@0.5
  (evaluate.frame_map, the label map's classes, excluded timestamps
  ignored) -> eval/frame_map and eval/ap_<class id>. The final evaluation
  writes WORKDIR/eval/test_step<N>/detections.csv (AVA result CSV),
  per_class.csv and metrics.json.

The model's head has one output per label-map class (what detection_check
trains; AVA v2.2's list has the 60 evaluated actions). Single host for
evaluation (every eval batch is put whole), like the localization task.
"""
from __future__ import annotations

import csv
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.detection import ava_io, data as data_lib, train_step

EVAL_KEYS = ("video", "boxes", "box_mask")
TRAIN_KEYS = train_step.KEYS


def class_names(config) -> list:
  """The label map's class names, read without building any data."""
  d = config.dataset
  if d.name == "synthetic_ava":
    from vidjax.data import ava_render  # noqa: PLC0415
    return list(ava_render.ACTION_NAMES)
  if d.name == "ava":
    from vidjax.data import ava_public as ap  # noqa: PLC0415
    label_map = ap.read_label_map(ap._find(  # noqa: SLF001
        ap._manual_dir(d), ap.LABEL_MAP, "label map"))  # noqa: SLF001
    return [label_map[c] for c in sorted(label_map)]
  raise VidjaxError(f"config.dataset.name={d.name!r}: detection datasets "
                    "are synthetic_ava and ava")


def preflight(config, mesh):
  """Every detection config check (one-line VidjaxErrors naming the key),
  before any data is built or anything compiled."""
  from vidjax import optim, preflight as pf, sharding  # noqa: PLC0415
  from vidjax.config_check import check_config  # noqa: PLC0415
  from vidjax.tasks.detection import head, model as model_lib  # noqa: PLC0415
  check_config(config)
  d, m = config.dataset, config.model
  if d.get("eval_boxes", "gt") not in ("gt", "detector"):
    raise VidjaxError(f"config.dataset.eval_boxes={d.eval_boxes!r}: must be "
                      "'gt' or 'detector'")
  thresh = d.get("detection_score_thresh", 0.8)
  if not isinstance(thresh, (int, float)) or not 0.0 <= thresh <= 1.0:
    raise VidjaxError(f"config.dataset.detection_score_thresh={thresh!r}: "
                      "must be in [0, 1]")
  if m.get("pooling", "roi") not in head.POOLINGS:
    raise VidjaxError(f"config.model.pooling={m.pooling!r}: one of "
                      f"{', '.join(head.POOLINGS)}")
  if config.get("grad_accum_steps", 1) != 1:
    raise VidjaxError("config.grad_accum_steps: the detection step takes "
                      "whole batches (set 1)")
  spec = data_lib.ClipSpec.from_config(d, 1)
  optim.make_optimizer(config.optimizer,
                       optim.make_schedule(config.optimizer, 2, 1))
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  names = class_names(config)
  model = model_lib.build_model(m, len(names))
  x = jnp.zeros((1, spec.num_frames, spec.crop_size, spec.crop_size, 3))
  boxes, mask = jnp.zeros((1, 1, 4)), jnp.ones((1, 1), bool)
  try:  # the model's structure, traced (no compile)
    abstract = jax.eval_shape(lambda: model.init(
        {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
        x, boxes, mask))["params"]
  except VidjaxError:
    raise
  except Exception as e:  # noqa: BLE001  (flax shape errors)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise VidjaxError(f"config.model: {m.name} cannot be built for "
                      f"{spec.num_frames}x{spec.crop_size}^2 clips "
                      f"({first[:200]})") from None
  return pf.Preflight(names, spec, model, abstract)


class Detection(base.Task):
  """The Task (vidjax/tasks/base.py) of AVA-style action detection."""

  name = "detection"
  eval_keys = EVAL_KEYS
  counts_flops = False

  def __init__(self):
    self.max_boxes = 1
    self._gt = None

  def preflight(self, config, mesh):
    return preflight(config, mesh)

  def load_data(self, config, workdir: str, log=print, class_names=None):
    got = data_lib.load(config.dataset)
    if not len(got["train"]) or not len(got["test"]):
      raise VidjaxError(f"config.dataset.name={config.dataset.name}: no "
                        "train or no test keyframes")
    if class_names is not None and len(got["class_names"]) != len(
        class_names):
      raise VidjaxError(
          f"config.dataset.name={config.dataset.name}: the label map lists "
          f"{len(got['class_names'])} classes, the model was checked with "
          f"{len(class_names)}")
    self.max_boxes = int(got["max_boxes"])
    out = types.SimpleNamespace(**got)
    out.name = config.dataset.name
    return out

  def train_size(self, data) -> int:
    return len(data.train)

  def loaders(self, config, pre, data, pidx: int, pcount: int):
    spec = data_lib.ClipSpec.from_config(config.dataset, data.max_boxes)
    train = TrainLoader(data.train, spec, config.seed, config.batch_size,
                        pidx, pcount)
    return train, EvalLoader(data.test, spec, config.eval_batch_size,
                             config.seed), data.test

  def create_state(self, model, tx, config, rng):
    return train_step.create_state(model, tx, config, rng, self.max_boxes)

  def make_train_step(self, config, schedule):
    return train_step.make_detection_train_step(config, schedule)

  def make_eval_step(self, config):
    return train_step.make_detection_eval_step(config)

  def evaluate(self, ctx: base.EvalContext, state, eval_step, step: int):
    from vidjax import sharding  # noqa: PLC0415
    from vidjax.tasks.detection import evaluate as ev  # noqa: PLC0415
    data, test = ctx.data, ctx.test
    rows = []
    for batch in ctx.eval_loader.iterate():
      probs = eval_step(state, sharding.put_batch(
          {k: batch[k] for k in EVAL_KEYS}, ctx.mesh))
      rows += data_lib.prediction_rows(test, batch, np.asarray(
          jax.device_get(probs)), data.class_ids)
    if self._gt is None:
      files = data.files
      self._gt = (ava_io.read_csv(files["test_csv"]),
                  ava_io.read_excluded(files.get("test_excluded")))
    res = ev.frame_map(self._gt[0], rows, data.class_ids, self._gt[1])
    result = {"eval/frame_map": float(res["map"]),
              "eval/num_keyframes": float(res["num_keyframes"])}
    result.update({f"eval/ap_{c}": float(a) for c, a in res["ap"].items()
                   if not np.isnan(a)})
    if step != ctx.num_steps or not ctx.is_main:
      return result, None

    def record():  # the final evaluation's files
      out = os.path.join(ctx.workdir, "eval", f"test_step{step}")
      os.makedirs(out, exist_ok=True)
      ava_io.write_csv(os.path.join(out, "detections.csv"), rows)
      names = dict(zip(data.class_ids, data.class_names))
      with open(os.path.join(out, "per_class.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class_id", "name", "num_gt", "ap"])
        for c in sorted(res["ap"]):
          w.writerow([c, names.get(c, str(c)), res["num_gt"][c],
                      repr(float(res["ap"][c]))])
      with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({**result, "split": "test", "step": int(step),
                   "eval_boxes": ctx.config.dataset.get("eval_boxes", "gt"),
                   "checkpoint": ctx.checkpoint_path(step)}, f, indent=1)
      return None
    return result, record

  def summary(self, config, final: dict) -> str:
    boxes = config.dataset.get("eval_boxes", "gt")
    return (f"test ({int(final.get('eval/num_keyframes', 0))} keyframes, "
            f"{boxes} boxes): frame-mAP@0.5={final['eval/frame_map']:.4f}")


class TrainLoader:
  """Training batches of keyframes, a function of (seed, step): step s of
  epoch e takes rows [j B, (j + 1) B) of a permutation drawn from
  (seed, e) (B > #keyframes: B draws with replacement from (seed, s)),
  row r augmented by a generator seeded by (seed, s, r): the global batch
  does not depend on the process count. This process builds only its rows
  of the global batch."""

  def __init__(self, kset, spec, seed: int, global_batch: int,
               process_index: int = 0, process_count: int = 1):
    self.kset, self.spec, self.seed = kset, spec, int(seed)
    self.global_batch = int(global_batch)
    local = self.global_batch // process_count
    self.rows = slice(process_index * local, (process_index + 1) * local)

  def indices(self, step: int) -> np.ndarray:
    n, b = len(self.kset), self.global_batch
    if n < b:
      return np.random.default_rng([self.seed, 1, int(step)]).integers(
          0, n, b)
    per_epoch = n // b
    epoch, j = divmod(int(step), per_epoch)
    order = np.random.default_rng([self.seed, 0, epoch]).permutation(n)
    return order[j * b:(j + 1) * b]

  def batch(self, step: int) -> dict:
    idx = self.indices(step)
    rows = [data_lib.make_batch(self.kset, idx[r:r + 1], self.spec,
                                np.random.default_rng([self.seed, 2,
                                                       int(step), r]))
            for r in range(len(idx))[self.rows]]
    return {k: np.concatenate([b[k] for b in rows]) for k in TRAIN_KEYS}

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """One ordered pass over the test keyframes (data.batches, train=False:
  the last batch padded, `valid` marks its real rows)."""

  def __init__(self, kset, spec, batch_size: int, seed: int):
    self.kset, self.spec = kset, spec
    self.batch_size, self.seed = int(batch_size), int(seed)

  def iterate(self):
    return data_lib.batches(self.kset, self.batch_size, self.spec,
                            self.seed, train=False)

  def batch(self, index: int) -> dict:
    for i, b in enumerate(self.iterate()):
      if i == index:
        return {k: b[k] for k in EVAL_KEYS}
    raise IndexError(index)
