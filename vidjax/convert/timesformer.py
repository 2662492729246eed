"""transformers' TimeSformer (`TimesformerForVideoClassification`) -> vidjax
"timesformer".

Facts from transformers' modeling_timesformer.py (5.x) this mapping uses:
* patch embedding: Conv2d(C, D, p, stride p) per frame
  (`timesformer.embeddings.patch_embeddings.projection`);
* `cls_token` [1, 1, D]; `position_embeddings` [1, 1 + N, D] added to the
  CLS token and every frame's N patches; `time_embeddings` [1, T, D] added to
  the patch tokens (not to CLS) -- vidjax's `cls`, `pos_embedding`,
  `time_embedding` [1, T, 1, D];
* each layer: fused `qkv` Linear [3D, D] (bias if `qkv_bias`) and
  `output.dense` for the spatial attention (`attention`) and, in divided
  space-time attention, the temporal one (`temporal_attention`), then
  `temporal_dense` (vidjax `temporal_fc`), LayerNorms `temporal_layernorm`,
  `layernorm_before`, `layernorm_after` (vidjax temporal_norm, norm1, norm2),
  MLP `intermediate.dense` / `output.dense` (vidjax mlp/fc1, mlp/fc2);
* final `timesformer.layernorm`, `classifier` on the CLS output.
In evaluation the two compute the same function: the CLS token skips temporal
attention, joins every frame's spatial attention and its T outputs are
averaged, in both. transformers' "space_only" runs the encoder on B*T
separate frames and returns B*T logits (the original code averages them);
vidjax's space-only model shares one CLS token: not convertible.
"""
from vidjax.convert import common
from vidjax.errors import VidjaxError

# transformers' TimesformerConfig defaults (used where config.json is silent).
HF_DEFAULTS = dict(num_attention_heads=12, hidden_act="gelu",
                   layer_norm_eps=1e-6, num_channels=3)
PREFIX = "timesformer."


def _layer_rules(i: int, heads: int, divided: bool, qkv_bias: bool):
  src = f"{PREFIX}encoder.layer.{i}."
  dst = f"block_{i}/"
  bias = lambda name: f"{src}{name}.attention.qkv.bias" if qkv_bias else None
  rules = common.fused_attention(
      dst + "attention", heads, f"{src}attention.attention.qkv.weight",
      bias("attention"), f"{src}attention.output.dense")
  rules += common.layernorm(dst + "norm1", src + "layernorm_before")
  rules += common.layernorm(dst + "norm2", src + "layernorm_after")
  rules += common.dense(dst + "mlp/fc1", src + "intermediate.dense")
  rules += common.dense(dst + "mlp/fc2", src + "output.dense")
  if divided:
    rules += common.fused_attention(
        dst + "temporal_attention", heads,
        f"{src}temporal_attention.attention.qkv.weight",
        bias("temporal_attention"), f"{src}temporal_attention.output.dense")
    rules += common.layernorm(dst + "temporal_norm",
                              src + "temporal_layernorm")
    rules += common.dense(dst + "temporal_fc", src + "temporal_dense")
  return rules


def convert(state: dict, hf_config: dict, where: str, fmt: str):
  """(params, model options, data facts, unused keys) for one state dict."""
  cfg = dict(HF_DEFAULTS, **hf_config)
  state = common.strip_prefix(state, ("module.",))
  need = [PREFIX + "embeddings.patch_embeddings.projection.weight",
          PREFIX + "embeddings.position_embeddings"]
  missing = [k for k in need if k not in state]
  if missing:
    raise VidjaxError(f"{where} is not a --format={fmt} checkpoint: keys "
                      f"missing: {', '.join(missing)}")
  attention_type = cfg.get("attention_type", "divided_space_time")
  if attention_type == "space_only":
    raise VidjaxError(
        f"{where}: attention_type='space_only' is not convertible "
        "(transformers classifies every frame separately)")
  if attention_type not in ("divided_space_time", "joint_space_time"):
    raise VidjaxError(f"{where}: unknown attention_type={attention_type!r}")
  divided = attention_type == "divided_space_time"
  proj = state[need[0]]
  hidden, channels, patch = proj.shape[0], proj.shape[1], proj.shape[2]
  num_patches = state[need[1]].shape[1] - 1
  side = int(round(num_patches ** 0.5))
  if side * side != num_patches:
    raise VidjaxError(f"{where}: {num_patches} position embeddings are not "
                      "a square grid")
  time_key = PREFIX + "embeddings.time_embeddings"
  frames = (state[time_key].shape[1] if time_key in state
            else int(cfg.get("num_frames", 8)))
  layers = len({k.split(".")[3] for k in state
                if k.startswith(PREFIX + "encoder.layer.")})
  heads = int(cfg["num_attention_heads"])
  if hidden % heads:
    raise VidjaxError(f"{where}: hidden size {hidden} is not divisible by "
                      f"num_attention_heads={heads} (pass --config)")
  qkv_bias = (PREFIX + "encoder.layer.0.attention.attention.qkv.bias"
              in state)
  mlp_dim = state[PREFIX + "encoder.layer.0.intermediate.dense.weight"].shape[
      0] if layers else int(cfg.get("intermediate_size", 4 * hidden))

  rules = [
      common.Rule("embedding/kernel", (need[0],), common.conv_kernel),
      common.Rule("embedding/bias",
                  (PREFIX + "embeddings.patch_embeddings.projection.bias",)),
      common.Rule("cls", (PREFIX + "embeddings.cls_token",)),
      common.Rule("pos_embedding", (need[1],)),
      common.Rule("time_embedding", (time_key,),
                  lambda t: t.reshape(1, t.shape[1], 1, t.shape[2])),
  ]
  for i in range(layers):
    rules += _layer_rules(i, heads, divided, qkv_bias)
  rules += common.layernorm("norm", PREFIX + "layernorm")
  rules += common.dense("head", "classifier")
  params, unused = common.apply_rules(state, rules, where, fmt)

  model = dict(
      name="timesformer", patch_size=int(patch), hidden_size=int(hidden),
      num_heads=heads, mlp_dim=int(mlp_dim), num_layers=layers,
      attention_type=attention_type,
      approximate_gelu=common.approximate_gelu(cfg["hidden_act"]),
      layer_norm_eps=float(cfg["layer_norm_eps"]))
  data = dict(num_frames=int(frames), crop_size=int(side * patch),
              num_classes=int(state["classifier.weight"].shape[0]),
              channels=int(channels),
              mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225))
  return params, model, data, unused
