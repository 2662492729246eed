"""transformers' image ViT (`ViTModel` / `ViTForImageClassification`) ->
vidjax "vit" (vidjax/models/vit.py: the image classifier applied per frame).

Dosovitskiy et al., ICLR 2021 ("An Image is Worth 16x16 Words"). Facts from
transformers' modeling_vit.py (5.x) this mapping uses:
* patch embedding: Conv2d(C, D, p, stride p)
  (`vit.embeddings.patch_embeddings.projection`) -> vidjax `embedding`
  kernel (p, p, C, D);
* `cls_token` [1, 1, D] prepended, `position_embeddings` [1, 1 + N, D] added
  (vidjax `transformer/cls`, `transformer/pos_embedding/pos_embedding`);
* pre-norm layers: `layernorm_before`, q/k/v Linear layers (bias if
  `qkv_bias`), `attention.output.dense`, `layernorm_after`, MLP
  `intermediate.dense` -> act -> `output.dense`; final `vit.layernorm`;
  `classifier` on the CLS output (no pre-logits layer; `ViTModel`'s `pooler`
  (dense + tanh) is not part of the classifier and is left unused);
* defaults: `hidden_act="gelu"` is the exact erf GELU, `layer_norm_eps`
  1e-12 (vidjax `approximate_gelu=False`, `layer_norm_eps`).
Key names: files written by `save_pretrained` (and the Hub) use
`vit.encoder.layer.N.attention.attention.query`, ...; transformers-5 modules
`vit.layers.N.attention.q_proj`, ..., `mlp.fc1` (both accepted, as for
ViViT). A `ViTModel` folder (no `vit.` prefix, no classifier) gives a
backbone with a zero head of `num_labels` rows (default 2): load it with
`init_from`, which keeps the run's own head.
"""

import numpy as np

from vidjax.convert import common
from vidjax.errors import VidjaxError

HF_DEFAULTS = dict(num_attention_heads=12, hidden_act="gelu",
                   layer_norm_eps=1e-12, image_size=224)
PREFIX = "vit."
_RENAMES = [
    (r"^vit\.layers\.(\d+)\.", r"vit.encoder.layer.\1."),
    (r"\.attention\.q_proj\.", ".attention.attention.query."),
    (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
]
# Frames of the written config: the image model runs per frame and averages.
NUM_FRAMES = 8


def canonical_keys(state: dict) -> dict:
  """`vit.`-prefixed saved names (a bare `ViTModel` gets the prefix)."""
  if not any(k.startswith(PREFIX) for k in state) and any(
      k.startswith("embeddings.") for k in state):
    state = {(k if k.startswith("classifier.") else PREFIX + k): v
             for k, v in state.items()}
  return common.rename_keys(state, _RENAMES)


def convert(state: dict, hf_config: dict, where: str, fmt: str):
  """(params, model options, data facts, unused keys) for one state dict."""
  cfg = dict(HF_DEFAULTS, **hf_config)
  state = canonical_keys(common.strip_prefix(state, ("module.",)))
  proj_key = PREFIX + "embeddings.patch_embeddings.projection.weight"
  pos_key = PREFIX + "embeddings.position_embeddings"
  missing = [k for k in (proj_key, pos_key) if k not in state]
  if missing:
    raise VidjaxError(f"{where} is not a --format={fmt} checkpoint: keys "
                      f"missing: {', '.join(missing)}")
  proj = state[proj_key]
  if proj.ndim != 4 or proj.shape[2] != proj.shape[3]:
    raise VidjaxError(f"{where}: {proj_key} has shape {list(proj.shape)}, "
                      "expected a square Conv2d weight [D, C, p, p]")
  hidden, channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
  heads = int(cfg["num_attention_heads"])
  if hidden % heads:
    raise VidjaxError(f"{where}: hidden size {hidden} is not divisible by "
                      f"num_attention_heads={heads} (pass --config)")
  tokens = state[pos_key].shape[1] - 1
  side = int(round(tokens ** 0.5))
  if side * side != tokens:
    raise VidjaxError(f"{where}: {tokens} position embeddings are not a "
                      "square grid")
  layers = len({k.split(".")[3] for k in state
                if k.startswith(PREFIX + "encoder.layer.")})

  enc = "transformer/"
  rules = [
      common.Rule("embedding/kernel", (proj_key,),
                  lambda w: common.conv_kernel(w)[0]),
      common.Rule("embedding/bias",
                  (PREFIX + "embeddings.patch_embeddings.projection.bias",)),
      common.Rule(enc + "cls", (PREFIX + "embeddings.cls_token",)),
      common.Rule(enc + "pos_embedding/pos_embedding", (pos_key,)),
  ]
  rules += common.hf_vit_encoder(state, PREFIX, enc, layers, heads)
  if "classifier.weight" in state:
    rules += common.dense("head", "classifier")
    num_classes = int(state["classifier.weight"].shape[0])
  else:  # a backbone: a zero head (init_from keeps the run's own)
    num_classes = int(cfg.get("num_labels", len(cfg.get("id2label") or {})
                              or 2))
  params, unused = common.apply_rules(state, rules, where, fmt)
  if "head" not in params:
    params["head"] = {"kernel": np.zeros((hidden, num_classes), np.float32),
                      "bias": np.zeros((num_classes,), np.float32)}

  mlp_dim = (state[f"{PREFIX}encoder.layer.0.intermediate.dense.weight"]
             .shape[0] if layers else int(cfg.get("intermediate_size",
                                                  4 * hidden)))
  model = dict(
      name="vit", patch_size=int(patch), hidden_size=int(hidden),
      num_heads=heads, mlp_dim=int(mlp_dim), num_layers=layers,
      classifier="token",
      approximate_gelu=common.approximate_gelu(cfg["hidden_act"]),
      layer_norm_eps=float(cfg["layer_norm_eps"]))
  # google/vit-*: the processor normalises with mean = std = 0.5.
  data = dict(num_frames=NUM_FRAMES, crop_size=int(side * patch),
              num_classes=num_classes, channels=int(channels),
              mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
  return params, model, data, unused
