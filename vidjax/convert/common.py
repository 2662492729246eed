"""Shared pieces of the PyTorch -> vidjax checkpoint converters.

Layout facts the converters rely on (PyTorch vs Flax linen):
* `torch.nn.Linear.weight` is [out, in] and computes x @ W^T + b; a Flax
  `Dense` kernel is [in, out]: transpose. vidjax's attention projections are
  `DenseGeneral`s with kernels [D, heads, head_dim] (query/key/value) and
  [heads, head_dim, D] (output), heads outermost as in PyTorch's
  `view(..., heads, head_dim)`.
* `torch.nn.Conv3d.weight` is [out, in, t, h, w]; vidjax's `TubeletEmbedding`
  kernel is [t, h, w, in, out] (a 2D conv weight [out, in, h, w] is t = 1).
* `torch.nn.LayerNorm` has `weight`/`bias`; Flax `LayerNorm` `scale`/`bias`.
* A fused qkv projection ([3D, D] weight) stacks query, key, value rows.

A conversion is a list of `Rule`s (vidjax parameter path <- PyTorch keys +
transform), so every missing key is known before any array is touched and
reported in one line.
"""
import dataclasses
import json
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vidjax.errors import VidjaxError

FORMATS = ("hf_timesformer", "hf_vivit", "hf_videomae", "hf_videomae_pretrain",
           "videomae_release", "hf_vit", "hf_resnet", "resnet_torchvision")
# transformers' config.json `model_type` -> format (VideoMAE: by its keys).
MODEL_TYPES = {"timesformer": "hf_timesformer", "vivit": "hf_vivit",
               "videomae": "hf_videomae", "vit": "hf_vit",
               "resnet": "hf_resnet"}


@dataclasses.dataclass
class Rule:
  """vidjax parameter `dst` ('a/b/kernel') = fn(*state_dict[src])."""
  dst: str
  src: Tuple[str, ...]
  fn: Callable = lambda x: x


# ---- array transforms -------------------------------------------------------

def linear_kernel(w):
  """torch Linear weight [out, in] -> flax Dense kernel [in, out]."""
  return np.ascontiguousarray(w.T)


def heads_in(heads: int):
  """[heads * d, D] weight -> DenseGeneral kernel [D, heads, d]."""
  return lambda w: np.ascontiguousarray(w.T).reshape(w.shape[1], heads, -1)


def heads_bias(heads: int):
  """[heads * d] bias -> [heads, d]."""
  return lambda b: b.reshape(heads, -1)


def heads_out(heads: int):
  """Output projection [D, heads * d] -> DenseGeneral kernel [heads, d, D]."""
  return lambda w: np.ascontiguousarray(w.T).reshape(heads, -1, w.shape[0])


def conv_kernel(w):
  """Conv3d [out, in, t, h, w] (Conv2d [out, in, h, w]) -> [t, h, w, in,
  out]."""
  if w.ndim == 4:
    w = w[:, :, None]
  return np.ascontiguousarray(w.transpose(2, 3, 4, 1, 0))


def qkv_part(index: int, fn: Callable = lambda x: x):
  """Row block `index` (0 q, 1 k, 2 v) of a fused [3D, ...] qkv tensor."""
  def take(w):
    size = w.shape[0] // 3
    return fn(w[index * size:(index + 1) * size])
  return take


def zeros_like_rows(heads: int):
  """A zero [heads, d] bias for a projection that has none (from its weight)."""
  return lambda w: np.zeros((heads, w.shape[0] // heads), w.dtype)


# ---- rule builders ----------------------------------------------------------

def layernorm(dst: str, src: str) -> List[Rule]:
  return [Rule(f"{dst}/scale", (f"{src}.weight",)),
          Rule(f"{dst}/bias", (f"{src}.bias",))]


def dense(dst: str, src: str, bias: bool = True) -> List[Rule]:
  rules = [Rule(f"{dst}/kernel", (f"{src}.weight",), linear_kernel)]
  if bias:
    rules.append(Rule(f"{dst}/bias", (f"{src}.bias",)))
  return rules


def attention(dst: str, heads: int, q: str, k: str, v: str, out: str,
              q_bias: Optional[str], k_bias: Optional[str],
              v_bias: Optional[str]) -> List[Rule]:
  """Separate q/k/v Linear layers (a None bias key: zero bias)."""
  rules = []
  for name, w, b in (("query", q, q_bias), ("key", k, k_bias),
                     ("value", v, v_bias)):
    rules.append(Rule(f"{dst}/{name}/kernel", (w,), heads_in(heads)))
    rules.append(Rule(f"{dst}/{name}/bias", (b,), heads_bias(heads)) if b
                 else Rule(f"{dst}/{name}/bias", (w,), zeros_like_rows(heads)))
  rules.append(Rule(f"{dst}/out/kernel", (f"{out}.weight",), heads_out(heads)))
  rules.append(Rule(f"{dst}/out/bias", (f"{out}.bias",)))
  return rules


def fused_attention(dst: str, heads: int, qkv_weight: str,
                    qkv_bias: Optional[str], out: str) -> List[Rule]:
  """One [3D, D] qkv Linear (+ optional [3D] bias) and an output Linear."""
  rules = []
  for i, name in enumerate(("query", "key", "value")):
    rules.append(Rule(f"{dst}/{name}/kernel", (qkv_weight,),
                      qkv_part(i, heads_in(heads))))
    rules.append(Rule(f"{dst}/{name}/bias", (qkv_bias,),
                      qkv_part(i, heads_bias(heads))) if qkv_bias else
                 Rule(f"{dst}/{name}/bias", (qkv_weight,),
                      qkv_part(i, zeros_like_rows(heads))))
  rules.append(Rule(f"{dst}/out/kernel", (f"{out}.weight",), heads_out(heads)))
  rules.append(Rule(f"{dst}/out/bias", (f"{out}.bias",)))
  return rules


def apply_rules(state: Dict[str, np.ndarray], rules: Sequence[Rule],
                where: str, fmt: str) -> Tuple[dict, List[str]]:
  """Runs `rules` on `state`; returns (nested params, unused source keys).

  Every source key the rules need is checked first: a missing one raises a
  one-line VidjaxError naming them all.
  """
  needed = sorted({k for rule in rules for k in rule.src})
  missing = [k for k in needed if k not in state]
  if missing:
    shown = ", ".join(missing[:8])
    more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
    raise VidjaxError(
        f"{where} is not a complete --format={fmt} checkpoint: "
        f"{len(missing)} keys missing: {shown}{more}")
  params: dict = {}
  for rule in rules:
    value = np.asarray(rule.fn(*(state[k] for k in rule.src)), np.float32)
    node = params
    *parents, leaf = rule.dst.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  unused = sorted(set(state) - set(needed))
  return params, unused


# ---- reading PyTorch files ---------------------------------------------------

def _to_numpy(tree) -> Dict[str, np.ndarray]:
  out = {}
  for key, value in tree.items():
    if hasattr(value, "detach"):  # torch.Tensor
      value = value.detach().cpu().float().numpy()
    if isinstance(value, np.ndarray):
      out[key] = value
  return out


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
  """A .safetensors / .bin / .pth / .pt file -> {key: float32 numpy array}.

  A torch pickle whose tensors sit under "model", "module" or "state_dict"
  (the VideoMAE release, training checkpoints) is unwrapped.
  """
  if not os.path.isfile(path):
    raise VidjaxError(f"--source={path} does not exist")
  if path.endswith(".safetensors"):
    try:
      from safetensors.numpy import load_file
      return {k: v.astype(np.float32) for k, v in load_file(path).items()}
    except (TypeError, ValueError):  # bfloat16: numpy has no such dtype
      from safetensors.torch import load_file
      return _to_numpy(load_file(path))
  try:
    import torch
  except ImportError as e:
    raise VidjaxError(f"reading {path} needs PyTorch") from e
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 -- torch's messages are long
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise VidjaxError(f"cannot read {path} as a PyTorch checkpoint: {first}")
  if not isinstance(obj, dict):
    raise VidjaxError(f"{path} holds a {type(obj).__name__}, not a state dict")
  for key in ("model", "module", "state_dict"):
    if key in obj and isinstance(obj[key], dict):
      obj = obj[key]
      break
  state = _to_numpy(obj)
  if not state:
    raise VidjaxError(f"{path} holds no tensors (keys: "
                      f"{', '.join(list(obj)[:8])})")
  return state


def read_source(source: str, config_path: str = "") -> Tuple[dict, dict, str]:
  """(state dict, HF config dict, where) from a transformers model directory
  (config.json + model.safetensors / pytorch_model.bin, sharded or not) or
  one state dict file (+ an optional config.json given as `config_path`)."""
  hf_config = {}
  if os.path.isdir(source):
    files = sorted(os.listdir(source))
    weights = [f for f in files if f.endswith(".safetensors")] or [
        f for f in files if f.endswith((".bin", ".pth", ".pt"))
        and "model" in f]  # not training_args.bin
    if not weights:
      raise VidjaxError(f"--source={source} holds no model.safetensors or "
                        "pytorch_model.bin")
    state = {}
    for name in weights:
      state.update(read_state_dict(os.path.join(source, name)))
    if not config_path and os.path.isfile(os.path.join(source, "config.json")):
      config_path = os.path.join(source, "config.json")
  else:
    state = read_state_dict(source)
  if config_path:
    try:
      with open(config_path) as f:
        hf_config = json.load(f)
    except (OSError, ValueError) as e:
      raise VidjaxError(f"--config={config_path}: cannot read JSON ({e})")
  return state, hf_config, source


def detect_format(state: dict, hf_config: dict, where: str) -> str:
  """The format of a source given without --format.

  A transformers config.json names it (`model_type`; "videomae" is the
  pretraining model when the weights hold a decoder). Without one, the
  tensor names tell the two layouts of plain state dicts: a torchvision /
  timm ResNet (`conv1.weight`, `layer1.0.conv1.weight`; a timm Hub folder's
  config.json has `architecture: resnet50` and no `model_type`) and the
  VideoMAE release (`[encoder.]blocks.0.attn.qkv.weight`).
  """
  keys = {k[len("module."):] if k.startswith("module.") else k for k in state}
  model_type = hf_config.get("model_type")
  if model_type == "videomae" and any(
      k.startswith(("decoder.", "encoder_to_decoder.")) for k in keys):
    return "hf_videomae_pretrain"
  if model_type in MODEL_TYPES:
    return MODEL_TYPES[model_type]
  if model_type:
    raise VidjaxError(f"{where}: config.json model_type={model_type!r} has "
                      f"no converter (known: {', '.join(MODEL_TYPES)}); pass "
                      f"--format (one of {', '.join(FORMATS)})")
  if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
    return "resnet_torchvision"
  if any(re.match(r"(encoder\.)?blocks\.0\.attn\.qkv\.weight$", k)
         for k in keys):
    return "videomae_release"
  raise VidjaxError(f"{where}: cannot tell its format (no config.json "
                    "model_type, no known tensor names); pass --format (one "
                    f"of {', '.join(FORMATS)})")


def read_preprocessing(source: str) -> dict:
  """What the transformers processor saved with a model does to a frame, as
  vidjax dataset fields (empty without a processor file).

  `preprocessor_config.json` (image processors) or
  `video_preprocessor_config.json` (video processors): frames are resized so
  their short side is `size["shortest_edge"]` (an int `size` means the same;
  `{"height", "width"}`: its smaller side) -> `test_resize_short`; then
  rescaled (`rescale_factor` r, minus 127.5 r with ViViT's `offset`) and
  normalised with `image_mean` m / `image_std` s. vidjax normalises [0, 1]
  pixels u as (u - mean) / std, so mean = (c + m) / (255 r) and
  std = s / (255 r) with c the offset: VideoMAE's r = 1/255 gives m, s;
  ViViT's r = 1/127.5 with offset gives (1 + m) / 2, s / 2.
  """
  if not os.path.isdir(source):
    return {}
  for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
    path = os.path.join(source, name)
    if not os.path.isfile(path):
      continue
    try:
      with open(path) as f:
        data = json.load(f)
    except (OSError, ValueError) as e:
      raise VidjaxError(f"{path}: cannot read JSON ({e})")
    out = {}
    short = _shortest_edge(data.get("size")) if data.get(
        "do_resize", True) else 0
    if short:
      out["test_resize_short"] = short
    if "image_mean" in data and "image_std" in data:
      out.update(_mean_std(data))
    return out
  return {}


def _shortest_edge(size) -> int:
  if isinstance(size, (int, float)):
    return int(size)
  if isinstance(size, dict):
    if "shortest_edge" in size:
      return int(size["shortest_edge"])
    if "height" in size and "width" in size:
      return int(min(size["height"], size["width"]))
  return 0


def _mean_std(data: dict) -> dict:
  """The processor's rescale + normalisation as mean/std of [0, 1] pixels."""
  scale = float(data.get("rescale_factor", 1 / 255)) if data.get(
      "do_rescale", True) else 1.0
  video_vivit = data.get("video_processor_type") == "VivitVideoProcessor"
  offset = 127.5 * scale if data.get("offset", video_vivit) else 0.0
  mean, std = data["image_mean"], data["image_std"]
  if not data.get("do_normalize", True):
    mean, std = 0.0, 1.0
  per_channel = lambda v: [float(v)] * 3 if np.ndim(v) == 0 else [  # noqa
      float(x) for x in v]
  return {"mean": tuple((offset + m) / (255 * scale)
                        for m in per_channel(mean)),
          "std": tuple(s / (255 * scale) for s in per_channel(std))}


def read_class_names(hf_config: dict, num_classes: int) -> Tuple[str, ...]:
  """The head's class names, in row order, from a transformers config's
  `id2label` ({"0": "abseiling", ...}); () when absent, not one name per
  head row, or transformers' placeholders ("LABEL_0", ...)."""
  id2label = hf_config.get("id2label") or {}
  try:
    items = sorted((int(k), str(v)) for k, v in id2label.items())
  except (TypeError, ValueError, AttributeError):
    return ()
  if not num_classes or [k for k, _ in items] != list(range(num_classes)):
    return ()
  names = tuple(v for _, v in items)
  if all(re.fullmatch(r"LABEL_\d+", n) for n in names):
    return ()
  return names


def hf_vit_encoder(state: dict, prefix: str, enc: str, layers: int,
                   heads: int) -> List[Rule]:
  """Rules of transformers' ViT-layout encoder (`{prefix}encoder.layer.N.`:
  attention, layernorm_before/after, intermediate/output dense, final
  `{prefix}layernorm`) -> vidjax's `{enc}encoder/block_N/...`; q/k/v biases
  where the state has them. Shared by the image ViT and ViViT converters."""
  rules: List[Rule] = []
  for i in range(layers):
    src, dst = f"{prefix}encoder.layer.{i}.", f"{enc}encoder/block_{i}/"
    att = src + "attention.attention."
    bias = lambda name, att=att: (f"{att}{name}.bias"  # noqa: E731
                                  if f"{att}{name}.bias" in state else None)
    rules += attention(
        dst + "attention", heads, att + "query.weight", att + "key.weight",
        att + "value.weight", src + "attention.output.dense", bias("query"),
        bias("key"), bias("value"))
    rules += layernorm(dst + "norm1", src + "layernorm_before")
    rules += layernorm(dst + "norm2", src + "layernorm_after")
    rules += dense(dst + "mlp/fc1", src + "intermediate.dense")
    rules += dense(dst + "mlp/fc2", src + "output.dense")
  rules += layernorm(enc + "encoder/norm", prefix + "layernorm")
  return rules


def rename_keys(state: dict, renames: Sequence[Tuple[str, str]]) -> dict:
  """Each key through every (regex, replacement) of `renames`, in order:
  one spelling of a checkpoint's names (e.g. transformers 5's q_proj/layers
  vs the saved files' query/encoder.layer)."""
  out = {}
  for key, value in state.items():
    for pattern, repl in renames:
      key = re.sub(pattern, repl, key)
    out[key] = value
  return out


def strip_prefix(state: dict, prefixes: Sequence[str]) -> dict:
  """Drops the first of `prefixes` that some key starts with (DDP 'module.')."""
  for prefix in prefixes:
    if any(k.startswith(prefix) for k in state):
      return {k[len(prefix):] if k.startswith(prefix) else k: v
              for k, v in state.items()}
  return state


def approximate_gelu(name: str, key: str = "hidden_act") -> bool:
  """transformers' activation name -> vidjax's `approximate_gelu` option.

  "gelu" is the exact erf GELU; "gelu_fast", "gelu_new" and
  "gelu_pytorch_tanh" are the tanh approximation (flax's default).
  """
  table = {"gelu": False, "gelu_python": False, "gelu_fast": True,
           "gelu_new": True, "gelu_pytorch_tanh": True}
  if name not in table:
    raise VidjaxError(f"config {key}={name!r} has no vidjax equivalent; "
                      f"supported: {', '.join(sorted(table))}")
  return table[name]


def pair(value, key: str) -> int:
  """A square size from an int or [h, w]; rectangles are not supported."""
  if isinstance(value, (list, tuple)):
    if len(set(value)) != 1:
      raise VidjaxError(f"config {key}={list(value)}: only square sizes are "
                        "supported")
    value = value[0]
  return int(value)
