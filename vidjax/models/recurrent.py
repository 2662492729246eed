"""Recurrent video models over per-frame 2D CNN features.

* "lrcn" (`LRCN`): Donahue et al., CVPR 2015, "Long-term Recurrent
  Convolutional Networks for Visual Recognition and Description". A 2D CNN
  encodes every frame to a vector, an LSTM runs over the frame vectors, a linear layer predicts a class at every time step, and (the
  paper's activity-recognition rule) the clip's prediction is the average
  of the per-step predictions (`readout="mean"`; `"last"`: the last step's).
  The LSTM is Flax's `nn.LSTMCell` (Hochreiter & Schmidhuber 1997, no
  peepholes): 4 (D_in + H + 1) H parameters.
  The frame vector (`frame_feature`): "fc6", the paper's (its LSTM reads
  CaffeNet's fc6, a fully connected layer on the flattened conv5/pool5 map):
  the per-frame ResNet map of `single_frame.py` flattened into
  Dense(`fc_dim`) + ReLU, so WHERE things are in the frame survives and the
  LSTM can compare positions across steps (translation). "pool": the
  spatial average of the map, which keeps WHAT but not where: on
  `synthetic_motion/motion` it stays near chance (13.1% at 200 steps,
  benchmarks/RESULTS.md, issue #17).
* "conv_gru" (`ConvGRUNet`): the recurrent convolutional network of Ballas et
  al., ICLR 2016, "Delving Deeper into Convolutional Networks for Learning
  Video Representations" (GRU-RCN): per-frame conv feature maps x_t feed
  convolutional GRUs, h_t = GRU(W * x_t, U * h_{t-1}) (see
  `vidjax.layers.recurrent.ConvGRUCell`), which keep the spatial layout that
  a fully-connected recurrence would flatten away. `gru_features` stacks
  layers (each reads the previous layer's hidden states); a step's prediction
  is a linear layer on the spatially averaged top hidden state, read out as
  in LRCN. `cell="lstm"` swaps in a ConvLSTM (Shi et al. 2015).

Both are causal: in eval mode (BatchNorm on running stats) the prediction at
step t depends on frames 0..t only. Per-step logits are sown as
`intermediates/step_logits` (B, T, K). `scan=True` runs the recurrence with
`nn.scan` (one compiled loop body: short compiles for long clips on
GPU/TPU); `scan=False` unrolls it in Python (same parameters, same outputs),
which `vidjax.costs.kernel_gmacs` needs to count every step. On the CPU a
convolution inside XLA's while loop is very slow: a ConvGRUNet train step
(default widths, batch 16 x 8x32x32) took 5.1 s with scan and 0.11 s
unrolled, so "conv_gru" defaults to `scan=False`; LRCN's scanned LSTM is
only dense matmuls and defaults to `scan=True`.
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.recurrent import ConvGRUCell, ConvLSTMCell, run_cell
from vidjax.models.single_frame import FrameResNet, per_frame
from vidjax.registry import register_model

READOUTS = ("mean", "last")
FRAME_FEATURES = ("fc6", "pool")
CELLS = {"gru": ConvGRUCell, "lstm": ConvLSTMCell}


def _readout(module, step_logits, readout: str):
  module.sow("intermediates", "step_logits", step_logits)
  if readout not in READOUTS:
    raise VidjaxError(f"config.model.readout={readout!r}; expected one of "
                      f"{READOUTS}")
  return step_logits.mean(axis=1) if readout == "mean" else step_logits[:, -1]


@register_model("lrcn")
class LRCN(nn.Module):
  """CNN + LSTM. x: (B, T, H, W, C) -> logits (B, num_classes) float32.

  Attributes:
    num_classes: output classes.
    widths, blocks_per_stage, stem_stride, stem_kernel, stem_pool: the
      per-frame 2D ResNet (see `single_frame.resnet2d_features`).
    frame_feature: "fc6" (flattened map -> Dense(fc_dim) + ReLU, the
      paper) | "pool" (spatial average of the map).
    fc_dim: width of the "fc6" layer.
    hidden_size: LSTM units.
    readout: "mean" (average of per-step logits, the paper) | "last".
    dropout_rate: dropout on the frame vectors and the LSTM outputs.
    scan: nn.scan over time (else an unrolled loop).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (16, 32, 64)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  stem_kernel: int = 3
  stem_pool: bool = False
  frame_feature: str = "fc6"
  fc_dim: int = 256
  hidden_size: int = 64
  readout: str = "mean"
  dropout_rate: float = 0.0
  scan: bool = True
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    dtype = jnp.dtype(self.dtype)
    maps = per_frame(FrameResNet(self.widths, self.blocks_per_stage,
                                 self.stem_stride, self.stem_kernel,
                                 self.stem_pool, dtype, name="backbone"),
                     x, train=train)
    if self.frame_feature not in FRAME_FEATURES:
      raise VidjaxError(f"config.model.frame_feature={self.frame_feature!r}; "
                        f"expected one of {FRAME_FEATURES}")
    if self.frame_feature == "pool":
      vectors = maps.mean(axis=(2, 3)).astype(jnp.float32)  # (B, T, D)
    else:  # fc6 on the flattened map: (B, T, h * w * D) -> (B, T, fc_dim)
      flat = maps.reshape(maps.shape[:2] + (-1,))
      vectors = nn.relu(nn.Dense(self.fc_dim, dtype=dtype, name="fc6")(
          flat)).astype(jnp.float32)
    vectors = nn.Dropout(self.dropout_rate)(vectors, deterministic=not train)
    zeros = jnp.zeros((x.shape[0], self.hidden_size), jnp.float32)
    _, hidden = run_cell(nn.LSTMCell, {"features": self.hidden_size},
                         vectors, (zeros, zeros), name="lstm", scan=self.scan)
    hidden = nn.Dropout(self.dropout_rate)(hidden, deterministic=not train)
    step_logits = nn.Dense(self.num_classes, name="head")(hidden)
    return _readout(self, step_logits, self.readout)


@register_model("conv_gru")
class ConvGRUNet(nn.Module):
  """Per-frame conv maps -> ConvGRU layers -> logits (B, num_classes).

  Attributes:
    num_classes: output classes.
    widths, blocks_per_stage, stem_stride: the per-frame 2D ResNet encoder
      whose last feature map (B, T, h, w, widths[-1]) is the GRU input.
    gru_features: hidden channels of each stacked recurrent layer.
    input_kernel, hidden_kernel: kernel sizes of the W (input-to-hidden) and
      U (hidden-to-hidden) convolutions.
    cell: "gru" (Ballas et al.) | "lstm" (ConvLSTM, Shi et al.).
    readout: "last" (the last step's prediction) | "mean" (their average).
    dropout_rate: dropout before the head.
    scan: nn.scan over time (else an unrolled loop, much faster on CPU).
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int
  widths: Tuple[int, ...] = (16, 32)
  blocks_per_stage: int = 1
  stem_stride: int = 2
  gru_features: Tuple[int, ...] = (32,)
  input_kernel: int = 3
  hidden_kernel: int = 3
  cell: str = "gru"
  readout: str = "last"
  dropout_rate: float = 0.0
  scan: bool = False
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.cell not in CELLS:
      raise VidjaxError(f"config.model.cell={self.cell!r}; expected one of "
                        f"{tuple(CELLS)}")
    dtype = jnp.dtype(self.dtype)
    y = per_frame(FrameResNet(self.widths, self.blocks_per_stage,
                              self.stem_stride, dtype=dtype, name="encoder"),
                  x, train=train)
    cell_cls = CELLS[self.cell]
    for layer, features in enumerate(self.gru_features):
      kwargs = dict(features=features, input_kernel=self.input_kernel,
                    hidden_kernel=self.hidden_kernel, dtype=dtype)
      carry = cell_cls(**kwargs).zero_carry((y.shape[0],) + y.shape[2:])
      _, y = run_cell(cell_cls, kwargs, y, carry, name=f"{self.cell}{layer}",
                      scan=self.scan)
    pooled = y.mean(axis=(2, 3)).astype(jnp.float32)  # (B, T, features)
    pooled = nn.Dropout(self.dropout_rate)(pooled, deterministic=not train)
    step_logits = nn.Dense(self.num_classes, name="head")(pooled)
    return _readout(self, step_logits, self.readout)
