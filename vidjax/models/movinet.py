"""MoViNets (Kondratyuk et al., CVPR 2021, "MoViNets: Mobile Video Networks for
Efficient Video Recognition"): A0, A1, A2, base (centred) and stream (causal).

Architecture (the paper's searched networks, as released in tensorflow/models
`official/projects/movinet`; written here from those facts):

* stem: 1x3x3 conv, stride (1, 2, 2) -> BN -> activation;
* five stages of inverted-bottleneck blocks (`SPECS`: per block the expanded
  width, the depthwise kernel kt x k x k and the stride; the stage's output
  width): 1x1x1 expansion -> BN -> act -> depthwise kt x k x k conv (spatial
  stride 1 or 2, temporal stride always 1) -> BN -> act -> squeeze-excitation
  (hidden = 1/4 of the expanded width, rounded to 8) -> 1x1x1 projection ->
  BN, times a learned scalar (ReZero; 0 at init in the release, see
  `rezero_init`), plus the skip: the
  input, or (when the width or the size changes) a 3x3 stride-2 average pool
  (strided blocks) -> 1x1x1 conv -> BN;
* head: 1x1x1 conv (480 / 600 / 640) -> BN -> act -> global average ->
  Dense(2048) -> act -> dropout -> Dense(classes).

`causal=True` (stream models): every temporal conv is causal with a stream
buffer and every average over time is cumulative (`vidjax.layers.causal`), so
`model.apply(v, chunk, state, stream=True)` -> (logits per frame, state), run
on successive chunks, gives exactly the whole-clip causal outputs, and
`stream_logits` runs a video in chunks with `lax.scan`. The stream checkpoints' options: conv_type
"2plus1d" (a depthwise kt x k x k conv split into 1 x k x k -> BN -> act ->
kt x 1 x 1 -> BN -> act, the buffer before the temporal conv), se_type
"2plus3d", hard-swish / hard-sigmoid. The paper's base models: "3d", "3d",
swish / sigmoid, causal=False.

Counts at the release's Kinetics-600 inputs (600 classes; multiply-adds as
`vidjax.costs.kernel_gmacs` counts them, depthwise convs in their "conv"
form): A0 3.11M params, 2.65 G (published 3.1M, 2.7 "GFLOPs"); A1 4.69M,
5.91 G (4.6M, 6.0); A2 5.25M, 11.61 G at 50x224^2 (4.8M from the paper as
quoted, not re-read; 10 "GFLOPs" in the release README's base and stream
tables, both at this 50x224x224 input). The A2 gap is the published
figure's, not a spec error: `SPECS["a2"]` (stem, every block's width,
expansion, kernel, stride, head 640, SE = expansion/4 rounded to 8, skips)
equals tensorflow/models official/projects/movinet/modeling/movinet.py
BLOCK_SPECS['a2'] and the port that loads the released A2 weights
(Atze00/MoViNet-pytorch movinets/config.py, MoViNetA2), and the float32
variables (params + BN statistics) come to 20.1 MiB, the README's A2
"checkpoint (20 MB)" (A0 11.9 / "12 MB", A1 18.0 / "18 MB"; 4.8M
parameters would be ~18.4). The release also departs from the paper's
architecture tables elsewhere (A0's block-2 width: Atze00/MoViNet-pytorch
#14), so the paper's A2 row is taken to describe a smaller network than the
released one. See configs/movinet.py, tests/test_movinet.py.
"""
from typing import Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError
from vidjax.layers import causal as C
from vidjax.layers.conv3d import batch_norm
from vidjax.registry import register_model

K13, K15, K33, K53 = (1, 3, 3), (1, 5, 5), (3, 3, 3), (5, 3, 3)
# Per stage: (output width, ((expanded width, kernel, spatial stride), ...)).
SPECS = {
    "a0": dict(stem=8, head=480, stages=(
        (8, ((24, K15, 2),)),
        (32, ((80, K33, 2), (80, K33, 1), (80, K33, 1))),
        (56, ((184, K53, 2), (112, K33, 1), (184, K33, 1))),
        (56, ((184, K53, 1), (184, K33, 1), (184, K33, 1), (184, K33, 1))),
        (104, ((384, K53, 2), (280, K15, 1), (280, K15, 1), (344, K15, 1))))),
    "a1": dict(stem=16, head=600, stages=(
        (16, ((40, K15, 2), (40, K33, 1))),
        (40, ((96, K33, 2), (120, K33, 1), (96, K33, 1), (96, K33, 1))),
        (64, ((216, K53, 2), (128, K33, 1), (216, K33, 1), (168, K33, 1),
              (216, K33, 1))),
        (64, ((216, K53, 1), (216, K33, 1), (216, K33, 1), (128, K33, 1),
              (128, K15, 1), (216, K33, 1))),
        (136, ((456, K53, 2), (360, K15, 1), (360, K15, 1), (360, K15, 1),
               (456, K15, 1), (456, K33, 1), (544, K13, 1))))),
    "a2": dict(stem=16, head=640, stages=(
        (16, ((40, K15, 2), (40, K33, 1), (64, K33, 1))),
        (40, ((96, K33, 2), (120, K33, 1), (96, K33, 1), (96, K33, 1),
              (120, K33, 1))),
        (72, ((240, K53, 2), (160, K33, 1), (240, K33, 1), (192, K33, 1),
              (240, K33, 1))),
        (72, ((240, K53, 1), (240, K33, 1), (240, K33, 1), (240, K33, 1),
              (144, K15, 1), (240, K33, 1))),
        (144, ((480, K53, 2), (384, K15, 1), (384, K15, 1), (480, K15, 1),
               (480, K15, 1), (480, K33, 1), (576, K13, 1))))),
    # A tiny network of the same kind for the embedded 32x32 data.
    "tiny": dict(stem=8, head=64, stages=(
        (16, ((32, K33, 2),)),
        (24, ((48, K53, 2), (48, K33, 1))),
        (32, ((64, K33, 2), (64, K15, 1))))),
}
CONV_TYPES, SE_TYPES = ("3d", "2plus1d"), ("3d", "2plus3d")


class Block(nn.Module):
  """MoViNet's inverted bottleneck (module docstring). `y, state =
  block(x, state, train=...)`; state: {"feature": {"buffer"} (causal,
  kt > 1), "se": {"sum", "count"} (causal)}."""
  out_width: int
  expand_width: int
  kernel: Tuple[int, int, int]
  stride: int
  causal: bool
  conv_type: str
  se_type: str
  activation: str
  gating: str
  impl: str
  dtype: jnp.dtype
  rezero_init: float = 0.0

  @nn.compact
  def __call__(self, x, state: Optional[dict], *, train: bool):
    state = state or {}
    act, dt = C.ACTIVATIONS[self.activation], self.dtype
    kt, kh, kw = self.kernel
    s = (1, self.stride, self.stride)
    new = {}
    y = nn.Dense(self.expand_width, use_bias=False, dtype=dt,
                 name="expand")(x)
    y = act(batch_norm(train, "expand_bn", dt)(y))
    conv = lambda k, st, name: C.CausalConv(  # noqa: E731
        self.expand_width, k, st, True, self.causal, self.impl, dt, name=name)
    if self.conv_type == "2plus1d" and kt > 1:
      y, _ = conv((1, kh, kw), s, "spatial")(y)
      y = act(batch_norm(train, "spatial_bn", dt)(y))
      y, new["feature"] = conv((kt, 1, 1), (1, 1, 1), "temporal")(
          y, state.get("feature"))
      y = act(batch_norm(train, "temporal_bn", dt)(y))
    else:
      y, new["feature"] = conv(self.kernel, s, "feature")(
          y, state.get("feature"))
      y = act(batch_norm(train, "feature_bn", dt)(y))
    hidden = C.make_divisible(
        self.expand_width * (2 if self.se_type == "2plus3d" else 1) / 4)
    y, new["se"] = C.SqueezeExcite(hidden, self.se_type, self.causal,
                                   self.activation, self.gating, dt,
                                   name="se")(y, state.get("se"))
    y = nn.Dense(self.out_width, use_bias=False, dtype=dt, name="project")(y)
    y = batch_norm(train, "project_bn", dt)(y)
    y = y * self.param("rezero", nn.initializers.constant(self.rezero_init),
                       ()).astype(dt)
    skip = x
    if self.stride > 1:
      skip = _skip_pool(skip)
    if self.stride > 1 or x.shape[-1] != self.out_width:
      skip = nn.Dense(self.out_width, use_bias=False, dtype=dt,
                      name="skip")(skip)
      skip = batch_norm(train, "skip_bn", dt)(skip)
    return skip + y, {k: v for k, v in new.items() if v}


def _in_bounds(n: int) -> np.ndarray:
  """Taps of each 3-wide, stride-2, pad-1 window inside a length-n axis."""
  return np.array([min(2 * i + 1, n - 1) - max(2 * i - 1, 0) + 1
                   for i in range((n - 1) // 2 + 1)], np.float32)


def _skip_pool(x):
  """3x3 stride-2 spatial average over the in-bounds pixels (padding not
  counted); the counts are a numpy constant (XLA constant-folds
  count_include_pad=False's window of ones slowly at paper sizes)."""
  total = nn.avg_pool(x, (1, 3, 3), (1, 2, 2), ((0, 0), (1, 1), (1, 1))) * 9
  count = np.outer(_in_bounds(x.shape[2]), _in_bounds(x.shape[3]))
  return total / jnp.asarray(count, x.dtype)[None, None, :, :, None]


@register_model("movinet")
class MoViNet(nn.Module):
  """MoViNet classifier. x: (B, T, H, W, 3) -> (B, num_classes) float32.

  Attributes:
    variant: "a0" | "a1" | "a2" | "tiny" (SPECS).
    causal: stream model (causal convs, cumulative averages) or base.
    conv_type: "3d" or "2plus1d" (the depthwise convs with kt > 1).
    se_type: "3d" or "2plus3d" (the squeeze's pooling).
    activation / gating: "swish" / "sigmoid" (base) or "hard_swish" /
      "hard_sigmoid" (stream checkpoints).
    head_width: the classifier's hidden width (2048).
    dropout_rate: before the last Dense (0.2 in the released configs).
    rezero_init: the blocks' residual scale at init (0: the release, each
      block starts as its skip; 1 suits short schedules: an optimizer step
      moves the scalar by about the learning rate).
    impl: convolution form, `vidjax.layers.causal.IMPLS` ("auto": per-frame
      2D / shifted sums on CPU; "conv" counts every multiply-add).
    dtype: compute dtype name; params float32.
  """
  num_classes: int
  variant: str = "a0"
  causal: bool = True
  conv_type: str = "3d"
  se_type: str = "3d"
  activation: str = "swish"
  gating: str = "sigmoid"
  head_width: int = 2048
  dropout_rate: float = 0.0
  rezero_init: float = 0.0
  impl: str = "auto"
  dtype: str = "float32"

  def check_input(self, input_shape):
    for key, value, known in (("variant", self.variant, tuple(SPECS)),
                              ("conv_type", self.conv_type, CONV_TYPES),
                              ("se_type", self.se_type, SE_TYPES),
                              ("impl", self.impl, C.IMPLS),
                              ("activation", self.activation,
                               tuple(C.ACTIVATIONS)),
                              ("gating", self.gating, tuple(C.ACTIVATIONS))):
      if value not in known:
        raise VidjaxError(f"config.model.{key}={value!r}; expected one of "
                          f"{known}")
    if len(input_shape) != 4 or input_shape[-1] != 3:
      raise VidjaxError(f"movinet: input (T, H, W, 3) expected, got "
                        f"{tuple(input_shape)}")

  @nn.compact
  def __call__(self, x, state: Optional[dict] = None, *, train: bool = False,
               stream: bool = False):
    """logits (B, classes); stream=True (causal models, inference): (logits
    of every frame (B, T, classes): the head on the cumulative average up
    to that frame, the new state); state None: the start of a video."""
    self.check_input(x.shape[1:])
    if stream and not self.causal:
      raise VidjaxError("config.model.causal=False: a base MoViNet has no "
                        "stream mode (train a causal one)")
    spec, dt = SPECS[self.variant], jnp.dtype(self.dtype)
    act = C.ACTIVATIONS[self.activation]
    state, new = state or {}, {}
    y, _ = C.CausalConv(spec["stem"], (1, 3, 3), (1, 2, 2), False,
                        self.causal, self.impl, dt, name="stem")(x)
    y = act(batch_norm(train, "stem_bn", dt)(y))
    for i, (width, blocks) in enumerate(spec["stages"]):
      for j, (expand, kernel, stride) in enumerate(blocks):
        name = f"stage{i}_block{j}"
        y, new[name] = Block(width, expand, kernel, stride, self.causal,
                             self.conv_type, self.se_type, self.activation,
                             self.gating, self.impl, dt, self.rezero_init,
                             name=name)(
                                 y, state.get(name), train=train)
    y = nn.Dense(spec["head"], use_bias=False, dtype=dt,
                 name="head_project")(y)
    y = act(batch_norm(train, "head_bn", dt)(y))
    pooled, new["head"] = C.cumulative_mean(y, state.get("head"), self.causal)
    if not stream:  # causal: the cumulative mean at the last frame
      pooled = pooled[:, -1]  # (the clip's mean)
    h = act(nn.Dense(self.head_width, dtype=jnp.float32, name="head_hidden")(
        pooled))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=not train)
    logits = nn.Dense(self.num_classes, dtype=jnp.float32, name="classifier",
                      kernel_init=nn.initializers.normal(0.01))(h)
    if not stream:
      return logits
    return logits, {k: v for k, v in new.items() if v}


def stream_apply(model, variables, x, state=None):
  """(per-frame logits, new state) of one chunk (model.apply, stream=True)."""
  return model.apply(variables, x, state, stream=True)


def init_state(model, variables, batch: int, height: int, width: int,
               channels: int = 3):
  """The zero state of a video's start (shapes from `jax.eval_shape`; they
  depend on batch, size and widths, not on the video's length)."""
  x = jax.ShapeDtypeStruct((batch, 1, height, width, channels), jnp.float32)
  shapes = jax.eval_shape(
      lambda v, x: stream_apply(model, v, x)[1],
      variables, x)
  return C.zeros_like_state(shapes)


def stream_logits(model, variables, video, chunk: int, state=None):
  """Runs `video` (B, T, H, W, 3) through a causal model `chunk` frames at
  a time: `lax.scan` over the T // chunk full chunks carrying the state,
  then the remaining T % chunk frames. Returns (logits after each chunk
  (B, n_chunks, classes), per-frame logits (B, T, classes), final state).
  Jit it with `chunk` static: one compilation per (video length, chunk)."""
  b, t = video.shape[:2]
  if state is None:
    state = init_state(model, variables, b, *video.shape[2:4])
  n = t // chunk
  step = lambda s, x: stream_apply(model, variables, x, s)[::-1]  # noqa
  chunks = video[:, :n * chunk].reshape((b, n, chunk) + video.shape[2:])
  state, frames = jax.lax.scan(step, state, jnp.moveaxis(chunks, 1, 0))
  frames = jnp.moveaxis(frames, 0, 1).reshape(b, n * chunk, -1)
  if t % chunk:
    rest, state = stream_apply(model, variables, video[:, n * chunk:], state)
    frames = jnp.concatenate([frames, rest], axis=1)
  ends = [min(t, (i + 1) * chunk) - 1 for i in range(-(-t // chunk))]
  return frames[:, jnp.asarray(ends)], frames, state
