"""Slow fusion: a 3D CNN whose temporal extent shrinks gradually (Karpathy et
al., CVPR 2014, "Large-scale Video Classification with Convolutional Neural
Networks", Sec. 3.1; CS231n lecture 10, "3D CNN").

The network is a list of layer tokens (`layers`), so one class expresses the
lecture's worked example and Karpathy et al.'s towers:
* `"conv{t}x{h}x{w}:{width}"`, optionally `"conv{t}x{h}x{w}/{st}x{sh}x{sw}:
  {width}"` with strides: a 3D convolution (+ BatchNorm if `batch_norm`),
  ReLU. Spatial padding (k-1)//2 per side; temporal padding the same
  (`temporal_padding="same"`) or none (`"valid"`, Karpathy et al.).
* `"maxpool{t}x{h}x{w}"`, `"avgpool{t}x{h}x{w}"`: non-overlapping pooling
  (stride = window; a remainder is dropped).
* `"lrn"`: local response normalisation across channels (Krizhevsky et al.
  2012, k=2, n=5, alpha=1e-4, beta=0.75, the constants Karpathy et al. use).
Then `head="avg"` (global average over time and space) or `"flatten"`, the
fully connected `fc_dims` (ReLU, dropout) and a linear layer.

Temporal receptive fields (the lecture's worked example, input 20 frames):
conv 3x3x3 -> 3 frames; pool 4x4x4 (stride 4) -> 3 + 3 = 6; conv 3x3x3 on the
pooled grid (each step is 4 input frames) -> 6 + 2*4 = 14. In general a layer
of temporal kernel k on a grid of input-frame stride j adds (k - 1) j frames.
`configs/slow_fusion.py:lecture` is that stack. Each layer's output is sown
as `intermediates/layer{i}`.

Karpathy et al.'s slow fusion (`configs/slow_fusion.py:sports1m`): 10-frame
clips at 170x170; conv1 has temporal extent 4, stride 2, valid (4 time
steps out), conv2 and conv3 extent 2, stride 2 (2, then 1), in their
single-frame tower C(96,11,3)-N-P-C(256,5,1)-N-P-C(384,3,1)-C(384,3,1)-
C(256,3,1)-P-FC(4096)-FC(4096), N = LRN, P = 2x2 max pooling.
"""
import re
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import batch_norm
from vidjax.registry import register_model

_CONV = re.compile(r"^conv(\d+)x(\d+)x(\d+)(?:/(\d+)x(\d+)x(\d+))?:(\d+)$")
_POOL = re.compile(r"^(max|avg)pool(\d+)x(\d+)x(\d+)$")
HEADS = ("avg", "flatten")
TEMPORAL_PADDINGS = ("same", "valid")


def parse_layer(token: str):
  """"conv3x3x3:16" -> ("conv", (3,3,3), (1,1,1), 16); "maxpool1x2x2" ->
  ("maxpool", (1,2,2)); "lrn" -> ("lrn",)."""
  m = _CONV.match(token)
  if m:
    g = [int(v) if v else 1 for v in m.groups()]
    return ("conv", tuple(g[:3]), tuple(g[3:6]), g[6])
  m = _POOL.match(token)
  if m:
    return (m.group(1) + "pool", tuple(int(v) for v in m.groups()[1:]))
  if token == "lrn":
    return ("lrn",)
  raise VidjaxError(
      f"config.model.layers: bad layer {token!r}; use 'conv3x3x3:64', "
      "'conv4x11x11/2x3x3:96', 'maxpool2x2x2', 'avgpool2x2x2' or 'lrn'")


def local_response_norm(x, size: int = 5, k: float = 2.0, alpha: float = 1e-4,
                        beta: float = 0.75):
  """Krizhevsky et al. 2012: x / (k + alpha * sum of x^2 over `size` channels
  centred on each channel)^beta."""
  sq = jnp.square(x)
  half = size // 2
  padded = jnp.pad(sq, [(0, 0)] * (x.ndim - 1) + [(half, half)])
  window = sum(padded[..., i:i + x.shape[-1]] for i in range(size))
  return x / (k + alpha * window) ** beta


def temporal_receptive_fields(layers) -> Tuple[int, ...]:
  """Frames seen by one output position after each layer (no padding)."""
  field, jump, out = 1, 1, []
  for token in layers:
    spec = parse_layer(token)
    if spec[0] == "conv":
      field, jump = field + (spec[1][0] - 1) * jump, jump * spec[2][0]
    elif spec[0] in ("maxpool", "avgpool"):
      field, jump = field + (spec[1][0] - 1) * jump, jump * spec[1][0]
    out.append(field)
  return tuple(out)


@register_model("slow_fusion")
class SlowFusion3D(nn.Module):
  """3D CNN from layer tokens. x: (B, T, H, W, C) -> (B, num_classes) f32.

  Attributes:
    num_classes: output classes.
    layers: layer tokens (see the module docstring).
    temporal_padding: "same" ((k-1)//2 zero frames per side) | "valid".
    batch_norm: BatchNorm after every conv (Karpathy et al. had none).
    head: "avg" (global average pool) | "flatten" before the fc layers.
    fc_dims: hidden fully connected widths (ReLU, dropout after each).
    dropout_rate: dropout after each fc layer.
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  layers: Tuple[str, ...] = ("conv3x3x3/1x2x2:16", "maxpool2x2x2",
                             "conv3x3x3:32", "maxpool2x2x2", "conv3x3x3:64",
                             "maxpool2x2x2")
  temporal_padding: str = "same"
  batch_norm: bool = True
  head: str = "avg"
  fc_dims: Tuple[int, ...] = ()
  dropout_rate: float = 0.0
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.head not in HEADS:
      raise VidjaxError(f"config.model.head={self.head!r}; expected one of "
                        f"{HEADS}")
    if self.temporal_padding not in TEMPORAL_PADDINGS:
      raise VidjaxError(f"config.model.temporal_padding="
                        f"{self.temporal_padding!r}; expected one of "
                        f"{TEMPORAL_PADDINGS}")
    dtype = jnp.dtype(self.dtype)
    y = x.astype(dtype)
    num_conv = 0
    for i, token in enumerate(self.layers):
      spec = parse_layer(token)
      if spec[0] == "conv":
        _, kernel, strides, width = spec
        pads = [((k - 1) // 2,) * 2 for k in kernel]
        if self.temporal_padding == "valid":
          pads[0] = (0, 0)
        if y.shape[1] + sum(pads[0]) < kernel[0]:
          raise VidjaxError(
              f"config.model.layers[{i}]={token!r}: temporal kernel "
              f"{kernel[0]} exceeds the {y.shape[1]} time steps left "
              "(more config.dataset.num_frames?)")
        num_conv += 1
        y = nn.Conv(width, kernel, strides=strides, padding=pads,
                    use_bias=not self.batch_norm, dtype=dtype,
                    name=f"conv{num_conv}",
                    kernel_init=nn.initializers.kaiming_normal())(y)
        if self.batch_norm:
          y = batch_norm(train, f"bn{num_conv}", dtype)(y)
        y = nn.relu(y)
      elif spec[0] == "lrn":
        y = local_response_norm(y)
      else:
        pool = nn.max_pool if spec[0] == "maxpool" else nn.avg_pool
        if any(s < w for s, w in zip(y.shape[1:4], spec[1])):
          raise VidjaxError(f"config.model.layers[{i}]={token!r}: window "
                            f"larger than the feature map {y.shape[1:4]}")
        y = pool(y, spec[1], strides=spec[1], padding="VALID")
      self.sow("intermediates", f"layer{i}", y)
    y = y.astype(jnp.float32)
    if self.head == "avg":
      y = y.mean(axis=(1, 2, 3))
    else:
      y = y.reshape(y.shape[0], -1)
    for j, dim in enumerate(self.fc_dims):
      y = nn.relu(nn.Dense(dim, dtype=dtype, name=f"fc{j + 1}")(y))
      y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    return nn.Dense(self.num_classes, name="head")(y.astype(jnp.float32))
