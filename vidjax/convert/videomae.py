"""VideoMAE checkpoints -> vidjax "videomae" / "videomae_pretrain".

Three source layouts, one vidjax tree (vidjax/models/videomae.py):
* "hf_videomae": transformers' `VideoMAEForVideoClassification`
  (`videomae.embeddings.patch_embeddings.projection`, `videomae.encoder.
  layer.N.attention.attention.{query,key,value}` with `q_bias`/`v_bias` in
  saved files or `query.bias`/`value.bias` in module state dicts and no key
  bias, `attention.output.dense`, `layernorm_before`/`layernorm_after`,
  `intermediate.dense`/`output.dense`, then `fc_norm` + `classifier`
  (use_mean_pooling) or `videomae.layernorm` + the first token).
* "hf_videomae_pretrain": `VideoMAEForPreTraining`: the encoder above,
  `encoder_to_decoder` (no bias), `mask_token`, `decoder.decoder_layers.N.*`,
  `decoder.norm`, `decoder.head`.
* "videomae_release": the authors' files (MCG-NJU/VideoMAE
  modeling_pretrain.py / modeling_finetune.py; tensors under "model" or
  "module"): `[encoder.]patch_embed.proj`, `[encoder.]blocks.N.{norm1,
  attn.qkv (one [3D, D] weight, no bias), attn.q_bias, attn.v_bias,
  attn.proj, norm2, mlp.fc1, mlp.fc2}`, then `encoder.norm`, `decoder.
  blocks.N.*`, `decoder.norm`, `decoder.head`, `encoder_to_decoder`,
  `mask_token` (pretraining) or `norm` / `fc_norm` + `head` (finetuned).
  The release's position table is a fixed sinusoid (not in the file), every
  LayerNorm has eps 1e-6 and the MLP an exact GELU; head counts are not
  stored, so they come from the widths of the released models (ViT-S 6,
  B 12, L 16, H 16; decoders 192:3, 384:6, 512:8, 640:8) unless --config
  gives num_attention_heads / decoder_num_attention_heads.
LayerNorm epsilons of the HF port: `layer_norm_eps` (1e-12 by default) in all
blocks and the encoder's final norm, PyTorch's 1e-5 for `fc_norm` and the
decoder's final norm (vidjax `layer_norm_eps`, `head_norm_eps`).
"""
import re

from vidjax.convert import common
from vidjax.errors import VidjaxError

HF_DEFAULTS = dict(num_attention_heads=12, hidden_act="gelu",
                   layer_norm_eps=1e-12, use_mean_pooling=True, num_frames=16,
                   image_size=224, decoder_num_attention_heads=6,
                   norm_pix_loss=True, qv_bias=True)
RELEASE_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16}
RELEASE_DECODER_HEADS = {192: 3, 384: 6, 512: 8, 640: 8}
IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _count(state, prefix):
  pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
  return len({m.group(1) for k in state for m in [pattern.match(k)] if m})


def _hf_canonical(state):
  """Module-style q/v bias names -> the saved `q_bias` / `v_bias`."""
  out = {}
  for key, value in state.items():
    key = re.sub(r"attention\.attention\.query\.bias$",
                 "attention.attention.q_bias", key)
    key = re.sub(r"attention\.attention\.value\.bias$",
                 "attention.attention.v_bias", key)
    out[key] = value
  return out


def _hf_blocks(state, src, dst, layers, heads, qv_bias):
  rules = []
  for i in range(layers):
    s, d = f"{src}{i}.", f"{dst}block_{i}/"
    att = s + "attention.attention."
    rules += [common.Rule(f"{d}attention/{n}/kernel", (f"{att}{n}.weight",),
                          common.heads_in(heads))
              for n in ("query", "key", "value")]
    for name, bias in (("query", "q_bias"), ("value", "v_bias")):
      rules.append(
          common.Rule(f"{d}attention/{name}/bias", (att + bias,),
                      common.heads_bias(heads)) if qv_bias else
          common.Rule(f"{d}attention/{name}/bias", (f"{att}{name}.weight",),
                      common.zeros_like_rows(heads)))
    rules.append(common.Rule(f"{d}attention/out/kernel",
                             (s + "attention.output.dense.weight",),
                             common.heads_out(heads)))
    rules.append(common.Rule(f"{d}attention/out/bias",
                             (s + "attention.output.dense.bias",)))
    rules += common.layernorm(d + "norm1", s + "layernorm_before")
    rules += common.layernorm(d + "norm2", s + "layernorm_after")
    rules += common.dense(d + "mlp/fc1", s + "intermediate.dense")
    rules += common.dense(d + "mlp/fc2", s + "output.dense")
  return rules


def _release_blocks(state, src, dst, layers, heads):
  rules = []
  for i in range(layers):
    s, d = f"{src}{i}.", f"{dst}block_{i}/"
    if s + "gamma_1" in state:
      raise VidjaxError(f"{s}gamma_1: layer scale (init_values > 0) is not "
                        "supported by vidjax's VideoMAE")
    for j, name in enumerate(("query", "key", "value")):
      rules.append(common.Rule(f"{d}attention/{name}/kernel",
                               (s + "attn.qkv.weight",),
                               common.qkv_part(j, common.heads_in(heads))))
    for name, bias in (("query", "q_bias"), ("value", "v_bias")):
      rules.append(common.Rule(f"{d}attention/{name}/bias",
                               (f"{s}attn.{bias}",), common.heads_bias(heads))
                   if f"{s}attn.{bias}" in state else
                   common.Rule(f"{d}attention/{name}/bias",
                               (s + "attn.qkv.weight",),
                               common.qkv_part(0, common.zeros_like_rows(
                                   heads))))
    rules += [common.Rule(f"{d}attention/out/kernel",
                          (s + "attn.proj.weight",), common.heads_out(heads)),
              common.Rule(f"{d}attention/out/bias", (s + "attn.proj.bias",))]
    rules += common.layernorm(d + "norm1", s + "norm1")
    rules += common.layernorm(d + "norm2", s + "norm2")
    rules += common.dense(d + "mlp/fc1", s + "mlp.fc1")
    rules += common.dense(d + "mlp/fc2", s + "mlp.fc2")
  return rules


def _heads(cfg, key, width, table, where):
  heads = cfg.get(key) or table.get(width)
  if not heads or width % int(heads):
    raise VidjaxError(f"{where}: cannot tell the head count of width {width};"
                      f" pass --config with {key}")
  return int(heads)


def convert(state: dict, hf_config: dict, where: str, fmt: str):
  """(params, model options, data facts, unused keys) for one state dict."""
  state = common.strip_prefix(state, ("module.",))
  if fmt == "videomae_release":
    return _convert_release(state, hf_config, where, fmt)
  cfg = dict(HF_DEFAULTS, **hf_config)
  state = _hf_canonical(state)
  pretrain = fmt == "hf_videomae_pretrain"
  proj = "videomae.embeddings.patch_embeddings.projection"
  head_key = "decoder.head.weight" if pretrain else "classifier.weight"
  missing = [k for k in (proj + ".weight", head_key) if k not in state]
  if missing:
    raise VidjaxError(f"{where} is not a --format={fmt} checkpoint: keys "
                      f"missing: {', '.join(missing)}")
  if common.approximate_gelu(cfg["hidden_act"]):
    raise VidjaxError(f"{where}: hidden_act={cfg['hidden_act']!r}; vidjax's "
                      "VideoMAE has the exact GELU ('gelu') only")
  weight = state[proj + ".weight"]
  hidden, channels, tubelet = weight.shape[0], weight.shape[1], weight.shape[2:]
  heads = _heads(cfg, "num_attention_heads", hidden, {}, where)
  layers = _count(state, "videomae.encoder.layer.")
  mean_pool = bool(cfg["use_mean_pooling"])
  final_norm = "videomae.layernorm.weight" in state
  if pretrain and not final_norm:
    raise VidjaxError(
        f"{where}: this VideoMAEForPreTraining has no encoder LayerNorm "
        "(use_mean_pooling=True); vidjax's videomae_pretrain always has one, "
        "as the release and the Hub's pretraining checkpoints do")
  qv = bool(cfg["qv_bias"])
  rules = [common.Rule("encoder/embedding/kernel", (proj + ".weight",),
                       common.conv_kernel),
           common.Rule("encoder/embedding/bias", (proj + ".bias",))]
  rules += _hf_blocks(state, "videomae.encoder.layer.", "encoder/transformer/",
                      layers, heads, qv)
  if pretrain or not mean_pool:
    rules += common.layernorm("encoder/transformer/norm", "videomae.layernorm")
  model = dict(patch_size=tuple(int(t) for t in tubelet),
               hidden_size=int(hidden), num_layers=layers, num_heads=heads,
               mlp_dim=int(state["videomae.encoder.layer.0.intermediate.dense."
                                 "weight"].shape[0]),
               layer_norm_eps=float(cfg["layer_norm_eps"]), head_norm_eps=1e-5)
  if pretrain:
    width = state["encoder_to_decoder.weight"].shape[0] if (
        "encoder_to_decoder.weight" in state) else int(
            cfg.get("decoder_hidden_size", 384))
    dec_layers = _count(state, "decoder.decoder_layers.")
    dec_heads = _heads(cfg, "decoder_num_attention_heads", width, {}, where)
    rules += [common.Rule("encoder_to_decoder/kernel",
                          ("encoder_to_decoder.weight",), common.linear_kernel),
              common.Rule("mask_token", ("mask_token",))]
    rules += _hf_blocks(state, "decoder.decoder_layers.", "decoder/",
                        dec_layers, dec_heads, qv)
    rules += common.layernorm("decoder/norm", "decoder.norm")
    rules += common.dense("decoder_head", "decoder.head")
    model = dict(name="videomae_pretrain", **model,
                 decoder_hidden_size=int(width), decoder_num_layers=dec_layers,
                 decoder_num_heads=dec_heads,
                 decoder_mlp_dim=int(state["decoder.decoder_layers.0."
                                           "intermediate.dense.weight"]
                                     .shape[0]) if dec_layers else
                 int(cfg.get("decoder_intermediate_size", 4 * width)),
                 mask_ratio=float(cfg.get("mask_ratio", 0.9)),
                 norm_pix_loss=bool(cfg["norm_pix_loss"]))
    num_classes = 0
  else:
    if mean_pool:
      rules += common.layernorm("fc_norm", "fc_norm")
    rules += common.dense("head", "classifier")
    model = dict(name="videomae", **model, use_mean_pooling=mean_pool)
    num_classes = int(state["classifier.weight"].shape[0])
  params, unused = common.apply_rules(state, rules, where, fmt)
  data = dict(num_frames=int(cfg["num_frames"]),
              crop_size=common.pair(cfg["image_size"], "image_size"),
              num_classes=num_classes, channels=int(channels), **IMAGENET)
  return params, model, data, unused


def _convert_release(state, cfg, where, fmt):
  pretrain = any(k.startswith("encoder.blocks.") for k in state)
  enc = "encoder." if pretrain else ""
  proj = enc + "patch_embed.proj.weight"
  if proj not in state:
    raise VidjaxError(f"{where} is not a --format={fmt} checkpoint: keys "
                      f"missing: {proj}")
  for key in (enc + "pos_embed", "pos_embed"):
    if key in state:
      raise VidjaxError(f"{where}: {key} is a learned position embedding; "
                        "vidjax's VideoMAE uses the fixed sinusoid table")
  weight = state[proj]
  hidden, channels, tubelet = weight.shape[0], weight.shape[1], weight.shape[2:]
  heads = _heads(cfg, "num_attention_heads", hidden, RELEASE_HEADS, where)
  layers = _count(state, enc + "blocks.")
  rules = [common.Rule("encoder/embedding/kernel", (proj,), common.conv_kernel),
           common.Rule("encoder/embedding/bias",
                       (enc + "patch_embed.proj.bias",))]
  rules += _release_blocks(state, enc + "blocks.", "encoder/transformer/",
                           layers, heads)
  model = dict(patch_size=tuple(int(t) for t in tubelet),
               hidden_size=int(hidden), num_layers=layers, num_heads=heads,
               mlp_dim=int(state[enc + "blocks.0.mlp.fc1.weight"].shape[0]),
               layer_norm_eps=1e-6, head_norm_eps=1e-6)
  if pretrain:
    rules += common.layernorm("encoder/transformer/norm", "encoder.norm")
    width = state["encoder_to_decoder.weight"].shape[0]
    dec_heads = _heads(cfg, "decoder_num_attention_heads", width,
                       RELEASE_DECODER_HEADS, where)
    dec_layers = _count(state, "decoder.blocks.")
    rules += [common.Rule("encoder_to_decoder/kernel",
                          ("encoder_to_decoder.weight",), common.linear_kernel),
              common.Rule("mask_token", ("mask_token",))]
    rules += _release_blocks(state, "decoder.blocks.", "decoder/", dec_layers,
                             dec_heads)
    rules += common.layernorm("decoder/norm", "decoder.norm")
    rules += common.dense("decoder_head", "decoder.head")
    model = dict(name="videomae_pretrain", **model,
                 decoder_hidden_size=int(width), decoder_num_layers=dec_layers,
                 decoder_num_heads=dec_heads,
                 decoder_mlp_dim=int(state["decoder.blocks.0.mlp.fc1.weight"]
                                     .shape[0]),
                 mask_ratio=float(cfg.get("mask_ratio", 0.9)),
                 norm_pix_loss=bool(cfg.get("norm_pix_loss", True)))
    num_classes = 0
  else:
    mean_pool = "fc_norm.weight" in state
    rules += common.layernorm("fc_norm" if mean_pool
                              else "encoder/transformer/norm",
                              "fc_norm" if mean_pool else "norm")
    rules += common.dense("head", "head")
    model = dict(name="videomae", **model, use_mean_pooling=mean_pool)
    num_classes = int(state["head.weight"].shape[0]) if "head.weight" in state \
        else 0
  params, unused = common.apply_rules(state, rules, where, fmt)
  data = dict(num_frames=int(cfg.get("num_frames", 16)),
              crop_size=common.pair(cfg.get("image_size", 224), "image_size"),
              num_classes=num_classes, channels=int(channels), **IMAGENET)
  return params, model, data, unused
