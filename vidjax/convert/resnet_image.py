"""ImageNet ResNet-50 (He et al., CVPR 2016) -> vidjax's per-frame 2D ResNet
("tsm" with `shift_place="none"`: the TSN / C2D network, whose parameter
names I3D-R50, NL-I3D-R50, TSM and the Slow pathway of SlowFast share:
vidjax/init_image.py inflates it into them).

Two source layouts, one vidjax tree (`stem_conv`, `stem_bn`,
`stage{s}_block{i}/{conv1,bn1,conv2,bn2,conv3,bn3,shortcut_conv,
shortcut_bn}`, `head`; BatchNorm statistics in `batch_stats`):
* "hf_resnet": transformers' `ResNetModel` / `ResNetForImageClassification`
  (modeling_resnet.py, 5.x): `[resnet.]embedder.embedder.{convolution,
  normalization}` (conv 7x7 stride 2 + BN + ReLU + 3x3 max pool stride 2),
  `encoder.stages.S.layers.I.layer.{0,1,2}.{convolution,normalization}` (1x1,
  3x3 carrying the stride (`downsample_in_bottleneck=False`), 1x1 to the
  stage's `hidden_sizes[S]`), `...shortcut.{convolution,normalization}`
  (1x1 with the stride + BN where the shape changes), `classifier.1` on the
  globally averaged features. Only `layer_type="bottleneck"`.
* "resnet_torchvision": a torchvision / timm `resnet50` state dict (`conv1`,
  `bn1`, `layerL.I.conv{1,2,3}`, `bn{1,2,3}`, `downsample.{0,1}`, `fc`), read
  as plain tensors: the stride is on the 3x3 conv ("ResNet v1.5", as
  torchvision and timm), which is what vidjax's `Bottleneck` computes.
Layout facts: a Conv2d weight [out, in, kh, kw] -> flax kernel
(kh, kw, in, out); BatchNorm weight/bias/running_mean/running_var -> params
scale/bias, batch_stats mean/var (eps 1e-5 in both: vidjax.layers.conv3d).
"""
import numpy as np

from vidjax.convert import common
from vidjax.errors import VidjaxError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_FRAMES = 8  # of the written config: the 2D net runs per frame


def conv2d_kernel(w):
  """Conv2d [out, in, kh, kw] -> flax Conv kernel (kh, kw, in, out)."""
  return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def _bn(dst: str, src: str):
  params = [common.Rule(f"{dst}/scale", (f"{src}.weight",)),
            common.Rule(f"{dst}/bias", (f"{src}.bias",))]
  stats = [common.Rule(f"{dst}/mean", (f"{src}.running_mean",)),
           common.Rule(f"{dst}/var", (f"{src}.running_var",))]
  return params, stats


def _names(fmt: str):
  """Source key builders of one layout: (stem conv, stem bn, block prefix
  fn(s, i), conv fn(j), bn fn(j), shortcut conv, shortcut bn, head)."""
  if fmt == "hf_resnet":
    return ("embedder.embedder.convolution", "embedder.embedder.normalization",
            lambda s, i: f"encoder.stages.{s}.layers.{i}.",
            lambda j: f"layer.{j}.convolution",
            lambda j: f"layer.{j}.normalization",
            "shortcut.convolution", "shortcut.normalization", "classifier.1")
  return ("conv1", "bn1", lambda s, i: f"layer{s + 1}.{i}.",
          lambda j: f"conv{j + 1}", lambda j: f"bn{j + 1}",
          "downsample.0", "downsample.1", "fc")


def _depths(state: dict, fmt: str):
  """Blocks per stage, read from the keys."""
  depths = []
  for s in range(8):
    prefix = (f"encoder.stages.{s}.layers." if fmt == "hf_resnet"
              else f"layer{s + 1}.")
    blocks = {k[len(prefix):].split(".")[0] for k in state
              if k.startswith(prefix)}
    if not blocks:
      break
    depths.append(len(blocks))
  return depths


def convert(state: dict, hf_config: dict, where: str, fmt: str):
  """(params, model options, data facts, unused keys, batch_stats)."""
  state = common.strip_prefix(state, ("module.",))
  if fmt == "hf_resnet":
    state = common.strip_prefix(state, ("resnet.",))
    if hf_config.get("layer_type", "bottleneck") != "bottleneck":
      raise VidjaxError(
          f"{where}: layer_type={hf_config['layer_type']!r}; only bottleneck "
          "ResNets (ResNet-50/101/152) map onto vidjax's video ResNets")
    if hf_config.get("downsample_in_bottleneck"):
      raise VidjaxError(f"{where}: downsample_in_bottleneck=True (stride on "
                        "the first 1x1 conv) has no vidjax equivalent")
  stem_conv, stem_bn, block, conv, bn, sc_conv, sc_bn, head = _names(fmt)
  if stem_conv + ".weight" not in state:
    raise VidjaxError(f"{where} is not a --format={fmt} checkpoint: key "
                      f"missing: {stem_conv}.weight")
  depths = _depths(state, fmt)
  if not depths:
    raise VidjaxError(f"{where}: no residual stages found for --format={fmt}")
  first = block(0, 0)
  if first + conv(2) + ".weight" not in state:
    raise VidjaxError(f"{where}: blocks have no third conv ({first}"
                      f"{conv(2)}.weight): only bottleneck ResNets "
                      "(ResNet-50/101/152) are supported")

  rules = [common.Rule("stem_conv/kernel", (stem_conv + ".weight",),
                       conv2d_kernel)]
  p, st = _bn("stem_bn", stem_bn)
  rules, stats = rules + p, st
  widths = []
  for s, depth in enumerate(depths):
    widths.append(int(state[block(s, 0) + conv(0) + ".weight"].shape[0]))
    for i in range(depth):
      src, dst = block(s, i), f"stage{s}_block{i}/"
      for j in range(3):
        rules.append(common.Rule(f"{dst}conv{j + 1}/kernel",
                                 (src + conv(j) + ".weight",), conv2d_kernel))
        p, st = _bn(f"{dst}bn{j + 1}", src + bn(j))
        rules, stats = rules + p, stats + st
      if src + sc_conv + ".weight" in state:
        rules.append(common.Rule(f"{dst}shortcut_conv/kernel",
                                 (src + sc_conv + ".weight",), conv2d_kernel))
        p, st = _bn(f"{dst}shortcut_bn", src + sc_bn)
        rules, stats = rules + p, stats + st
  out_width = 4 * widths[-1]
  if head + ".weight" in state:
    rules += common.dense("head", head)
    num_classes = int(state[head + ".weight"].shape[0])
  else:  # a backbone (ResNetModel): a zero head, init_from keeps the run's
    num_classes = int(hf_config.get("num_labels", len(
        hf_config.get("id2label") or {}) or 1000))
  params, unused_p = common.apply_rules(state, rules, where, fmt)
  batch_stats, unused_s = common.apply_rules(state, stats, where, fmt)
  if "head" not in params:
    params["head"] = {
        "kernel": np.zeros((out_width, num_classes), np.float32),
        "bias": np.zeros((num_classes,), np.float32)}
  unused = sorted(k for k in set(unused_p) & set(unused_s)
                  if not k.endswith("num_batches_tracked"))
  model = dict(name="tsm", shift_place="none", widths=tuple(widths),
               blocks_per_stage=tuple(depths),
               stem_width=int(state[stem_conv + ".weight"].shape[0]),
               stem_pool=True, zero_init_last_bn=False)
  size = common.pair(hf_config.get("image_size", 224), "image_size")
  data = dict(num_frames=NUM_FRAMES, crop_size=size, num_classes=num_classes,
              channels=int(state[stem_conv + ".weight"].shape[1]),
              mean=IMAGENET_MEAN, std=IMAGENET_STD)
  return params, model, data, unused, batch_stats
