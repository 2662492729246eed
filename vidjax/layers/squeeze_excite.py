"""Squeeze-and-excitation (Hu et al., CVPR 2018, "Squeeze-and-Excitation
Networks", Sec. 3) for (B, T, H, W, C) video feature maps.

`SqueezeExcite`: the global average over time and space ("squeeze"), a
bottleneck of two fully connected layers with biases, reduce -> activation ->
expand, and a gate in (0, 1) that scales every channel of the input
("excitation"): y = x * gate(W2 act(W1 mean(x) + b1) + b2). X3D
(Feichtenhofer, CVPR 2020, Sec. 3 and PySlowFast's `operators.SE`) uses it
after the depthwise 3x3x3 conv of every other block with ReLU and a sigmoid
and a reduced width of 1/16 of the channels rounded by `se_width`. The
causal (cumulative-average) form of MoViNet lives with the causal layers.

The fully connected layers are `nn.Dense` on the pooled (B, C) vector (the
releases write them as 1x1x1 convolutions on a 1x1x1 map: the same
multiply-adds, which `vidjax.costs.kernel_gmacs` counts).
"""
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp


def se_width(channels: int, ratio: float, divisor: int = 8,
             min_width: int = 8) -> int:
  """Reduced width: channels x ratio rounded to the nearest multiple of
  `divisor` (at least `min_width`), one more `divisor` if rounding lost more
  than 10% (PySlowFast's `SE._round_width`; 54 x 1/16 -> 8, 432 -> 32)."""
  width = channels * ratio
  out = max(min_width, int(width + divisor / 2) // divisor * divisor)
  if out < 0.9 * width:
    out += divisor
  return int(out)


class SqueezeExcite(nn.Module):
  """x (B, T, H, W, C) -> x * gate(expand(act(reduce(mean_THW(x))))).

  Params: reduce/{kernel, bias} (C, reduced), expand/{kernel, bias}
  (reduced, C). With zero expand weights and bias the gate is
  gate(0) (0.5 for the sigmoid) on every channel.
  """
  reduced_features: int
  activation: Callable = nn.relu
  gate: Callable = nn.sigmoid
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    s = x.mean(axis=(1, 2, 3))
    s = nn.Dense(self.reduced_features, dtype=self.dtype, name="reduce")(s)
    s = nn.Dense(x.shape[-1], dtype=self.dtype, name="expand")(
        self.activation(s))
    return x * self.gate(s)[:, None, None, None, :].astype(x.dtype)
