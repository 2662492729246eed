"""Converts a PyTorch checkpoint into a vidjax checkpoint + config.

  python -m tools.convert_checkpoint --source=PATH_OR_HF_DIR --out=DIR
      [--format=FORMAT] [--config=CONFIG_JSON]

FORMAT (optional for a transformers folder: read from its config.json's
`model_type`, videomae / timesformer / vivit / vit / resnet; for a bare
torchvision / timm ResNet or VideoMAE-release state dict: from its tensor
names): hf_timesformer | hf_vivit | hf_videomae | hf_videomae_pretrain |
videomae_release | hf_vit | hf_resnet | resnet_torchvision (the mappings:
vidjax/convert/).
--source: a transformers model directory (config.json + model.safetensors or
pytorch_model.bin: a `save_pretrained` folder or a Hub snapshot), or one state
dict file (.safetensors/.bin/.pth; the VideoMAE release nests it under
"model" or "module").
--config: a transformers-style config.json for a bare state dict file, or to
override what is inferred (num_attention_heads, num_frames, image_size,
hidden_act, layer_norm_eps; for VideoMAE also decoder_num_attention_heads,
mask_ratio, norm_pix_loss).

Writes DIR/checkpoints/0 (load it with --config.init_from.checkpoint_path=DIR;
its meta holds the head's class names, transformers' id2label),
DIR/config.json (model options, dataset fields, test views, class names) and
DIR/config.py (a vidjax config: `python -m vidjax.main --config=DIR/config.py
--workdir=RUN`) that runs the model at its own input: crop = its image size,
frames stored at a short side no view upsamples (320 for Kinetics), the
processor's test resize and mean/std, the paper's frame stride and test
views (vidjax/convert/paper_input.py). On a dataset whose class names match
the head's (any order, or a subset), the head predicts them before any
training (vidjax/head_remap.py).

The papers' ImageNet starts (vidjax/init_image.py): convert an image
backbone once, then point a video config at it, e.g.

  python -m tools.convert_checkpoint --source=vit-base-patch16-224 --out=VIT
  python -m vidjax.main --config=configs/vivit_factorized.py:k400 \
      --config.init_from.checkpoint_path=VIT \
      [--config.init_from.tubelet_init=central_frame|average]
  python -m tools.convert_checkpoint --source=resnet-50 --out=R50
  python -m vidjax.main --config=configs/i3d_r50.py:k400 \
      --config.init_from.checkpoint_path=R50 \
      [--config.init_from.kernel_inflation=mean|center]

(ViT -> ViViT models 1-4 and TimeSformer; ResNet-50 -> I3D-R50 / NL, TSM,
SlowFast's Slow pathway; a timm `resnet50` state dict converts the same way.)
Prints one JSON line: the output folder, format, model, parameter count,
class count and names found, the written dataset fields, source keys left
unused.
"""
import json

from absl import app, flags, logging

from vidjax import cli
from vidjax.convert import common

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _SOURCE = flags.DEFINE_string("source", None,
                                "HF model dir or state dict file.")
  _FORMAT = flags.DEFINE_string(
      "format", None, "One of " + ", ".join(common.FORMATS) + " (default: "
      "from the folder's config.json model_type, or the tensor names).")
  _OUT = flags.DEFINE_string("out", None, "Output folder.")
  _HF_CONFIG = flags.DEFINE_string(
      "config", "", "transformers-style config.json (optional for a directory).")


def run(source: str, fmt, out: str, config_path: str = "") -> dict:
  import numpy as np
  import jax
  from vidjax import convert
  converted = convert.convert(source, fmt, config_path)
  path = convert.save(converted, out)
  dataset = convert.dataset_fields(converted)
  shown = ("name", "num_frames", "frame_stride", "crop_size", "resize_short",
           "test_resize_short")
  report = {
      "out": path, "format": converted.fmt, "model": converted.model["name"],
      "params": int(sum(np.size(x) for x in jax.tree.leaves(
          converted.params))),
      "num_classes": converted.data["num_classes"],
      "class_names": len(converted.data.get("class_names", ())),
      "dataset": dataset["name"],
      "dataset_fields": {k: dataset[k] for k in shown if k in dataset},
      "test_views": convert.top_fields(converted),
      "unused_keys": converted.unused,
  }
  if convert.head_note(converted):
    report["note"] = convert.head_note(converted)
  return report


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from vidjax.errors import VidjaxError
  for flag in (_SOURCE, _OUT):
    if not flag.value:
      cli.fail(f"--{flag.name} is required")
  try:
    print(json.dumps(run(_SOURCE.value, _FORMAT.value, _OUT.value,
                         _HF_CONFIG.value)))
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  app.run(main)
