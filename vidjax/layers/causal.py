"""Causal video layers with stream buffers (MoViNets, Kondratyuk et al., CVPR
2021, "MoViNets: Mobile Video Networks for Efficient Video Recognition",
Sec. 3.2 "Stream Buffers" and "Causal Operations").

A causal layer's output at frame t depends on input frames <= t only, so a
video can be processed chunk by chunk (down to one frame at a time) carrying
a small state, with exactly the output of one pass over the whole clip:

* causal convolution (`causal_conv`, `CausalConv`): the temporal padding is
  k_t - 1 frames on the left only (none on the right). The **stream buffer**
  is the last k_t - 1 input frames of the previous chunk, prepended to the
  next chunk in place of that padding (zeros at the start of the video: the
  same numbers as zero padding), with 'valid' temporal padding after it;
* **cumulative average pooling** (`cumulative_mean`): the global average over
  time becomes, at frame t, the mean of the spatial means of frames 0..t;
  the state is the running sum and the frame count;
* the **causal squeeze-excitation** (`SqueezeExcite`, causal=True): SE (Hu
  et al. 2018) whose squeeze is that cumulative average ("3d") or the
  cumulative average concatenated with the frame's own spatial mean
  ("2plus3d", the stream checkpoints' choice).

State API: every layer is `y, new_state = layer(x, state)`; `state=None`
starts a video (zero buffers, zero sums and counts), so the whole-clip
causal forward pass is `layer(clip, None)` and streaming is the same call on
successive chunks, feeding back the returned state. States are pytrees of
arrays whose shapes depend on the batch, the spatial size and the channels,
never on the video's length. `causal=False` gives the "base" layers: centred
temporal padding (k_t - 1) // 2 on both sides, global average over the clip,
no state (an empty dict).

CPU speed: a full convolution is a sum of per-frame 2D convolutions, one per
temporal tap (the "frames" form of `vidjax.layers.conv3d.VideoConv`); a
depthwise one uses `pooling_attention.depthwise_conv3d`'s "shifts" form per
temporal tap (element-wise, fast to differentiate on XLA:CPU). impl "conv"
(the default off CPU) is one `lax.conv_general_dilated`; it is also the form
whose multiply-adds `vidjax.costs.kernel_gmacs` counts.
"""
from typing import Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from vidjax.layers.pooling_attention import depthwise_conv3d

IMPLS = ("auto", "conv", "frames")
ACTIVATIONS = {"swish": nn.swish, "hard_swish": jax.nn.hard_swish,
               "relu": nn.relu, "sigmoid": nn.sigmoid,
               "hard_sigmoid": jax.nn.hard_sigmoid}


def resolve_impl(impl: str) -> str:
  """"auto": "frames" (per-tap 2D / shifted sums) on CPU, else "conv"."""
  if impl == "auto":
    return "frames" if jax.default_backend() == "cpu" else "conv"
  if impl not in IMPLS:
    raise ValueError(f"impl={impl!r}; expected one of {IMPLS}")
  return impl


def stream_buffer(x, buffer, size: int):
  """(buffer ++ x along time, the last `size` frames of that: the next
  buffer). buffer None: `size` zero frames (the start of a video). Handles
  chunks shorter than the buffer (the older frames stay in it)."""
  if size == 0:
    return x, jnp.zeros(x.shape[:1] + (0,) + x.shape[2:], x.dtype)
  if buffer is None:
    buffer = jnp.zeros(x.shape[:1] + (size,) + x.shape[2:], x.dtype)
  full = jnp.concatenate([buffer.astype(x.dtype), x], axis=1)
  return full, full[:, full.shape[1] - size:]


def causal_conv(full, kernel, strides: Sequence[int] = (1, 1, 1),
                depthwise: bool = False, impl: str = "auto"):
  """Valid-in-time, centred-in-space conv of `full` (B, T + kt - 1, H, W,
  C): the input already holds its k_t - 1 left frames (a stream buffer or
  padding). kernel (kt, kh, kw, C or 1, Cout); temporal stride 1; spatial
  padding (k - 1) // 2 each side. Returns (B, T, H', W', Cout)."""
  kt, kh, kw = kernel.shape[:3]
  if strides[0] != 1:
    raise ValueError("causal_conv: temporal stride must be 1 (MoViNets "
                     "stride only in space)")
  kernel = kernel.astype(full.dtype)
  t = full.shape[1] - kt + 1
  space = [((kh - 1) // 2,) * 2, ((kw - 1) // 2,) * 2]
  if resolve_impl(impl) == "conv":
    return lax.conv_general_dilated(
        full, kernel, tuple(strides), [(0, 0)] + space,
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        feature_group_count=full.shape[-1] if depthwise else 1)
  y = 0
  for k in range(kt):
    frames = full[:, k:k + t]
    if depthwise:  # kernel[k:k+1]: a 1 x kh x kw depthwise conv, pad k // 2
      y = y + depthwise_conv3d(frames, kernel[k:k + 1], strides, "shifts")
    else:
      out = lax.conv_general_dilated(
          frames.reshape((-1,) + frames.shape[2:]), kernel[k],
          tuple(strides[1:]), space,
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
      y = y + out.reshape(frames.shape[:2] + out.shape[1:])
  return y


def temporal_input(x, state: Optional[dict], kt: int, causal: bool):
  """The conv's input with its temporal context, and the new state: causal,
  the stream buffer (left only); base, (kt - 1) // 2 zero frames each
  side and no state."""
  if not causal:
    p = (kt - 1) // 2
    return jnp.pad(x, ((0, 0), (p, kt - 1 - p), (0, 0), (0, 0), (0, 0))), {}
  full, buffer = stream_buffer(x, None if state is None else state["buffer"],
                               kt - 1)
  return full, ({"buffer": buffer} if kt > 1 else {})


class CausalConv(nn.Module):
  """3D conv (full or depthwise) of (B, T, H, W, C), causal in time with a
  stream buffer (or centred with causal=False); no bias.
  `y, state = CausalConv(...)(x, state)`; params: kernel (kt, kh, kw, Cin or
  1, Cout)."""
  features: int
  kernel_size: Tuple[int, int, int]
  strides: Tuple[int, int, int] = (1, 1, 1)
  depthwise: bool = False
  causal: bool = True
  impl: str = "auto"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, state: Optional[dict] = None):
    kt, kh, kw = self.kernel_size
    cin = 1 if self.depthwise else x.shape[-1]
    kernel = self.param("kernel", nn.initializers.kaiming_normal(),
                        (kt, kh, kw, cin, self.features))
    full, state = temporal_input(x.astype(self.dtype), state, kt, self.causal)
    return causal_conv(full, kernel, self.strides, self.depthwise,
                       self.impl), state


def cumulative_mean(x, state: Optional[dict] = None, causal: bool = True):
  """Spatio-temporal average of x (B, T, H, W, C) -> (B, T', C).

  causal: T' = T, frame t is the mean over frames <= t (of all chunks so
  far) of the spatial means; state {"sum": (B, C) float32, "count": ()
  int32}. Base: T' = 1, the mean over the clip, state {}. Sums in float32.
  """
  m = x.astype(jnp.float32).mean(axis=(2, 3))
  if not causal:
    return m.mean(axis=1, keepdims=True), {}
  if state is None:
    state = {"sum": jnp.zeros((m.shape[0], m.shape[2]), jnp.float32),
             "count": jnp.zeros((), jnp.int32)}
  sums = jnp.cumsum(m, axis=1) + state["sum"][:, None]
  counts = state["count"] + jnp.arange(1, m.shape[1] + 1, dtype=jnp.int32)
  y = sums / counts.astype(jnp.float32)[None, :, None]
  return y, {"sum": sums[:, -1], "count": state["count"] + m.shape[1]}


def make_divisible(value: float, divisor: int = 8) -> int:
  """MobileNet's channel rounding: the nearest multiple of `divisor`, not
  below 90% of `value` (Sandler et al. 2018's release; MoViNet's SE)."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
  """Squeeze-excitation (Hu et al., CVPR 2018) of (B, T, H, W, C): squeeze
  -> Dense(hidden, bias) -> activation -> Dense(C, bias) -> gate, x * gate.

  squeeze "3d": the spatio-temporal average: causal, the cumulative average
  per frame (MoViNet's causal SE; state as `cumulative_mean`); base, one
  average over the clip. "2plus3d": that concatenated with each frame's
  spatial average (hidden width from 2C). `y, state = se(x, state)`.
  """
  hidden: int
  squeeze: str = "3d"
  causal: bool = True
  activation: str = "swish"
  gating: str = "sigmoid"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, state: Optional[dict] = None):
    pooled, state = cumulative_mean(x, state, self.causal)   # (B, T', C)
    if self.squeeze == "2plus3d":
      frame = x.astype(jnp.float32).mean(axis=(2, 3))
      pooled = jnp.concatenate(
          [jnp.broadcast_to(pooled, frame.shape), frame], axis=-1)
    elif self.squeeze != "3d":
      raise ValueError(f"squeeze={self.squeeze!r}; expected '3d' or "
                       "'2plus3d'")
    s = nn.Dense(self.hidden, dtype=self.dtype, name="reduce")(
        pooled.astype(self.dtype))
    s = ACTIVATIONS[self.activation](s)
    s = nn.Dense(x.shape[-1], dtype=self.dtype, name="expand")(s)
    gate = ACTIVATIONS[self.gating](s)[:, :, None, None, :]
    return x * gate.astype(x.dtype), state


def zeros_like_state(shapes):
  """A state tree of zeros from `jax.eval_shape`'s ShapeDtypeStructs."""
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def state_bytes(state) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
