"""C3D (Tran et al., ICCV 2015, "Learning Spatiotemporal Features with 3D
Convolutional Networks").

Eight 3x3x3 convolutions (stride 1, padding 1) of widths 64, 128, 256, 256,
512, 512, 512, 512 in five groups (conv1a | conv2a | conv3a-b | conv4a-b |
conv5a-b), each group followed by a max pool: pool1 is 1x2x2 (keeps time
early), pool2-pool5 are 2x2x2. Pools use "ceil mode" (pad the end with -inf
when a size is odd), as the paper's pool5 does: at 16x112x112 pool5 maps
512x1x7x7 to 512x1x4x4, so fc6 sees 8192 inputs. Then fc6 and fc7 (4096,
ReLU, dropout 0.5) and the linear head.

Parameters at 16x112x112: 79.99M with the Sports-1M head (487 classes);
78.41M with a 101-class (UCF101) head, which is the commonly quoted "78.4M"
(the convolutions and fc6/fc7 are 78.0M). Multiply-adds: 38.5 G per clip.
The original has no BatchNorm; `batch_norm=True` adds it (useful from scratch
on small data).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import Conv3DBNReLU
from vidjax.registry import register_model

# Convolutions per pooling group (conv1a | conv2a | conv3a,b | conv4a,b | 5a,b).
GROUP_SIZES = (1, 1, 2, 2, 2)


@register_model("c3d")
class C3D(nn.Module):
  """C3D. x: (B, T, H, W, C) -> logits (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    widths: the eight conv widths (conv1a, conv2a, conv3a, conv3b, ...).
    fc_dim: width of fc6 and fc7.
    dropout_rate: dropout after fc6 and after fc7.
    batch_norm: BatchNorm after every conv (not in the paper).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (64, 128, 256, 256, 512, 512, 512, 512)
  fc_dim: int = 4096
  dropout_rate: float = 0.5
  batch_norm: bool = False
  dtype: str = "float32"

  def check_input(self, input_shape):
    if len(self.widths) != sum(GROUP_SIZES):
      raise VidjaxError(f"config.model.widths={tuple(self.widths)} must list "
                        f"{sum(GROUP_SIZES)} conv widths")

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    self.check_input(x.shape[1:])
    dtype = jnp.dtype(self.dtype)
    y = x.astype(dtype)
    layer = 0
    for group, size in enumerate(GROUP_SIZES):
      for sub in range(size):
        y = Conv3DBNReLU(self.widths[layer], (3, 3, 3),
                         use_batch_norm=self.batch_norm,
                         use_bias=not self.batch_norm, dtype=dtype,
                         name=f"conv{group + 1}{'ab'[sub]}")(y, train=train)
        layer += 1
      window = (1, 2, 2) if group == 0 else (2, 2, 2)
      y = nn.max_pool(y, window, strides=window, padding="SAME")  # ceil mode
    y = y.reshape(y.shape[0], -1)
    for name in ("fc6", "fc7"):
      y = nn.relu(nn.Dense(self.fc_dim, dtype=dtype, name=name)(y))
      y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=jnp.float32, name="head")(
        y.astype(jnp.float32))
