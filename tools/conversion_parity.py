"""Parity of every PyTorch -> vidjax conversion, measured (no download).

  python -m tools.conversion_parity [--size=tiny|base] [--formats=a,b]

For each converter (vidjax/convert/) a random transformers model of that
family is built with the library's own classes, saved with
`save_pretrained`, converted (format read from its config.json, as
`tools.convert_checkpoint` does without --format) and run on the same random
input in float32 by both; prints one markdown row per converter: the max
absolute logit difference and the logits' standard deviation (the scale the
difference is to be read against). The torchvision / timm ResNet layout is
the same weights renamed (conv1, layerL.I.convJ, downsample.0/1, fc), saved
with torch.save.

--size=tiny: small models whose weights are all redrawn at O(1) scale (the
tests' setting: exact vs tanh GELU, LayerNorm eps and BN statistics all move
the logits). --size=base: the papers' widths at 224^2 (ViT-B/16,
ResNet-50, TimeSformer-B 8 frames, ViViT-B/16x2 at 16 frames, VideoMAE-B 16
frames) with transformers' own random initialisation and random BN
statistics, batch 1.
Needs torch + transformers (requirements-test.txt).
"""
import os
import tempfile

import numpy as np
from absl import app, flags

from vidjax import cli  # noqa: F401  (repo root on sys.path)

if __name__ == "__main__":
  _SIZE = flags.DEFINE_enum("size", "tiny", ["tiny", "base"], "Model sizes.")
  _FORMATS = flags.DEFINE_list("formats", [], "Subset of the rows (default "
                               "all).")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64)
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072)
# torchvision / timm resnet names from transformers' (same weights).
TORCHVISION = [
    (r"^resnet\.embedder\.embedder\.convolution", "conv1"),
    (r"^resnet\.embedder\.embedder\.normalization", "bn1"),
    (r"^resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\.convolution",
     lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0"),
    (r"^resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\."
     r"normalization", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1"),
    (r"^resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.(\d)\."
     r"convolution", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv"
     f"{int(m[3]) + 1}"),
    (r"^resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.(\d)\."
     r"normalization", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn"
     f"{int(m[3]) + 1}"),
    (r"^classifier\.1", "fc")]


def _redraw(model, torch, o1: bool, seed: int = 0):
  """O(1) weights (o1) and, always, random BatchNorm statistics."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in model.state_dict().items():
      noise = torch.randn(t.shape, generator=gen)
      if name.endswith("running_var"):
        t.copy_(0.5 + noise.abs())
      elif name.endswith("running_mean"):
        t.copy_(0.3 * noise)
      elif not o1 or name.endswith("num_batches_tracked"):
        continue
      elif name.endswith("bias"):
        t.copy_(0.3 * noise)
      elif t.ndim == 1:
        t.copy_(1.0 + 0.3 * noise)
      elif name.endswith("weight"):
        t.copy_(noise / float(np.prod(t.shape[1:])) ** 0.5)
      else:  # cls / position / time embeddings
        t.copy_(0.5 * noise)
  return model.eval()


def _models(size: str):
  """{row: (transformers model, input (B, [T,] C, H, W), video?)}."""
  import transformers as tf
  tiny = size == "tiny"
  width = TINY if tiny else BASE
  img = 32 if tiny else 224
  rows = {
      "hf_vit": (tf.ViTForImageClassification(tf.ViTConfig(
          **width, image_size=img, patch_size=8 if tiny else 16,
          num_labels=10)), (1, 3, img, img), False),
      "hf_resnet": (tf.ResNetForImageClassification(tf.ResNetConfig(
          embedding_size=8 if tiny else 64,
          hidden_sizes=[16, 32, 64, 128] if tiny else [256, 512, 1024, 2048],
          depths=[1, 2, 1, 1] if tiny else [3, 4, 6, 3],
          layer_type="bottleneck", num_labels=10)), (1, 3, img, img), False),
      "hf_timesformer": (tf.TimesformerForVideoClassification(
          tf.TimesformerConfig(**width, image_size=img,
                               patch_size=8 if tiny else 16,
                               num_frames=4 if tiny else 8, num_labels=10)),
                         (1, 4 if tiny else 8, 3, img, img), True),
      "hf_vivit": (tf.VivitForVideoClassification(tf.VivitConfig(
          **width, image_size=img, num_frames=4 if tiny else 16,
          tubelet_size=[2, 8, 8] if tiny else [2, 16, 16], num_labels=10)),
                   (1, 4 if tiny else 16, 3, img, img), True),
      "hf_videomae": (tf.VideoMAEForVideoClassification(tf.VideoMAEConfig(
          **width, image_size=img, patch_size=8 if tiny else 16,
          num_frames=4 if tiny else 16, tubelet_size=2, num_labels=10)),
                      (1, 4 if tiny else 16, 3, img, img), True),
  }
  return rows


def measure(size: str = "tiny", formats=()) -> list:
  """Rows {format, model, max_abs_diff, logit_std} (module docstring)."""
  import jax
  import jax.numpy as jnp
  import torch
  from vidjax import convert
  rows = []
  torch.manual_seed(0)
  for fmt, (hf, shape, video) in _models(size).items():
    if formats and fmt not in formats and not (
        fmt == "hf_resnet" and "resnet_torchvision" in formats):
      continue
    hf = _redraw(hf, torch, o1=size == "tiny")
    x = np.random.RandomState(0).randn(*shape).astype(np.float32)
    with torch.no_grad():
      want = hf(torch.from_numpy(x)).logits.numpy()
    clip = (x.transpose(0, 1, 3, 4, 2) if video
            else x.transpose(0, 2, 3, 1)[:, None])
    with tempfile.TemporaryDirectory() as tmp:
      hf.save_pretrained(tmp)
      sources = [(fmt, tmp)]
      if fmt == "hf_resnet":
        from vidjax.convert.common import rename_keys  # noqa: PLC0415
        state = rename_keys(hf.state_dict(), TORCHVISION)
        torch.save(state, os.path.join(tmp, "resnet50.pth"))
        sources.append(("resnet_torchvision",
                        os.path.join(tmp, "resnet50.pth")))
      for name, source in sources:
        if formats and name not in formats:
          continue
        converted = convert.convert(source)
        assert converted.fmt == name, (converted.fmt, name)
        variables = {"params": converted.params}
        if converted.batch_stats:
          variables["batch_stats"] = converted.batch_stats
        model = convert.build(converted)
        got = np.asarray(jax.jit(lambda v, c: model.apply(v, c))(
            variables, jnp.asarray(clip)))
        rows.append({"format": name, "model": converted.model["name"],
                     "size": size,
                     "max_abs_diff": float(np.abs(got - want).max()),
                     "logit_std": float(np.std(want))})
  return rows


def main(argv):
  del argv
  rows = measure(_SIZE.value, tuple(_FORMATS.value))
  print("| format | vidjax model | size | max abs logit diff | logit std |")
  print("|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['format']} | {r['model']} | {r['size']} | "
          f"{r['max_abs_diff']:.2e} | {r['logit_std']:.3g} |")


if __name__ == "__main__":
  app.run(main)
