"""Visualisations of a trained run, written into RUN/viz/ as GIFs and PNGs.

  python -m tools.visualize --workdir=RUN --video=PATH_OR_INDEX
      [--kind=saliency,gradcam,rollout,filters,classmodel,reconstruction]
      [--class=K] [--layer=PATTERN] [--steps=200]

`--video`: an index into the run's test split, or a video file. `--class`:
the class to explain (default: the model's prediction on the clip). Kinds
(default: every kind the model supports):

* saliency (CNNs and transformers): |d score / d input|, max over channels.
* gradcam (CNNs): Grad-CAM on the last feature map (`--layer`: an fnmatch
  pattern of a module path, e.g. `stage2_block0`, `conv4b`, `spatial`).
* rollout (vivit_spatiotemporal, vivit_factorized, vit, videomae): attention
  rollout.
* filters: the first layer's filters, their temporal slices as GIF frames.
* classmodel: activation maximisation of the class, "fast" (no temporal
  smoothness penalty) and "slow" (`--slow_weight`) motion.
* reconstruction (videomae_pretrain runs): input | masked | reconstruction.

Files: `<kind>_<video>[_c<K>].gif` (the clip with the map over it, one frame
per input frame) and `.png` (rows of frames), `filters.gif/.png`,
`classmodel_c<K>_{fast,slow}.gif` and `classmodel_c<K>.png`, and
`index.json` (what was written, the class, prediction and label).
"""
import json
import os
import sys
from typing import Optional, Sequence

from absl import app, flags

from vidjax import cli  # noqa: F401  (puts the project root on sys.path)
from vidjax.errors import VidjaxError

KINDS = ("saliency", "gradcam", "rollout", "filters", "classmodel",
         "reconstruction")

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.")
  _VIDEO = flags.DEFINE_string("video", "0", "Test-split index or video file.")
  _KIND = flags.DEFINE_list("kind", [], f"Subset of {','.join(KINDS)}.")
  _CLASS = flags.DEFINE_integer("class", None, "Class to explain (default: "
                                "the prediction).")
  _LAYER = flags.DEFINE_string("layer", None, "Grad-CAM: fnmatch pattern of "
                               "the feature map's module path.")
  _STEPS = flags.DEFINE_integer("steps", 200, "Class-model ascent steps.")
  _SLOW = flags.DEFINE_float("slow_weight", 100.0, "Temporal-smoothness weight "
                             "of the 'slow' class model.")
  _SCALE = flags.DEFINE_integer("scale", 4, "GIF upscaling factor.")


def supported_kinds(name: str) -> tuple:
  from vidjax.viz import rollout  # noqa: PLC0415
  if name == "videomae_pretrain":
    return ("filters", "reconstruction")
  attention = name in rollout.ENCODERS
  transformer = attention or name in (
      "vivit_factorized_self_attention", "vivit_factorized_dot_product",
      "timesformer", "mvitv2")
  kinds = ["saliency", "rollout" if attention else None,
           None if transformer else "gradcam", "filters", "classmodel"]
  return tuple(k for k in kinds if k)


def visualize(workdir: str, video: str = "0", kinds: Sequence[str] = (),
              class_index: Optional[int] = None, layer: Optional[str] = None,
              steps: int = 200, slow_weight: float = 100.0,
              scale: int = 4) -> dict:
  """Writes the visualisations; returns index.json's content."""
  import numpy as np  # noqa: PLC0415
  from vidjax.viz import (classmodel, filters, gradcam, reconstruction,  # noqa
                          render, rollout, run as run_lib, saliency)

  run = run_lib.load_run(workdir)
  name = run.config.model.name
  allowed = supported_kinds(name)
  for kind in kinds:
    if kind not in KINDS:
      raise VidjaxError(f"--kind={kind}: expected some of {', '.join(KINDS)}")
    if kind not in allowed:
      raise VidjaxError(f"--kind={kind} is not available for model {name!r}; "
                        f"it supports {', '.join(allowed)}")
  kinds = tuple(kinds) or allowed
  out_dir = os.path.join(run.workdir, "viz")
  os.makedirs(out_dir, exist_ok=True)
  clip = run_lib.load_clip(run, video)
  x = run.normalize(clip.video)
  frames = display(x, run)
  index = {"checkpoint": run.step_dir, "model": name, "video": str(video),
           "label": clip.label, "files": []}
  model, variables = run.model, run.variables
  if name != "videomae_pretrain":
    logits = saliency.predict(model, variables, x)
    index["predicted"] = int(np.argmax(logits))
    k = index["predicted"] if class_index is None else int(class_index)
    if not 0 <= k < run.num_classes:
      raise VidjaxError(f"--class={k}: the model has {run.num_classes} "
                        "classes")
    index["class"] = k
    if clip.class_names:
      index["class_name"] = clip.class_names[k]
  path = lambda stem, ext: os.path.join(out_dir, f"{stem}.{ext}")  # noqa
  write = lambda p: index["files"].append(os.path.relpath(p, out_dir))  # noqa

  def heat_outputs(kind, heat, extra=""):
    stem = f"{kind}_{clip.tag}{extra}"
    tiled = np.concatenate([heat] * (frames.shape[2] // heat.shape[2]), 2)
    write(render.save_gif(render.overlay(frames, tiled),
                          path(stem, "gif"), scale))
    write(render.save_grid([("input", frames),
                            (kind, render.heat_to_rgb(tiled)),
                            ("overlay", render.overlay(frames, tiled))],
                           path(stem, "png"), title=f"{name} {stem}"))

  for kind in kinds:
    if kind == "saliency":
      heat_outputs(kind, saliency.saliency(model, variables, x, k), f"_c{k}")
    elif kind == "gradcam":
      cam, _, used = gradcam.gradcam(model, variables, x, k, layer)
      index["gradcam_layer"] = used
      heat_outputs(kind, cam, f"_c{k}")
    elif kind == "rollout":
      heat = rollout.upsample(rollout.attention_map(model, variables, x),
                              x.shape[:3])
      heat_outputs(kind, heat)
    elif kind == "filters":
      where = filters.first_conv(model, variables, x)
      clip_grid = filters.filter_clip(
          filters.get_kernel(variables["params"], where), scale=scale)
      index["filters_layer"] = where
      write(render.save_gif(clip_grid, path("filters", "gif"), 1,
                            duration_ms=400))
      write(render.save_grid([(where, clip_grid)], path("filters", "png"),
                             title=f"{name} {where}"))
    elif kind == "classmodel":
      index["classmodel"] = _class_models(run, x.shape, k, steps, slow_weight,
                                          scale, path, write)
    elif kind == "reconstruction":
      video01 = np.asarray(clip.video, np.float32)[..., :3] / 255.0
      rec = reconstruction.reconstruct(model, variables, x, video01)
      rows = [(label, np.round(v * 255).astype(np.uint8)) for label, v in
              (("input", rec.video), ("masked", rec.masked),
               ("reconstruction", rec.recon))]
      stem = f"reconstruction_{clip.tag}"
      write(render.save_gif(np.concatenate([v for _, v in rows], 2),
                            path(stem, "gif"), scale))
      write(render.save_grid(rows, path(stem, "png"), title=f"{name} {stem}"))
      index["mask_ratio"] = float(rec.mask.mean())
  with open(os.path.join(out_dir, "index.json"), "w") as f:
    json.dump(index, f, indent=1)
  return index


def display(x, run):
  """Normalised clip -> uint8 frames: RGB, flow colours, or RGB | flow."""
  import numpy as np  # noqa: PLC0415
  from vidjax.viz import render  # noqa: PLC0415
  if x.shape[-1] == 5:
    rgb = render.to_uint8_rgb(x[..., :3], run.mean[:3], run.std[:3])
    flow = render.to_uint8_rgb(x[..., 3:], run.mean[3:], run.std[3:])
    return np.concatenate([rgb, flow], 2)
  return render.to_uint8_rgb(x, run.mean, run.std)


def _class_models(run, shape, k, steps, slow_weight, scale, path, write):
  from vidjax.viz import classmodel, render  # noqa: PLC0415
  flow_channels = (3, 5) if shape[-1] == 5 else None
  bounds = classmodel.input_bounds(run.mean, run.std)
  rows, summary = [], {}
  weights = (0.0, slow_weight)
  results = classmodel.maximize_class(
      run.model, run.variables, shape, k, steps=steps, temporal=weights,
      temporal_channels=flow_channels, bounds=bounds)
  for label, weight, result in zip(("fast", "slow"), weights, results):
    shown = display(result.clip, run)
    write(render.save_gif(shown, path(f"classmodel_c{k}_{label}", "gif"),
                          scale))
    rows.append((label, shown))
    summary[label] = {"temporal_weight": weight,
                      "initial_score": float(result.scores[0]),
                      "final_score": float(result.scores[-1]),
                      "temporal_change": result.temporal_change}
  write(render.save_grid(rows, path(f"classmodel_c{k}", "png"),
                         title=f"{run.config.model.name} class {k}"))
  return summary


def main(argv):
  del argv
  if not _WORKDIR.value:
    cli.fail("--workdir is required")
  try:
    index = visualize(_WORKDIR.value, _VIDEO.value, _KIND.value,
                      _CLASS.value, _LAYER.value, _STEPS.value,
                      _SLOW.value, _SCALE.value)
  except VidjaxError as e:
    cli.fail(str(e))
  for name in index["files"]:
    print(os.path.join(os.path.abspath(_WORKDIR.value), "viz", name))


if __name__ == "__main__":
  sys.exit(app.run(main))
