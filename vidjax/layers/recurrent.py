"""Convolutional recurrent cells and a time loop over (B, T, ...) sequences.

* `ConvGRUCell`: the GRU of Cho et al. 2014 with every matrix product replaced
  by a 2D convolution, as in Ballas, Yao, Pal & Courville, ICLR 2016,
  "Delving Deeper into Convolutional Networks for Learning Video
  Representations" (GRU-RCN, Eq. 3):
      z_t = sigmoid(W_z * x_t + U_z * h_{t-1})
      r_t = sigmoid(W_r * x_t + U_r * h_{t-1})
      h~_t = tanh(W * x_t + U * (r_t . h_{t-1}))
      h_t = (1 - z_t) . h_{t-1} + z_t . h~_t
  `*` is a convolution (stride 1, SAME padding), `.` the elementwise product;
  the hidden state keeps the input's spatial size. Parameters: `input_conv`
  (W_z, W_r, W stacked: k_x^2 * C_in * 3H + 3H with its bias), `hidden_conv`
  (U_z, U_r: k_h^2 * H * 2H) and `candidate_conv` (U: k_h^2 * H * H), in all
  3H (k_x^2 C_in + k_h^2 H + 1).
* `ConvLSTMCell`: the convolutional LSTM of Shi et al., NeurIPS 2015 ("
  Convolutional LSTM Network"), without peepholes: gates i, f, o and the
  candidate g from `input_conv` (k_x^2 C_in 4H + 4H) + `hidden_conv`
  (k_h^2 H 4H); c_t = f.c_{t-1} + i.g, h_t = o.tanh(c_t).
  4H (k_x^2 C_in + k_h^2 H + 1) parameters.
* `run_cell`: runs a cell over axis 1 of a (B, T, ...) input, with `nn.scan`
  (`scan=True`, one compiled loop body) or a Python loop (`scan=False`,
  unrolled: what `vidjax.costs` needs to count every step's FLOPs). Both give
  the same parameter tree (the cell's name) and the same outputs.

Every cell takes and returns `(carry, x) -> (carry, h)` and has
`zero_carry(x_shape)` for a batch of inputs of shape x_shape (no time axis).
"""
from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp


def _conv(features: int, kernel: int, use_bias: bool, dtype, name: str):
  return nn.Conv(features, (kernel, kernel), padding="SAME",
                 use_bias=use_bias, dtype=dtype, name=name)


class ConvGRUCell(nn.Module):
  """Convolutional GRU (Ballas et al. 2016). carry = h: (B, H, W, features)."""
  features: int
  input_kernel: int = 3
  hidden_kernel: int = 3
  dtype: jnp.dtype = jnp.float32

  def zero_carry(self, x_shape: Tuple[int, ...]):
    return jnp.zeros(tuple(x_shape[:-1]) + (self.features,), self.dtype)

  @nn.compact
  def __call__(self, h, x):
    f = self.features
    wx = _conv(3 * f, self.input_kernel, True, self.dtype, "input_conv")(x)
    uh = _conv(2 * f, self.hidden_kernel, False, self.dtype, "hidden_conv")(h)
    z = nn.sigmoid(wx[..., :f] + uh[..., :f])
    r = nn.sigmoid(wx[..., f:2 * f] + uh[..., f:])
    candidate = jnp.tanh(wx[..., 2 * f:] + _conv(
        f, self.hidden_kernel, False, self.dtype, "candidate_conv")(r * h))
    h = (1.0 - z) * h + z * candidate
    return h, h


class ConvLSTMCell(nn.Module):
  """Convolutional LSTM (Shi et al. 2015), no peepholes. carry = (c, h)."""
  features: int
  input_kernel: int = 3
  hidden_kernel: int = 3
  dtype: jnp.dtype = jnp.float32

  def zero_carry(self, x_shape: Tuple[int, ...]):
    zeros = jnp.zeros(tuple(x_shape[:-1]) + (self.features,), self.dtype)
    return zeros, zeros

  @nn.compact
  def __call__(self, carry, x):
    c, h = carry
    gates = (_conv(4 * self.features, self.input_kernel, True, self.dtype,
                   "input_conv")(x)
             + _conv(4 * self.features, self.hidden_kernel, False, self.dtype,
                     "hidden_conv")(h))
    i, f, o, g = jnp.split(gates, 4, axis=-1)
    c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
    h = nn.sigmoid(o) * jnp.tanh(c)
    return (c, h), h


def run_cell(cell_cls, cell_kwargs: dict, x, carry, *, name: str,
             scan: bool = True):
  """Runs `cell_cls(**cell_kwargs)` over time: x (B, T, ...) -> (carry, ys).

  Must be called inside a compact module; the cell's parameters live under
  `name` and are shared by every time step. ys: (B, T, ...) per-step outputs.
  """
  if scan:
    scanned = nn.scan(cell_cls, variable_broadcast="params",
                      split_rngs={"params": False}, in_axes=1, out_axes=1)
    return scanned(**cell_kwargs, name=name)(carry, x)
  cell = cell_cls(**cell_kwargs, name=name)
  ys = []
  for t in range(x.shape[1]):
    carry, y = cell(carry, x[:, t])
    ys.append(y)
  return carry, jnp.stack(ys, axis=1)
