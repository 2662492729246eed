"""transformers' ViViT (`VivitForVideoClassification`, ViViT model 1) ->
vidjax "vivit_spatiotemporal".

Facts from transformers' modeling_vivit.py (5.x) this mapping uses:
* tubelet embedding: Conv3d(C, D, (t, h, w), stride (t, h, w)) on the
  (B, C, T, H, W) clip, flattened in (t, h, w) order -- vidjax's
  `TubeletEmbedding` order;
* `cls_token` [1, 1, D] prepended, `position_embeddings` [1, 1 + N, D] added
  (vidjax `spatiotemporal/cls`, `spatiotemporal/pos_embedding`);
* pre-norm layers: `layernorm_before`, q/k/v/o Linear layers,
  `layernorm_after`, MLP fc1 -> act -> fc2; final `layernorm`; `classifier`
  on the CLS output. The default `hidden_act="gelu_fast"` is the tanh
  approximation of GELU (vidjax's default activation), eps 1e-6.
Key names: files written by `save_pretrained` (and the Hub) use the ViT
names (`vivit.encoder.layer.N.attention.attention.query`, ...,
`intermediate.dense`, `output.dense`); transformers 5 modules use
`vivit.layers.N.attention.q_proj`, ..., `mlp.fc1`. Both are accepted.
"""

from vidjax.convert import common
from vidjax.errors import VidjaxError

HF_DEFAULTS = dict(num_attention_heads=12, hidden_act="gelu_fast",
                   layer_norm_eps=1e-6)
PREFIX = "vivit."
# transformers-5 module names -> the saved (ViT) names.
_RENAMES = [
    (r"^vivit\.layers\.(\d+)\.", r"vivit.encoder.layer.\1."),
    (r"\.attention\.q_proj\.", ".attention.attention.query."),
    (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
]


def canonical_keys(state: dict) -> dict:
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
  if proj.ndim != 5:
    raise VidjaxError(f"{where}: {proj_key} has shape {list(proj.shape)}, "
                      "expected a Conv3d weight [D, C, t, h, w]")
  hidden, channels, tubelet = proj.shape[0], proj.shape[1], proj.shape[2:]
  if tubelet[1] != tubelet[2]:
    raise VidjaxError(f"{where}: non-square tubelet {list(tubelet)}")
  heads = int(cfg["num_attention_heads"])
  if hidden % heads:
    raise VidjaxError(f"{where}: hidden size {hidden} is not divisible by "
                      f"num_attention_heads={heads} (pass --config)")
  layers = len({k.split(".")[3] for k in state
                if k.startswith(PREFIX + "encoder.layer.")})
  num_tokens = state[pos_key].shape[1] - 1
  image = common.pair(cfg.get("image_size", 224), "image_size")
  frames = int(cfg.get("num_frames", 32))
  grid = (frames // tubelet[0]) * (image // tubelet[1]) ** 2
  if grid != num_tokens:
    raise VidjaxError(
        f"{where}: {num_tokens} position embeddings but num_frames={frames}, "
        f"image_size={image} and tubelet {list(tubelet)} give {grid} tubelets"
        " (pass --config with the right num_frames / image_size)")

  enc = "spatiotemporal/"
  rules = [
      common.Rule("embedding/kernel", (proj_key,), common.conv_kernel),
      common.Rule("embedding/bias",
                  (PREFIX + "embeddings.patch_embeddings.projection.bias",)),
      common.Rule(enc + "cls", (PREFIX + "embeddings.cls_token",)),
      common.Rule(enc + "pos_embedding/pos_embedding", (pos_key,)),
  ]
  rules += common.hf_vit_encoder(state, PREFIX, enc, layers, heads)
  rules += common.dense("head", "classifier")
  params, unused = common.apply_rules(state, rules, where, fmt)

  mlp_dim = (state[f"{PREFIX}encoder.layer.0.intermediate.dense.weight"]
             .shape[0] if layers else int(cfg.get("intermediate_size")))
  model = dict(
      name="vivit_spatiotemporal", patch_size=tuple(int(t) for t in tubelet),
      hidden_size=int(hidden), num_heads=heads, mlp_dim=int(mlp_dim),
      num_layers=layers, classifier="token",
      approximate_gelu=common.approximate_gelu(cfg["hidden_act"]),
      layer_norm_eps=float(cfg["layer_norm_eps"]))
  data = dict(num_frames=frames, crop_size=image,
              num_classes=int(state["classifier.weight"].shape[0]),
              channels=int(channels), mean=(0.5, 0.5, 0.5),
              std=(0.5, 0.5, 0.5))
  return params, model, data, unused
