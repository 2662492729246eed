"""ImageNet image backbones -> video models, as the papers initialise them.

`vidjax.init_adapt.adapt_pretrained` calls this module when
`config.init_from.checkpoint_path` holds an image model: a vidjax "vit" (a
run, or transformers' ViT converted by tools/convert_checkpoint) or a 2D
ResNet ("tsm" with shift_place "none": a converted transformers /
torchvision / timm ResNet-50). The rewritten tree is then merged by name and
shape (`checkpoint.merge_pretrained`); what it does not hold keeps the video
model's own initialisation.

Image ViT (Dosovitskiy et al. 2021) ->
* ViViT (Arnab et al., ICCV 2021, Sec. 3.4 "Initialisation by leveraging
  pretrained models"): the patch kernel becomes the tubelet kernel by
  `config.init_from.tubelet_init` ("central_frame": the paper's best, Tab. 1;
  "average": filter inflation; vidjax.layers.embedding.inflate_patch_kernel);
  position embeddings are resized to the new grid and "repeated" over time
  (`config.init_from.posemb`, vidjax.layers.posemb.resize_posemb).
  Model 1: the ViT's transformer is the space-time encoder; model 2: the
  spatial encoder (the temporal one starts fresh); models 3 and 4: the
  encoder blocks (no CLS token: its position row is dropped). Model 3's
  temporal attention is not loaded: its output projection starts at zero
  (vidjax.layers.factorized_attention), so "Eq. 5 behaves as a residual
  connection at initialisation" as the paper asks. (The paper zeroes all of
  its weights; with q, k, v and the output all zero no gradient reaches
  any of them, so only the output projection is zeroed here.) Model 4's
  heads reuse the ViT's attention weights, half over space, half over time.
* TimeSformer (Bertasius et al., ICML 2021; the authors' release,
  `load_pretrained` and `VisionTransformer.__init__`): CLS token, spatial
  position embedding (resized to the new grid), spatial attention, MLPs and
  norms from the ViT; the temporal attention and its LayerNorm are copies of
  the spatial ones, `temporal_fc` (the temporal branch's last layer) starts
  at zero and the time embedding at zero, so every block starts as the
  image model's: on a static clip the video model equals the image ViT.
2D ResNet (He et al. 2016) ->
* I3D-R50 / NL-I3D-R50 (Wang et al. 2018): every 2D kernel where the video
  model has a kt x k x k one is inflated (Carreira & Zisserman 2017):
  repeated over time and divided by kt (`config.init_from.kernel_inflation`
  "mean", the paper's) or put at the central tap ("center"); non-local blocks
  start as the identity (their BN scale is zero).
* TSM (Lin et al. 2019): the 2D weights directly (same names and shapes).
* SlowFast (Feichtenhofer et al. 2019): the Slow pathway (`slow_stem`,
  `slow_stage*`) from the ResNet, inflated as above; the lateral channels
  concatenated to each stage's input get zero weights, so the Slow pathway
  starts as the (inflated) image network. The Fast pathway (1/8 of the
  channels) and the laterals keep their own initialisation. (SlowFast's
  paper trains Kinetics from scratch; this is the ImageNet start the issue
  asks for.)
BatchNorm statistics follow the parameters' names (`adapt_batch_stats`).
"""
import re
from collections.abc import Mapping
from typing import Dict, List, Tuple

import numpy as np

from vidjax.errors import VidjaxError
from vidjax.layers.embedding import inflate_patch_kernel
from vidjax.layers.posemb import resize_posemb, square_grid
from vidjax.models.inflate import inflate_kernel

KERNEL_INFLATIONS = ("mean", "center")
VIT_TARGETS = ("vivit_factorized", "vivit_spatiotemporal",
               "vivit_factorized_self_attention",
               "vivit_factorized_dot_product", "timesformer")
RESNET_TARGETS = ("i3d_r50", "tsm", "slowfast")
_POS = ("pos_embedding", "pos_embedding")


def is_image_vit(loaded: dict) -> bool:
  kernel = (loaded.get("embedding") or {}).get("kernel")
  return kernel is not None and np.ndim(kernel) == 4 and "transformer" in loaded


def is_resnet_2d(loaded: dict) -> bool:
  kernel = (loaded.get("stem_conv") or {}).get("kernel")
  return kernel is not None and np.ndim(kernel) == 4 and any(
      k.startswith("stage0_block") for k in loaded)


def _blocks(encoder: dict) -> Dict[str, dict]:
  """{"block_i": tree} of an encoder, unstacking a scanned `layers` tree."""
  if "layers" not in encoder:
    return {k: v for k, v in encoder.items() if k.startswith("block_")}
  layers = encoder["layers"]
  leaf = layers
  while isinstance(leaf, Mapping):
    leaf = next(iter(leaf.values()))
  count = int(np.shape(leaf)[0])
  take = lambda tree, i: ({k: take(v, i) for k, v in tree.items()}  # noqa
                          if isinstance(tree, Mapping) else np.asarray(tree)[i])
  return {f"block_{i}": take(layers, i) for i in range(count)}


def _tubelet(emb: dict, target: dict, method: str, notes: List[str]) -> dict:
  kernel = np.asarray(emb["kernel"])
  want = np.shape(((target.get("embedding") or {}).get("kernel")))
  out = {"bias": emb["bias"]} if "bias" in emb else {}
  if len(want) == 5:
    out["kernel"] = inflate_patch_kernel(kernel, int(want[0]), method)
    notes.append(f"patch kernel {list(kernel.shape)} -> tubelet "
                 f"{list(out['kernel'].shape)} ({method})")
  return out


def vit_to_video(loaded: dict, target: dict, model_name: str,
                 tubelet_init: str) -> Tuple[dict, List[str], Dict]:
  """Image-ViT tree -> the video model's names (module docstring).

  Returns (tree, notes, {video posemb path: image posemb path}) -- the
  position embeddings the caller resizes with the image's token grid (all
  but models 3/4's, which `grid_posemb` resizes here: no CLS, (1, T', N, D)).
  """
  vit = loaded["transformer"]
  notes = [f"image ViT -> {model_name} (module vidjax.init_image)"]
  out = {"embedding": _tubelet(loaded.get("embedding", {}), target,
                               tubelet_init, notes)}
  blocks = _blocks(vit["encoder"])
  paths = {}
  if model_name in ("vivit_factorized", "vivit_spatiotemporal"):
    from vidjax.init_adapt import match_layer_layout
    dst = "spatial" if model_name == "vivit_factorized" else "spatiotemporal"
    out[dst] = match_layer_layout(dict(vit), target.get(dst, {}))
    paths[(dst,) + _POS] = ("transformer",) + _POS
    notes.append(f"transformer/* -> {dst}/*")
  elif model_name.startswith("vivit_factorized_"):
    out["encoder"] = dict(blocks, norm=vit["encoder"]["norm"])
    notes.append("transformer/encoder/* -> encoder/* (no CLS token)")
  elif model_name == "timesformer":
    divided = any("temporal_attention" in v for k, v in target.items()
                  if k.startswith("block_"))
    for name, block in blocks.items():
      block = dict(block)
      if divided:  # the release's copies, temporal_fc zero: block = image's
        block["temporal_attention"] = block["attention"]
        block["temporal_norm"] = block["norm1"]
        fc = target[name]["temporal_fc"]
        block["temporal_fc"] = {k: np.zeros(np.shape(v), np.float32)
                                for k, v in fc.items()}
      out[name] = block
    out["norm"] = vit["encoder"]["norm"]
    out["cls"] = vit["cls"]
    out["pos_embedding"] = vit["pos_embedding"]["pos_embedding"]
    out["time_embedding"] = np.zeros(np.shape(target["time_embedding"]),
                                     np.float32)
    paths[("pos_embedding",)] = ("transformer",) + _POS
    notes.append("blocks, CLS, position embedding from the ViT; temporal "
                 "attention = spatial copy, temporal_fc and time embedding 0"
                 if divided else "blocks, CLS, position embedding from the "
                 "ViT; time embedding 0")
  else:
    raise VidjaxError(f"init_from: an image ViT cannot initialise "
                      f"config.model.name={model_name!r} (known: "
                      f"{', '.join(VIT_TARGETS)})")
  notes.append("the ViT's head is not loaded")
  return out, notes, paths


def grid_posemb(image_pos, want_shape, method: str,
                src_cls: int = 1) -> np.ndarray:
  """ViViT models 3/4: (1, src_cls + N, D) image embedding -> (1, T', N', D)
  (CLS row dropped, resized over space, repeated over time; square grids)."""
  _, steps, tokens, _ = want_shape
  src = square_grid(np.shape(image_pos)[1] - src_cls, "pos_embedding")
  dst = square_grid(tokens, "pos_embedding")
  out = resize_posemb(image_pos, (1, src, src), (steps, dst, dst),
                      src_cls=src_cls, dst_cls=0, method=method,
                      name="pos_embedding")
  return out.reshape(want_shape)


def _slowfast_name(key: str) -> str:
  return re.sub(r"^(stem_|stage\d)", r"slow_\1", key)


def rename_for(model_name: str, tree: dict) -> dict:
  """2D-ResNet names -> the video model's (SlowFast: the Slow pathway)."""
  if model_name != "slowfast":
    return tree
  return {_slowfast_name(k): v for k, v in tree.items() if k != "head"}


def resnet_to_video(loaded: dict, target: dict, model_name: str,
                    method: str) -> Tuple[dict, List[str]]:
  """2D ResNet tree -> I3D-R50 / TSM / SlowFast (module docstring)."""
  if model_name not in RESNET_TARGETS:
    raise VidjaxError(f"init_from: a 2D ResNet cannot initialise "
                      f"config.model.name={model_name!r} (known: "
                      f"{', '.join(RESNET_TARGETS)})")
  import flax
  src = flax.traverse_util.flatten_dict(rename_for(model_name, loaded))
  dst = flax.traverse_util.flatten_dict(dict(target))
  out, inflated, padded = {}, 0, 0
  for key, value in src.items():
    want = dst.get(key)
    value = np.asarray(value)
    if want is not None and np.ndim(value) == 4 and len(np.shape(want)) == 5:
      value = np.asarray(inflate_kernel(value, int(np.shape(want)[0]), method))
      inflated += 1
    if (model_name == "slowfast" and want is not None and value.ndim >= 4
        and value.shape[:-2] == tuple(np.shape(want))[:-2]
        and value.shape[-1] == np.shape(want)[-1]
        and value.shape[-2] < np.shape(want)[-2]):  # + lateral input channels
      pad = [(0, 0)] * value.ndim
      pad[-2] = (0, int(np.shape(want)[-2]) - value.shape[-2])
      value = np.pad(value, pad)
      padded += 1
    out[key] = value
  notes = [f"2D ResNet -> {model_name} (module vidjax.init_image): "
           f"{inflated} kernels inflated ({method})"]
  if model_name == "slowfast":
    notes.append(f"stem_*/stage* -> slow_stem_*/slow_stage*; {padded} "
                 "kernels get zero weights for the lateral channels; the "
                 "Fast pathway and laterals keep their initialisation")
  return flax.traverse_util.unflatten_dict(out), notes


def adapt_batch_stats(model_name: str, stats: dict) -> dict:
  """A 2D ResNet's BatchNorm statistics under the video model's names."""
  if not stats or model_name not in RESNET_TARGETS or "stem_bn" not in stats:
    return stats
  return rename_for(model_name, stats)
