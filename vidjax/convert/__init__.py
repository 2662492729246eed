"""PyTorch checkpoints -> vidjax checkpoints (`tools/convert_checkpoint.py`).

`convert(source, fmt)` reads a transformers model directory (config.json +
model.safetensors / pytorch_model.bin) or one state dict file, maps every
tensor onto the vidjax model of the same architecture (one module per
family: `timesformer`, `vivit`, `videomae`, and the image backbones the
papers start from: `vit_image` (ImageNet ViT -> "vit"), `resnet_image`
(ImageNet ResNet-50 -> the per-frame 2D ResNet "tsm" with shift_place
"none", BatchNorm statistics included)) and returns the parameters with
the vidjax model options and data facts (frames, crop, classes, mean/std)
derived from the source, and the head's class names (`id2label`).
`fmt=None` reads the format from the folder's config.json (`model_type`:
videomae, timesformer, vivit, vit, resnet; `detect_format`), else from the
tensor names (a torchvision / timm ResNet, the VideoMAE release).
`save(converted, out)` writes a checkpoint that
`config.init_from.checkpoint_path` loads (its meta holds the class names,
so a run's head is matched to its data's classes by name:
vidjax/head_remap.py), plus `config.json` and `config.py` (a vidjax config
building the matching model at its own input: `paper_input.py`; init_from
set; `config.dataset.class_names` = the head's classes). An image
backbone's checkpoint initialises the video models as their papers do when
a video config points `init_from.checkpoint_path` at it
(vidjax/init_image.py).
"""
import dataclasses
import json
import os
from typing import List, Optional

import numpy as np

from vidjax.convert import common, paper_input
from vidjax.errors import VidjaxError

FORMATS = common.FORMATS
IMAGE_FORMATS = ("hf_vit", "hf_resnet", "resnet_torchvision")


@dataclasses.dataclass
class Converted:
  params: dict       # nested numpy float32, the vidjax model's tree
  model: dict        # config.model (name + constructor options)
  data: dict         # num_frames, crop_size, num_classes, channels, mean,
                     # std, test_resize_short, class_names (head row order)
  unused: List[str]  # source keys no vidjax parameter came from
  source: str
  fmt: str
  batch_stats: Optional[dict] = None  # BatchNorm statistics (ResNets)


def _family(fmt: str):
  if fmt == "hf_timesformer":
    from vidjax.convert import timesformer as family
  elif fmt == "hf_vivit":
    from vidjax.convert import vivit as family
  elif fmt in ("hf_videomae", "hf_videomae_pretrain", "videomae_release"):
    from vidjax.convert import videomae as family
  elif fmt == "hf_vit":
    from vidjax.convert import vit_image as family
  elif fmt in ("hf_resnet", "resnet_torchvision"):
    from vidjax.convert import resnet_image as family
  else:
    raise VidjaxError(f"--format={fmt!r} is not a known format; known: "
                      f"{', '.join(FORMATS)}")
  return family


def convert(source: str, fmt: Optional[str] = None,
            config_path: str = "") -> Converted:
  """Converts `source` (directory or file) given as `fmt` (see FORMATS;
  None or "": `common.detect_format`)."""
  if fmt:
    _family(fmt)  # an unknown --format fails before reading any weights
  state, hf_config, where = common.read_source(source, config_path)
  fmt = fmt or common.detect_format(state, hf_config, where)
  family = _family(fmt)
  params, model, data, unused, *stats = family.convert(state, hf_config,
                                                       where, fmt)
  data.update(common.read_preprocessing(source))
  data["class_names"] = common.read_class_names(hf_config,
                                                data["num_classes"])
  converted = Converted(params, model, data, unused, source, fmt,
                        stats[0] if stats else None)
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
  """config.dataset fields: the model's own input (paper_input.py)."""
  return paper_input.dataset_fields(converted.model["name"], converted.data)


def top_fields(converted: Converted) -> dict:
  """Top-level config fields: the paper's test views."""
  return paper_input.test_views(converted.model["name"], converted.data)


def build_config(converted: Converted, checkpoint_path: str = ""):
  """A full vidjax ConfigDict (configs/default.py + the converted model)."""
  from vidjax import cli  # noqa: F401  (puts the repo root on sys.path)
  from configs import default
  config = default.get_config()
  for key, value in converted.model.items():
    config.model[key] = list(value) if isinstance(value, tuple) else value
  for key, value in dataset_fields(converted).items():
    config.dataset[key] = tuple(value) if isinstance(value, list) else value
  for key, value in top_fields(converted).items():
    config[key] = value
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
  if converted.fmt in IMAGE_FORMATS:
    return (f"an image backbone ({classes} classes): initialise a video "
            "model with its config and --config.init_from.checkpoint_path="
            "this folder (ViT -> ViViT 1-4 / TimeSformer, ResNet -> I3D-R50 "
            "/ TSM / SlowFast: vidjax/init_image.py)")
  if not classes or classes in paper_input.DATASETS:
    return ""
  return (f"no vidjax dataset has {classes} classes: config.py trains on "
          "synthetic_motion (8), so init_from keeps its fresh 8-way head; "
          "set config.dataset.name to a dataset with the right classes")


_CONFIG_PY = '''"""vidjax config of {source}
(written by tools.convert_checkpoint --format={fmt}).

  python -m vidjax.main --config={here}/config.py --workdir=RUN_DIR

configs/default.py plus the converted model and its own input
(config.json: crop = the model's image size, frames stored at a short side
no view upsamples, the processor's test resize and mean/std, the paper's
frame stride and test views; config.dataset.class_names = the head's
classes), starting from the converted weights (init_from = this folder).
On your own videos: --config.dataset.name=video_folder
--config.dataset.path=DIR; a head whose class names match the data's (any
order, or a subset) predicts them before any training.
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
  for key, value in saved.get("config", {{}}).items():
    config[key] = value
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
  meta = make_meta(config, converted.params,
                   converted.data.get("class_names", ()))
  meta["converted_from"] = {"source": os.path.abspath(converted.source),
                            "format": converted.fmt}
  state = {"params": converted.params}
  if converted.batch_stats:
    state["batch_stats"] = converted.batch_stats
  manager.save(0, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()
  model = {k: list(v) if isinstance(v, tuple) else v
           for k, v in converted.model.items()}
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump({"model": model, "dataset": dataset_fields(converted),
               "config": top_fields(converted), "task": task(converted),
               "num_classes": converted.data["num_classes"],
               "source": os.path.abspath(converted.source),
               "format": converted.fmt}, f, indent=1)
  with open(os.path.join(out, "config.py"), "w") as f:
    f.write(_CONFIG_PY.format(source=os.path.abspath(converted.source),
                              fmt=converted.fmt, here=out))
  return out
