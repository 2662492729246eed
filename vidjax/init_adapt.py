"""Adapting a pretrained parameter tree to the configured model (`init_from`).

`checkpoint.merge_pretrained` copies parameters by name and shape. Before it,
`adapt_pretrained` rewrites the loaded tree where a known mapping exists:

* Image backbones -> video models, as the papers initialise them from
  ImageNet (vidjax/init_image.py): an image ViT ("vit", vidjax/models/vit.py;
  a run or a converted transformers ViT) -> ViViT models 1-4 and TimeSformer
  (`transformer/*` -> the video encoder; the 2D patch kernel (h, w, C, D) ->
  the tubelet kernel by `config.init_from.tubelet_init`: "central_frame"
  (ViViT's best, Tab. 1), "average" (filter inflation) or "repeat"; the ViT's
  head dropped); a 2D ResNet (a converted ImageNet ResNet-50) -> I3D-R50 /
  NL, TSM, SlowFast's Slow pathway (2D kernels inflated by
  `config.init_from.kernel_inflation`: "mean" (I3D: divide by kt) |
  "center"; BatchNorm statistics renamed with them: `adapt_batch_stats`).
* Any source: with `config.init_from.posemb="resize"` every learned position
  embedding whose token grid differs from the model's is resized
  (`vidjax.layers.posemb.resize_posemb`: `config.init_from.posemb_method`
  "bilinear" | "bicubic" over space; linear interpolation over time, an image
  embedding tiled over every time slot) -- fine-tuning at another resolution
  or clip length, or the ViT -> ViViT model 1 case (1 + H'W' -> 1 + T'H'W').
  "none" leaves them, and `merge_pretrained` then keeps their initialisation.
  The source's token grid is read from the checkpoint's saved config.
* Encoder layer layouts: scanned (`layers/`, stacked on axis 0) and unrolled
  (`block_0..`) trees are converted to whichever the model uses.
* The classification head, given the run's data class names: matched to
  them by name (`vidjax.head_remap`), the checkpoint's head classes read from
  its meta (`class_names`), else its saved config's or this config's
  `config.dataset.class_names` (whichever has one name per head row).
"""
import os
from collections.abc import Mapping
from typing import Callable, Dict, Optional, Sequence, Tuple

import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from vidjax import checkpoint, head_remap, init_image
from vidjax.config_check import absolute_path
from vidjax.errors import VidjaxError
from vidjax.layers.embedding import TUBELET_INITS
from vidjax.layers.posemb import SPATIAL_METHODS, resize_posemb, square_grid
from vidjax.registry import build_model

POSEMB_MODES = ("resize", "none")
_POS = ("pos_embedding", "pos_embedding")


def posemb_layout(model) -> Callable:
  """Model -> fn(frames, crop) giving {path: ((T, H, W) grid, num_cls)} of its
  learned position embeddings (paths are tuples into the params tree)."""
  name = type(model).__name__
  cls = int(getattr(model, "classifier", "token") == "token")

  def layout(frames: int, crop: int) -> Dict[tuple, Tuple[tuple, int]]:
    if name == "ViT":
      from vidjax.models.vit import patch_pair
      ph, pw = patch_pair(model.patch_size)
      return {("transformer",) + _POS: ((1, crop // ph, crop // pw), cls)}
    if name in ("ViViTFactorizedEncoder", "ViViTSpatioTemporal"):
      t, h, w = model.patch_size
      steps, rows, cols = frames // t, crop // h, crop // w
      if name == "ViViTSpatioTemporal":
        return {("spatiotemporal",) + _POS: ((steps, rows, cols), cls)}
      out = {("spatial",) + _POS: ((1, rows, cols), cls)}
      if model.temporal_layers > 0:
        out[("temporal",) + _POS] = ((steps, 1, 1), cls)
      return out
    if name == "TimeSformer":
      side = crop // model.patch_size
      return {("pos_embedding",): ((1, side, side), 1)}
    return {}

  return layout


def _set(tree, path, value):
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _copy(tree):
  return {k: _copy(v) if isinstance(v, Mapping) else v
          for k, v in tree.items()}


def match_layer_layout(src: dict, dst: dict) -> dict:
  """Converts every encoder between scanned `layers` and `block_i` trees so
  that `src` uses `dst`'s layout (recursively; other keys untouched)."""
  if not isinstance(src, Mapping) or not isinstance(dst, Mapping):
    return src
  out = {}
  blocks = sorted((k for k in dst if k.startswith("block_")),
                  key=lambda k: int(k.split("_")[1]))
  if "layers" in src and blocks and "layers" not in dst:
    stacked = src["layers"]
    count = len(np.asarray(_first_leaf(stacked)))
    for i in range(count):
      out[f"block_{i}"] = _map(lambda a, i=i: np.asarray(a)[i], stacked)
  src_blocks = sorted((k for k in src if k.startswith("block_")),
                      key=lambda k: int(k.split("_")[1]))
  if src_blocks and "layers" in dst and "layers" not in src:
    out["layers"] = _map_many(lambda *a: np.stack(a),
                              [src[k] for k in src_blocks])
  for key, value in src.items():
    if key == "layers" and "layers" not in dst and blocks:
      continue
    if key.startswith("block_") and "layers" in dst and "layers" not in src:
      continue
    out[key] = match_layer_layout(value, dst.get(key, {}))
  return out


def _first_leaf(tree):
  while isinstance(tree, Mapping):
    tree = next(iter(tree.values()))
  return tree


def _map(fn, tree):
  if isinstance(tree, Mapping):
    return {k: _map(fn, v) for k, v in tree.items()}
  return fn(tree)


def _map_many(fn, trees):
  if isinstance(trees[0], Mapping):
    return {k: _map_many(fn, [t[k] for t in trees]) for k in trees[0]}
  return fn(*trees)


def read_source_meta(where: str) -> dict:
  """The meta saved with a vidjax checkpoint step folder ({} if absent)."""
  directory, step = os.path.split(absolute_path(where))  # keeps gs://
  if not step.isdigit():
    return {}
  manager = checkpoint._manager(directory, create=False)  # pylint: disable=protected-access
  try:
    meta = manager.restore(int(step), args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta
  except Exception:  # pylint: disable=broad-except
    return {}
  finally:
    manager.close()
  return dict(meta or {})


def head_class_names(meta: dict, config, num_rows: Optional[int] = None):
  """The checkpoint head's class names: its meta's `class_names`, else its
  saved config's or `config`'s dataset.class_names; the first with
  `num_rows` names (any, if None); () if none."""
  saved = (meta.get("config") or {}).get("dataset") or {}
  for names in (meta.get("class_names"), saved.get("class_names"),
                config.dataset.get("class_names", ())):
    if names and (num_rows is None or len(names) == num_rows):
      return tuple(str(n) for n in names)
  return ()


def _layout_of(config) -> Dict[tuple, Tuple[tuple, int]]:
  model = build_model(config.model, 1)
  return posemb_layout(model)(int(config.dataset.num_frames),
                              int(config.dataset.crop_size))


def resize_position_embeddings(loaded, target, src_layout, dst_layout,
                               method: str) -> Tuple[dict, list]:
  """Resizes every position embedding of dst_layout that has a source entry
  of another shape (the source grid from src_layout, or square inference)."""
  notes = []
  for path, (dst_grid, dst_cls) in dst_layout.items():
    src = head_remap.get_path(loaded, path)
    want = head_remap.get_path(target, path)
    if src is None or want is None or np.shape(src) == np.shape(want):
      continue
    if path in src_layout:
      src_grid, src_cls = src_layout[path]
    else:  # only a square image grid can be inferred from the shape
      parent = head_remap.get_path(loaded, path[:1]) if len(path) > 1 else (
          loaded)
      src_cls = int(isinstance(parent, Mapping) and "cls" in parent)
      side = square_grid(np.shape(src)[1] - src_cls, "/".join(path))
      src_grid = (1, side, side)
    name = "/".join(path)
    resized = resize_posemb(src, src_grid, dst_grid, src_cls=src_cls,
                            dst_cls=dst_cls, method=method, name=name)
    if resized.shape != tuple(np.shape(want)):
      raise VidjaxError(f"init_from: resized {name} to {list(resized.shape)} "
                        f"but the model has {list(np.shape(want))}")
    _set(loaded, path, resized)
    notes.append(f"{name} resized {list(np.shape(src))} -> "
                 f"{list(resized.shape)} (grid {list(src_grid)} -> "
                 f"{list(dst_grid)}, {method})")
  return loaded, notes


def _option(config, key, default, choices):
  value = config.init_from.get(key, default)
  if value not in choices:
    raise VidjaxError(f"config.init_from.{key}={value!r}; expected one of "
                      f"{choices}")
  return value


def adapt_batch_stats(config, stats: dict) -> dict:
  """BatchNorm statistics of the checkpoint under the configured model's
  names (a 2D ResNet's -> SlowFast's Slow pathway; a SlowFast classifier's
  -> an AVA detector's backbone/; others unchanged)."""
  from vidjax.tasks.detection.init_from import classifier_to_detector
  stats, _ = classifier_to_detector(config.model.name, stats)
  return init_image.adapt_batch_stats(config.model.name, stats)


def adapt_pretrained(config, loaded: dict, target: dict, where: str = "",
                     log: Callable = print,
                     class_names: Sequence[str] = ()) -> dict:
  """Rewrites a loaded params tree for the configured model (module docstring).

  `target`: the model's freshly initialised params (names and shapes);
  `where`: the checkpoint step folder (its saved config gives the source's
  token grids, its meta the head's class names); `class_names`: the run's
  data classes in label order (the head is matched to them by name).
  Returns a new tree for `checkpoint.merge_pretrained`.
  """
  tubelet_init = _option(config, "tubelet_init", "central_frame",
                         TUBELET_INITS)
  posemb = _option(config, "posemb", "resize", POSEMB_MODES)
  method = _option(config, "posemb_method", "bilinear", SPATIAL_METHODS)
  inflation = _option(config, "kernel_inflation", "mean",
                      init_image.KERNEL_INFLATIONS)
  if not loaded:
    return loaded
  target = dict(target)
  loaded = _copy(loaded)
  notes = []
  meta = read_source_meta(where) if where else {}
  src_config = (ml_collections.ConfigDict(meta["config"]) if "config" in meta
                else None)
  src_layout = {}
  if src_config is not None:
    try:
      src_layout = _layout_of(src_config)
    except Exception:  # pylint: disable=broad-except
      src_layout = {}  # an unknown / older model: infer from shapes
  name = config.model.name
  if init_image.is_image_vit(loaded) and name in init_image.VIT_TARGETS:
    image_pos = head_remap.get_path(loaded, ("transformer",) + _POS)
    image_cls = int("cls" in loaded["transformer"])
    loaded, notes, paths = init_image.vit_to_video(loaded, target, name,
                                                   tubelet_init)
    src_layout = {dst: src_layout[src] for dst, src in paths.items()
                  if src in src_layout}
    want = head_remap.get_path(target, _POS)
    if name.startswith("vivit_factorized_") and posemb == "resize" and (
        image_pos is not None and want is not None):
      loaded["pos_embedding"] = {"pos_embedding": init_image.grid_posemb(
          image_pos, tuple(np.shape(want)), method, image_cls)}
      notes.append(f"pos_embedding {list(np.shape(image_pos))} -> "
                   f"{list(np.shape(want))} (CLS row dropped, {method}, "
                   "repeated over time)")
  elif init_image.is_resnet_2d(loaded) and name in init_image.RESNET_TARGETS:
    loaded, notes = init_image.resnet_to_video(loaded, target, name,
                                               inflation)
  else:  # a K400 classifier -> an AVA detector (tasks/detection/init_from)
    from vidjax.tasks.detection.init_from import classifier_to_detector
    loaded, more = classifier_to_detector(name, loaded)
    notes += more
    loaded = match_layer_layout(loaded, target)
  if posemb == "resize":
    loaded, more = resize_position_embeddings(
        loaded, target, src_layout, _layout_of(config), method)
    notes += more
  for line in notes:
    log(f"  init_from: {line}")
  if class_names:
    rows = head_remap.head_rows(loaded)
    loaded = head_remap.remap_head(
        loaded, target, head_class_names(meta, config, rows), class_names,
        log)
  return loaded
