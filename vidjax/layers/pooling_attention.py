"""Multi-head pooling attention (MHPA) and the multiscale block of MViTv2.

MHPA (Fan et al. 2021, "Multiscale Vision Transformers", Sec. 3.1): the
query, key and value projections of the (T, H, W) token grid are each pooled
before attention, so the output has the pooled query's resolution and the
attention costs Nq x Nk with both reduced. MViTv2 (Li et al. 2022, "MViTv2:
Improved Multiscale Vision Transformers for Classification and Detection",
Sec. 3) adds two changes, both on by default here:

* decomposed relative position embeddings (Sec. 3.1, Eq. 3-4): the logit of
  query token i and key token j gains q_i . R_{p(i),p(j)} with
  R = R^t_{t(i),t(j)} + R^h_{h(i),h(j)} + R^w_{w(i),w(j)}: three learned
  tables (one per axis) of head_dim vectors, shared by the heads, indexed by
  the query-key distance along that axis. When Q and K have different
  resolutions along an axis, the coarser one's coordinates are scaled up by
  the size ratio (the released code's convention), and each table has
  2 * max(q, k) - 1 rows. As in the release, q is the pooled, normalised and
  unscaled query, and the bias is added to the already scaled logits
  q.k / sqrt(d) (the table absorbs the paper's 1/sqrt(d));
* residual pooling connection (Sec. 3.1, Eq. 5): Z = Attn(Q, K, V) + Q, the
  pooled query added to the attention output before the output projection
  (the class token's row excluded, as in the release).

Pooling ("conv", the paper's choice): a depthwise 3D convolution (kernel k,
stride s, padding k // 2, no bias) over head_dim channels shared by every
head, then LayerNorm(head_dim) over the pooled tokens and the class token; the
class token itself is not pooled. A kernel and stride of all ones skips the
pooling and its norm. The q, k, v projections are one Dense(3 * dim_out)
("qkv", reshaped (3, heads, head_dim)); the output projection is
Dense(dim_out) ("proj").

`MultiScaleBlock` (MViTv2 with the release's `DIM_MUL_IN_ATT: True`): at a
stage transition the attention's projections widen the channels dim ->
dim_out, and the skip path is Dense(dim_out) of the normalised input; when Q
is pooled the skip path is max-pooled with kernel s + 1 (s where s = 1),
stride s, padding kernel // 2.
"""
import functools
import math
from typing import Any, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.layers.transformer import DropPath, MlpBlock

LN_EPS = 1e-6   # the release's norm layer
POOL_IMPLS = ("auto", "conv", "shifts")
dense_init = nn.initializers.truncated_normal(0.02)


class _Param(nn.Module):
  """A lone `kernel` parameter (keeps nn.Conv's `conv/kernel` path)."""
  shape: Tuple[int, ...]

  @nn.compact
  def __call__(self):
    return self.param("kernel", dense_init, self.shape, jnp.float32)


def rel_pos_index(q_size: int, k_size: int) -> np.ndarray:
  """(q_size, k_size) int table rows for the query-key distances on one axis.

  Coordinates of the smaller side are scaled by the size ratio so that both
  sides span the same extent; the row is the scaled distance shifted to be
  non-negative (largest distance (k_size - 1) * k_ratio maps to row 0 at
  q = 0). Rows are < 2 * max(q_size, k_size) - 1 for divisible sizes.
  """
  q_ratio = max(k_size / q_size, 1.0)
  k_ratio = max(q_size / k_size, 1.0)
  dist = (np.arange(q_size)[:, None] * q_ratio
          - np.arange(k_size)[None, :] * k_ratio + (k_size - 1) * k_ratio)
  return dist.astype(np.int64)


def rel_pos_rows(q_size: int, k_size: int) -> int:
  """Rows of one axis' table: 2 max(q, k) - 1 (the release), or more when a
  non-divisible size pair needs it."""
  return max(2 * max(q_size, k_size) - 1,
             int(rel_pos_index(q_size, k_size).max()) + 1)


def decomposed_rel_pos_bias(q, q_thw, k_thw, rel_t, rel_h, rel_w):
  """q_i . (R^t + R^h + R^w) for every query/key pair of the token grids.

  Args:
    q: (B, Nq, heads, d) queries of the grid tokens only (no class token),
      Nq = prod(q_thw) in (t, h, w) row-major order.
    q_thw, k_thw: the query and key grids (t, h, w).
    rel_t, rel_h, rel_w: (rows, d) tables of the three axes.
  Returns:
    (B, heads, Nq, Nk) bias, Nk = prod(k_thw).
  """
  (qt, qh, qw), (kt, kh, kw) = q_thw, k_thw
  batch, _, heads, dim = q.shape
  grid = q.reshape(batch, qt, qh, qw, heads, dim)
  r_t = rel_t[rel_pos_index(qt, kt)].astype(q.dtype)   # (qt, kt, d)
  r_h = rel_h[rel_pos_index(qh, kh)].astype(q.dtype)   # (qh, kh, d)
  r_w = rel_w[rel_pos_index(qw, kw)].astype(q.dtype)   # (qw, kw, d)
  bias_t = jnp.einsum("bthwnd,tkd->bnthwk", grid, r_t)
  bias_h = jnp.einsum("bthwnd,hkd->bnthwk", grid, r_h)
  bias_w = jnp.einsum("bthwnd,wkd->bnthwk", grid, r_w)
  bias = (bias_t[..., :, None, None] + bias_h[..., None, :, None]
          + bias_w[..., None, None, :])   # (B, n, qt, qh, qw, kt, kh, kw)
  return bias.reshape(batch, heads, qt * qh * qw, kt * kh * kw)


def _taps(x, kernel, stride, pad_value):
  """Yields (tap index, strided slice of x padded by kernel // 2) for every
  tap of a (kt, kh, kw) window over x (N, T, H, W, C)."""
  x = jnp.pad(x, [(0, 0)] + [(k // 2, k // 2) for k in kernel] + [(0, 0)],
              constant_values=pad_value)
  out = [(n - k) // s + 1 for n, k, s in zip(x.shape[1:4], kernel, stride)]
  for tap in np.ndindex(*kernel):
    limit = tuple(o + (m - 1) * s + 1 for o, m, s in zip(tap, out, stride))
    yield tap, jax.lax.slice(x, (0,) + tap + (0,),
                             (x.shape[0],) + limit + (x.shape[4],),
                             (1,) + tuple(stride) + (1,))


def depthwise_conv3d(x, kernel, stride, impl: str = "shifts"):
  """Depthwise 3D conv, padding k // 2, no bias: x (N, T, H, W, C), kernel
  (kt, kh, kw, 1, C) (flax's grouped-conv layout).

  impl "conv": `lax.conv_general_dilated` with C feature groups; "shifts":
  a loop over the kernel taps adding the shifted, strided input times that
  tap's per-channel weights (the same numbers with element-wise ops; ~10x
  faster to differentiate on XLA:CPU, whose grouped convolutions are slow).
  `costs.kernel_gmacs` counts only the "conv" form's multiply-adds.
  """
  size = kernel.shape[:3]
  if impl == "conv":
    return jax.lax.conv_general_dilated(
        x, kernel.astype(x.dtype), tuple(stride),
        [(k // 2, k // 2) for k in size],
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        feature_group_count=x.shape[-1])
  if impl == "shifts":
    taps = jnp.asarray(kernel, x.dtype).reshape(-1, kernel.shape[-1])
    return _shifted_sum(x, taps, size, tuple(stride))
  raise ValueError(f"pool_impl={impl!r}; expected one of {POOL_IMPLS}")


def _tap_start(i, size):
  """(0, a, b, c, 0): where tap i (row-major in the kernel) starts."""
  table = jnp.asarray(np.array(list(np.ndindex(*size)), np.int32))[i]
  return (0, table[0], table[1], table[2], 0)


def _pad_and_span(x, size, stride):
  x = jnp.pad(x, [(0, 0)] + [(k // 2, k // 2) for k in size] + [(0, 0)])
  out = [(n - k) // s + 1 for n, k, s in zip(x.shape[1:4], size, stride)]
  span = (x.shape[0],) + tuple((o - 1) * s + 1 for o, s in zip(out, stride)
                               ) + (x.shape[4],)
  return x, out, span


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _shifted_sum(x, taps, size, stride):
  """sum over taps i of (x padded, shifted by tap i, strided) * taps[i]: one
  loop over the taps (a small program), with a hand-written backward pass
  (two more loops; autodiff of the loop would stack every tap's window)."""
  x, out, span = _pad_and_span(x, size, stride)

  def add_tap(i, acc):
    window = jax.lax.dynamic_slice(x, _tap_start(i, size), span)
    return acc + window[:, ::stride[0], ::stride[1], ::stride[2]] * taps[i]

  acc = jnp.zeros((x.shape[0], *out, x.shape[4]), x.dtype)
  return jax.lax.fori_loop(0, taps.shape[0], add_tap, acc)


def _shifted_sum_fwd(x, taps, size, stride):
  return _shifted_sum(x, taps, size, stride), (x, taps)


def _shifted_sum_bwd(size, stride, residuals, g):
  x, taps = residuals
  padded, _, span = _pad_and_span(x, size, stride)
  # g spread onto the stride grid of one tap's input window.
  g_up = jax.lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0)] + [
      (0, 0, s - 1) for s in stride] + [(0, 0, 0)])

  def tap_grads(i, carry):
    grad_x, grad_taps = carry
    start = _tap_start(i, size)
    window = jax.lax.dynamic_slice(padded, start, span)
    window = window[:, ::stride[0], ::stride[1], ::stride[2]]
    grad_taps = jax.lax.dynamic_update_slice(
        grad_taps, jnp.sum(window * g, axis=(0, 1, 2, 3))[None], (i, 0))
    grad_x = jax.lax.dynamic_update_slice(
        grad_x, jax.lax.dynamic_slice(grad_x, start, span) + g_up * taps[i],
        start)
    return grad_x, grad_taps

  grad_x, grad_taps = jax.lax.fori_loop(
      0, taps.shape[0], tap_grads,
      (jnp.zeros_like(padded), jnp.zeros_like(taps)))
  lo = [k // 2 for k in size]
  grad_x = grad_x[:, lo[0]:lo[0] + x.shape[1], lo[1]:lo[1] + x.shape[2],
                  lo[2]:lo[2] + x.shape[3]]
  return grad_x, grad_taps


_shifted_sum.defvjp(_shifted_sum_fwd, _shifted_sum_bwd)


def max_pool3d(x, kernel, stride):
  """Max over (kt, kh, kw) windows of x (N, T, H, W, C), padding k // 2
  (padding never wins: it is -inf), as a running max of shifted slices."""
  out = None
  for _, window in _taps(x, kernel, stride, -jnp.inf):
    out = window if out is None else jnp.maximum(out, window)
  return out


def resolve_pool_impl(impl: str) -> str:
  """"auto": "shifts" on CPU, "conv" on accelerators."""
  if impl == "auto":
    return "shifts" if jax.default_backend() == "cpu" else "conv"
  if impl not in POOL_IMPLS:
    raise ValueError(f"pool_impl={impl!r}; expected one of {POOL_IMPLS}")
  return impl


class TokenPool(nn.Module):
  """Depthwise-conv pooling of (B, N, heads, d) tokens on a (t, h, w) grid,
  shared by the heads, then LayerNorm(d); the class token (if any) is kept
  unpooled in front. Returns (tokens, pooled thw). Parameters: conv/kernel
  (kt, kh, kw, 1, d), norm/{scale, bias}."""
  kernel: Sequence[int]
  stride: Sequence[int]
  has_cls: bool
  dtype: Any = jnp.float32
  impl: str = "auto"   # depthwise_conv3d's: "auto" | "conv" | "shifts"

  @nn.compact
  def __call__(self, x, thw):
    if math.prod(self.kernel) == 1 and math.prod(self.stride) == 1:
      return x, tuple(thw)
    batch, _, heads, dim = x.shape
    cls, grid = (x[:, :1], x[:, 1:]) if self.has_cls else (None, x)
    grid = grid.reshape((batch,) + tuple(thw) + (heads, dim))
    grid = grid.transpose(0, 4, 1, 2, 3, 5).reshape((batch * heads,)
                                                    + tuple(thw) + (dim,))
    kernel = _Param(tuple(self.kernel) + (1, dim), name="conv")()
    grid = depthwise_conv3d(grid.astype(self.dtype), kernel, self.stride,
                            resolve_pool_impl(self.impl))
    new_thw = grid.shape[1:4]
    grid = grid.reshape((batch, heads, math.prod(new_thw), dim))
    x = grid.transpose(0, 2, 1, 3)
    if cls is not None:
      x = jnp.concatenate([cls, x], axis=1)
    return nn.LayerNorm(LN_EPS, dtype=self.dtype, name="norm")(x), new_thw


class PoolingAttention(nn.Module):
  """MHPA on (B, N, D) tokens of a (t, h, w) grid (+ class token).

  `__call__(x, thw)` -> ((B, Nq, dim_out), pooled query thw). Sows the pooled
  q, k, v (B, N, heads, head_dim) into "intermediates" when that collection
  is mutable (not at init).
  """
  dim_out: int
  num_heads: int
  kernel_q: Sequence[int] = (3, 3, 3)
  kernel_kv: Sequence[int] = (3, 3, 3)
  stride_q: Sequence[int] = (1, 1, 1)
  stride_kv: Sequence[int] = (1, 1, 1)
  has_cls: bool = True
  rel_pos: bool = True
  residual_pooling: bool = True
  dtype: Any = jnp.float32
  pool_impl: str = "auto"   # "auto" | "conv" | "shifts" (depthwise_conv3d)

  @nn.compact
  def __call__(self, x, thw):
    if self.dim_out % self.num_heads:
      raise ValueError(f"width {self.dim_out} not divisible by "
                       f"{self.num_heads} heads")
    batch, tokens, _ = x.shape
    if tokens != math.prod(thw) + int(self.has_cls):
      raise ValueError(f"{tokens} tokens do not fit the grid {tuple(thw)}")
    head_dim = self.dim_out // self.num_heads
    qkv = nn.Dense(3 * self.dim_out, dtype=self.dtype, kernel_init=dense_init,
                   name="qkv")(x).reshape(batch, tokens, 3, self.num_heads,
                                          head_dim)
    pool = lambda name, kernel, stride: TokenPool(
        kernel, stride, self.has_cls, self.dtype, self.pool_impl, name=name)
    q, q_thw = pool("pool_q", self.kernel_q, self.stride_q)(qkv[:, :, 0], thw)
    k, k_thw = pool("pool_k", self.kernel_kv, self.stride_kv)(qkv[:, :, 1], thw)
    v, _ = pool("pool_v", self.kernel_kv, self.stride_kv)(qkv[:, :, 2], thw)
    if (self.is_mutable_collection("intermediates")
        and not self.is_initializing()):
      for name, t in (("q", q), ("k", k), ("v", v)):
        self.sow("intermediates", name, t)

    scale = jnp.asarray(head_dim ** -0.5, q.dtype)
    logits = jnp.einsum("bqnd,bknd->bnqk", q * scale, k)
    if self.rel_pos:
      tables = []
      for axis, qs, ks in zip("thw", q_thw, k_thw):
        tables.append(self.param(f"rel_pos_{axis}", dense_init,
                                 (rel_pos_rows(qs, ks), head_dim),
                                 jnp.float32))
      s = int(self.has_cls)
      bias = decomposed_rel_pos_bias(q[:, s:], q_thw, k_thw, *tables)
      logits = logits.at[:, :, s:, s:].add(bias)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    out = jnp.einsum("bnqk,bknd->bqnd", weights.astype(v.dtype), v)
    if self.residual_pooling:
      if self.has_cls:
        out = out.at[:, 1:].add(q[:, 1:])
      else:
        out = out + q
    out = out.reshape(batch, out.shape[1], self.dim_out)
    out = nn.Dense(self.dim_out, dtype=self.dtype, kernel_init=dense_init,
                   name="proj")(out)
    return out, q_thw


class MultiScaleBlock(nn.Module):
  """x + DropPath(MHPA(LN(x))) then x + DropPath(MLP(LN(x))), pooled skip.

  `__call__(x, thw, deterministic=True)` -> (x, thw after Q pooling).
  """
  dim_out: int
  num_heads: int
  stride_q: Sequence[int] = (1, 1, 1)
  stride_kv: Sequence[int] = (1, 1, 1)
  pool_kernel: Sequence[int] = (3, 3, 3)
  has_cls: bool = True
  rel_pos: bool = True
  residual_pooling: bool = True
  mlp_ratio: float = 4.0
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32
  pool_impl: str = "auto"

  @nn.compact
  def __call__(self, x, thw, *, deterministic: bool = True):
    dim = x.shape[-1]
    x_norm = nn.LayerNorm(LN_EPS, dtype=self.dtype, name="norm1")(x)
    y, new_thw = PoolingAttention(
        self.dim_out, self.num_heads, self.pool_kernel, self.pool_kernel,
        self.stride_q, self.stride_kv, self.has_cls, self.rel_pos,
        self.residual_pooling, self.dtype, self.pool_impl,
        name="attention")(x_norm, thw)
    if dim != self.dim_out:   # channel expansion in the attention (MViTv2)
      x = nn.Dense(self.dim_out, dtype=self.dtype, kernel_init=dense_init,
                   name="proj")(x_norm)
    if math.prod(self.stride_q) > 1:
      x = self._pool_skip(x, thw, new_thw)
    x = x + DropPath()(y, self.drop_path_rate, deterministic=deterministic)
    y = nn.LayerNorm(LN_EPS, dtype=self.dtype, name="norm2")(x)
    y = MlpBlock(int(self.dim_out * self.mlp_ratio), dtype=self.dtype,
                 approximate_gelu=False, name="mlp")(
                     y, deterministic=deterministic)
    x = x + DropPath()(y, self.drop_path_rate, deterministic=deterministic)
    return x, new_thw

  def _pool_skip(self, x, thw, new_thw):
    kernel = [s + 1 if s > 1 else s for s in self.stride_q]
    s = int(self.has_cls)
    grid = x[:, s:].reshape((x.shape[0],) + tuple(thw) + (x.shape[-1],))
    grid = max_pool3d(grid, kernel, self.stride_q)
    if grid.shape[1:4] != tuple(new_thw):
      raise ValueError(f"skip max-pool gives {grid.shape[1:4]} tokens but the "
                       f"pooled query {tuple(new_thw)}: use an odd pool "
                       f"kernel and stride 1 or 2")
    grid = grid.reshape(x.shape[0], -1, x.shape[-1])
    return jnp.concatenate([x[:, :1], grid], axis=1) if s else grid
