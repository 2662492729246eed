"""PyTorch checkpoints -> vidjax checkpoints (`tools/convert_checkpoint.py`).

`convert(source, fmt)` reads a transformers model directory (config.json +
model.safetensors / pytorch_model.bin) or one state dict file, maps every
tensor onto the vidjax model of the same architecture (one module per
family: `timesformer`, `vivit`, `videomae`) and returns the parameters with
the vidjax model options and data facts (frames, crop, classes, mean/std)
derived from the source. `save(converted, out)` writes a checkpoint that
`config.init_from.checkpoint_path` loads, plus `config.json` and `config.py`
(a vidjax config building the matching model, init_from set).
"""
import dataclasses
import json
import os
from typing import List

import numpy as np

from vidjax.convert import common
from vidjax.errors import VidjaxError

FORMATS = common.FORMATS
# Class count -> the public dataset with that many classes (config.dataset).
_DATASETS = {400: "kinetics400", 174: "something_something_v2",
             101: "ucf101", 51: "hmdb51", 487: "sports1m",
             8: "synthetic_motion"}


@dataclasses.dataclass
class Converted:
  params: dict       # nested numpy float32, the vidjax model's tree
  model: dict        # config.model (name + constructor options)
  data: dict         # num_frames, crop_size, num_classes, channels, mean, std
  unused: List[str]  # source keys no vidjax parameter came from
  source: str
  fmt: str


def _family(fmt: str):
  if fmt == "hf_timesformer":
    from vidjax.convert import timesformer as family
  elif fmt == "hf_vivit":
    from vidjax.convert import vivit as family
  elif fmt in ("hf_videomae", "hf_videomae_pretrain", "videomae_release"):
    from vidjax.convert import videomae as family
  else:
    raise VidjaxError(f"--format={fmt!r} is not a known format; known: "
                      f"{', '.join(FORMATS)}")
  return family


def convert(source: str, fmt: str, config_path: str = "") -> Converted:
  """Converts `source` (directory or file) given as `fmt` (see FORMATS)."""
  family = _family(fmt)
  state, hf_config, where = common.read_source(source, config_path)
  params, model, data, unused = family.convert(state, hf_config, where, fmt)
  data.update(common.read_preprocessing(source))
  converted = Converted(params, model, data, unused, source, fmt)
  check_fits(converted)
  return converted


def build(converted: Converted):
  """The vidjax module of `converted` (registry.build_model)."""
  from vidjax.registry import build_model
  return build_model(converted.model, converted.data["num_classes"])


def check_fits(converted: Converted):
  """Raises naming every parameter whose name/shape the built model lacks."""
  import flax
  import jax
  import jax.numpy as jnp
  from vidjax.checkpoint import check_shapes
  from vidjax.steps import flat_shapes
  model = build(converted)
  d = converted.data
  x = jax.ShapeDtypeStruct(
      (1, d["num_frames"], d["crop_size"], d["crop_size"], d["channels"]),
      jnp.float32)
  wanted = jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0),
                            "dropout": jax.random.PRNGKey(0)}, x,
                           train=False), x)["params"]
  saved = {k: list(np.shape(v)) for k, v in
           flax.traverse_util.flatten_dict(converted.params, sep="/").items()}
  check_shapes(saved, flat_shapes(wanted), converted.source)


def dataset_fields(converted: Converted) -> dict:
  d = converted.data
  fields = dict(name=_DATASETS.get(d["num_classes"], "synthetic_motion"),
                num_frames=d["num_frames"], crop_size=d["crop_size"])
  if "mean" in d:
    fields.update(mean=list(d["mean"]), std=list(d["std"]))
  return fields


def build_config(converted: Converted, checkpoint_path: str = ""):
  """A full vidjax ConfigDict (configs/default.py + the converted model)."""
  from vidjax import cli  # noqa: F401  (puts the repo root on sys.path)
  from configs import default
  config = default.get_config()
  for key, value in converted.model.items():
    config.model[key] = list(value) if isinstance(value, tuple) else value
  for key, value in dataset_fields(converted).items():
    config.dataset[key] = tuple(value) if isinstance(value, list) else value
  config.task = task(converted)
  config.init_from.checkpoint_path = checkpoint_path
  return config


def task(converted: Converted) -> str:
  """config.task: "videomae_pretrain" for the pretraining model."""
  pretrain = converted.model["name"] == "videomae_pretrain"
  return "videomae_pretrain" if pretrain else "classification"


def head_note(converted: Converted) -> str:
  """Why the converted head may not load into the written config ('' if it
  does)."""
  classes = converted.data["num_classes"]
  if not classes or classes in _DATASETS:
    return ""
  return (f"no vidjax dataset has {classes} classes: config.py trains on "
          "synthetic_motion (8), so init_from keeps its fresh 8-way head; "
          "set config.dataset.name to a dataset with the right classes")


_CONFIG_PY = '''"""vidjax config of {source}
(written by tools.convert_checkpoint --format={fmt}).

  python -m vidjax.main --config={here}/config.py --workdir=RUN_DIR

configs/default.py plus the converted model (config.json), starting from the
converted weights (init_from = this folder).
"""
import json
import os

from configs import default

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
  del arg
  with open(os.path.join(HERE, "config.json")) as f:
    saved = json.load(f)
  config = default.get_config()
  for key, value in saved["model"].items():
    config.model[key] = value
  for key, value in saved["dataset"].items():
    config.dataset[key] = tuple(value) if isinstance(value, list) else value
  config.task = saved["task"]
  config.init_from.checkpoint_path = HERE
  return config
'''


def save(converted: Converted, out: str) -> str:
  """Writes OUT/checkpoints/0 (params), OUT/config.json, OUT/config.py."""
  import orbax.checkpoint as ocp
  from vidjax.checkpoint import make_meta
  out = os.path.abspath(out)
  os.makedirs(out, exist_ok=True)
  if os.path.isdir(os.path.join(out, "checkpoints", "0")):
    raise VidjaxError(f"--out={out} already holds a converted checkpoint")
  config = build_config(converted, out)
  manager = ocp.CheckpointManager(os.path.join(out, "checkpoints"),
                                  options=ocp.CheckpointManagerOptions(
                                      create=True))
  meta = make_meta(config, converted.params)
  meta["converted_from"] = {"source": os.path.abspath(converted.source),
                            "format": converted.fmt}
  manager.save(0, args=ocp.args.Composite(
      state=ocp.args.StandardSave({"params": converted.params}),
      meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()
  model = {k: list(v) if isinstance(v, tuple) else v
           for k, v in converted.model.items()}
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump({"model": model, "dataset": dataset_fields(converted),
               "task": task(converted),
               "num_classes": converted.data["num_classes"],
               "source": os.path.abspath(converted.source),
               "format": converted.fmt}, f, indent=1)
  with open(os.path.join(out, "config.py"), "w") as f:
    f.write(_CONFIG_PY.format(source=os.path.abspath(converted.source),
                              fmt=converted.fmt, here=out))
  return out
