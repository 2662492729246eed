"""Loading what the visualisations need from a training run.

* `load_run(workdir, step=None)`: a checkpoint's config (its JSON meta, see
  vidjax/checkpoint.py), the model rebuilt from it (`registry.build_model`
  with the checkpoint's class count), its parameters (+ BatchNorm stats) and
  its class names (`Run.class_names`: the meta's, else WORKDIR/
  class_names.json, else `config.dataset.class_names`, else the embedded
  dataset's). `workdir`: a training run (its latest checkpoint, or `step`),
  its checkpoints/ folder, one step folder, or a folder written by
  tools/convert_checkpoint.py (a converted Hugging Face model: its meta holds
  `id2label`). A run trained with `scan_layers=True` is rebuilt unrolled
  (the scanned `layers/` parameters split into `block_i`), so every layer
  can sow; `unscan=False` keeps the trained (scanned) model, as inference
  (vidjax/inference.py) does.
* `load_clip(run, video)`: one clip as the evaluation sees it (centre clip,
  centre crop): `video` is an index into the run's test split, or a video
  file, decoded with PyAV (vidjax/data/decode.py), resized like the
  dataset's stored frames (`inference.decode_file`: the synthetic frames'
  32 px, `resize_short` or native) and cropped as the evaluation crops;
  flow channels, where the config's modality needs them, are computed with
  the dataset's algorithm.
"""
import dataclasses
import json
import os
from typing import Any, Optional, Sequence

import flax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from vidjax import checkpoint, steps
from vidjax.errors import VidjaxError
from vidjax.registry import build_model


@dataclasses.dataclass
class Run:
  workdir: str
  step_dir: str
  config: Any
  model: Any
  variables: dict
  num_classes: int
  class_names: tuple = ()  # the head's classes in row order; () if unknown
  meta: Optional[dict] = None  # the checkpoint's JSON meta

  @property
  def mean(self):
    return tuple(self.config.dataset.mean)

  @property
  def std(self):
    return tuple(self.config.dataset.std)

  def normalize(self, video_uint8) -> np.ndarray:
    x = np.asarray(video_uint8, np.float32) / 255.0
    return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std,
                                                                np.float32)


@dataclasses.dataclass
class Clip:
  video: np.ndarray          # (T, H, W, C) uint8, as the model's input
  label: Optional[int]       # test-split label, None for a file
  class_names: Optional[Sequence[str]]
  tag: str                   # short name for output files


def _read_meta(directory: str, step: int) -> dict:
  manager = ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(create=False))
  try:
    return manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta
  finally:
    manager.close()


def unscan_params(params) -> dict:
  """Scanned `.../layers/...` leaves (leading layer axis) -> `.../block_i/`."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  out = {}
  for key, value in flat.items():
    parts = key.split("/")
    if "layers" not in parts:
      out[key] = value
      continue
    at = parts.index("layers")
    for i in range(value.shape[0]):
      out["/".join(parts[:at] + [f"block_{i}"] + parts[at + 1:])] = value[i]
  return flax.traverse_util.unflatten_dict(out, sep="/")


def _checkpoint_path(workdir: str, step: Optional[int], flag: str) -> str:
  """The folder `checkpoint.load_pretrained` reads, checked with `flag`'s name
  in the messages."""
  path = os.path.abspath(workdir)
  if not os.path.isdir(path):
    raise VidjaxError(f"{flag}={workdir} does not exist")
  if step is None:
    if not (os.path.isdir(os.path.join(path, "checkpoints")) or
            os.path.isdir(os.path.join(path, "state")) or any(
                d.isdigit() for d in os.listdir(path))):
      raise VidjaxError(f"{flag}={workdir} has no checkpoints/ folder (is it "
                        "a vidjax training run?)")
    return path
  folder = os.path.join(path, "checkpoints")
  folder = folder if os.path.isdir(folder) else path
  saved = sorted(int(d) for d in os.listdir(folder) if d.isdigit())
  if int(step) not in saved:
    raise VidjaxError(f"--step={step}: {flag}={workdir} has checkpoints of "
                      f"steps {saved or 'none'}")
  return os.path.join(folder, str(int(step)))


def _class_names(meta: dict, config, workdir: str, num_classes: int) -> tuple:
  """The head's class names (see the module docstring); () if unknown."""
  from vidjax import evaluate  # noqa: PLC0415
  candidates = [meta.get("class_names") or ()]
  path = os.path.join(workdir, evaluate.CLASS_NAMES_FILE)
  if os.path.isfile(path):
    with open(path) as f:
      candidates.append(json.load(f))
  candidates.append(config.dataset.get("class_names", ()) or ())
  if not meta.get("converted_from") and config.dataset.get(
      "name") == "synthetic_motion":
    from vidjax.data import datasets  # noqa: PLC0415
    candidates.append(datasets.class_names(config.dataset))
  for names in candidates:
    if len(names) == num_classes:
      return tuple(str(n) for n in names)
  return ()


def load_run(workdir: str, step: Optional[int] = None, unscan: bool = True,
             flag: str = "--workdir") -> Run:
  path = _checkpoint_path(workdir, step, flag)
  params, batch_stats, step_dir = checkpoint.load_pretrained(path)
  meta = _read_meta(os.path.dirname(step_dir),
                    int(os.path.basename(step_dir))) or {}
  if "config" not in meta:
    raise VidjaxError(f"{flag}={workdir}: checkpoint {step_dir} has no saved "
                      "config (an inflated or exported parameter set?)")
  config = ml_collections.ConfigDict(meta["config"])
  # The run's own class count: its checkpoint's, so no data is needed here.
  from vidjax import head_remap  # noqa: PLC0415
  num_classes = (len(meta.get("class_names") or ()) or
                 head_remap.head_rows(params))
  if not num_classes:  # an older checkpoint of a model without a head
    from vidjax.data import datasets  # noqa: PLC0415
    num_classes = datasets.num_classes(config.dataset)
  if unscan and config.model.get("scan_layers", False):
    config.model.scan_layers = False
    params = unscan_params(params)
  model = build_model(config.model, num_classes)
  if hasattr(model, "check_input"):
    model.check_input(steps.input_shape(config))
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  run_dir = os.path.abspath(workdir)
  if os.path.basename(os.path.dirname(step_dir)) == "checkpoints":
    run_dir = os.path.dirname(os.path.dirname(step_dir))
  return Run(run_dir, step_dir, config, model, variables, num_classes,
             _class_names(meta, config, run_dir, num_classes), meta)


def _eval_clip(source, config, index: int) -> dict:
  from vidjax.data.pipeline import ClipSpec, EvalLoader  # noqa: PLC0415
  loader = EvalLoader(source, ClipSpec.from_config(config.dataset), 1, 1, 1)
  batch = loader.batch(index)
  return {"video": batch["video"][0], "label": int(batch["label"][0])}


def _file_video(path: str, config) -> Any:
  """The file as the run's dataset stores frames (vidjax/inference.py)."""
  from vidjax import inference  # noqa: PLC0415
  from vidjax.data import decode  # noqa: PLC0415
  try:
    return inference.decode_file(path, config.dataset)[0]
  except decode.BadVideo as e:
    raise VidjaxError(f"--video={path}: cannot decode it: {e}") from None


def load_clip(run: Run, video: str) -> Clip:
  config = run.config
  if str(video).isdigit():
    from vidjax.data import datasets  # noqa: PLC0415
    data = datasets.load(config.dataset)
    index = int(video)
    if index >= len(data.test):
      raise VidjaxError(f"--video={index}: the test split has "
                        f"{len(data.test)} videos (0..{len(data.test) - 1})")
    ex = _eval_clip(data.test, config, index)
    return Clip(ex["video"], ex["label"], list(data.class_names),
                f"test{index}")
  if not os.path.isfile(video):
    raise VidjaxError(f"--video={video} is neither a test-split index nor a "
                      "video file")
  ex = _eval_clip([{"video": _file_video(video, config), "label": -1}],
                  config, 0)
  stem = os.path.splitext(os.path.basename(video))[0]
  return Clip(ex["video"], None, None, "".join(
      c if c.isalnum() or c in "-_" else "_" for c in stem)[:40])
