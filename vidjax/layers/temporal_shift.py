"""Temporal shift (Lin, Gan & Han, ICCV 2019, "TSM: Temporal Shift Module for
Efficient Video Understanding", Sec. 3).

A parameter-free, zero-FLOP operation on (B, T, H, W, C) features: the first
C // shift_div channels move one step backward in time (frame t receives frame
t + 1's values), the next C // shift_div channels move one step forward (frame
t receives frame t - 1's), and the remaining channels stay in place; the frames
shifted in from outside the clip are zeros (the paper's zero padding, no
circular wrap). With shift_div = 8 (the paper's default) 1/8 + 1/8 of the
channels are exchanged between neighbouring frames.

Where the shift sits in a residual block (`vidjax.layers.resnet_blocks`):
"inplace" shifts the block's input, so the identity path carries shifted
features too; "residual" (the paper's choice, Sec. 3.3: better accuracy,
keeps the 2D network's spatial features on the shortcut) shifts only the input
of the residual branch.
"""
import jax.numpy as jnp

from vidjax.errors import VidjaxError

SHIFT_PLACES = ("residual", "inplace", "none")


def check_shift_place(value: str):
  if value not in SHIFT_PLACES:
    raise VidjaxError(f"config.model.shift_place={value!r}; expected one of "
                      f"{SHIFT_PLACES}")


def temporal_shift(x, shift_div: int = 8):
  """(B, T, H, W, C) -> same shape; see the module docstring."""
  if x.ndim != 5:
    raise VidjaxError(f"temporal_shift expects (B, T, H, W, C) features, got "
                      f"shape {x.shape}")
  fold = x.shape[-1] // shift_div
  if fold == 0 or x.shape[1] == 1:
    return x
  pad = lambda a, before, after: jnp.pad(  # noqa: E731
      a, ((0, 0), (before, after), (0, 0), (0, 0), (0, 0)))
  backward = pad(x[:, 1:, ..., :fold], 0, 1)           # out[t] = x[t + 1]
  forward = pad(x[:, :-1, ..., fold:2 * fold], 1, 0)   # out[t] = x[t - 1]
  return jnp.concatenate([backward, forward, x[..., 2 * fold:]], axis=-1)
