"""Multi-head self-attention (Vaswani et al. 2017, "Attention Is All You Need").

Separate query/key/value projections (`DenseGeneral` to (heads, head_dim)),
scaled dot-product attention, and an output projection back to the model
width. The attention core has interchangeable implementations sharing the
same parameters (`attention_impl`):

* ``"einsum"``: ``softmax(Q K^T / sqrt(d)) V`` written with ``jnp.einsum``;
  it materialises the (heads, N, N) scores. Fastest on CPU at this
  codebase's sizes.
* ``"cudnn"``: cuDNN's fused flash attention through
  ``jax.nn.dot_product_attention(..., implementation="cudnn")`` (Dao et al.
  2022, "FlashAttention"; https://docs.jax.dev/en/latest/_autosummary/
  jax.nn.dot_product_attention.html). CUDA GPUs only; bfloat16/float16
  inputs and head_dim a multiple of 8, at most 256.
* ``"splash"``: Pallas splash attention on TPU
  (``jax.experimental.pallas.ops.tpu.splash_attention``). N is padded to
  the 128-token block and the pad is masked with segment ids.
* ``"xla_fused"``: ``jax.nn.dot_product_attention`` with
  ``implementation="xla"`` (XLA's own composition: NOT a flash kernel).
* ``"auto"`` (default): picked at trace time by `resolve_impl` from
  ``jax.default_backend()``: cpu -> einsum; gpu -> cudnn when the dtype and
  head_dim allow it, else einsum; tpu -> splash.

None of the fused kernels has attention dropout: when it is active
(train=True and ``dropout_rate > 0``) the einsum path is used instead.
Parameters are float32; ``dtype`` is the compute dtype. The einsum softmax is
always taken in float32.
"""
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError

ATTENTION_IMPLS = ("auto", "einsum", "cudnn", "splash", "xla_fused")
SPLASH_BLOCK = 128  # splash kernel block (tokens) along q and kv
# Collection the softmax weights (..., heads, N, N) are sown into when an
# apply makes it mutable (vidjax.viz attention rollout); not at init, and
# never computed otherwise.
ATTENTION_WEIGHTS = "attention_weights"
_KEY = "config.model.attention_impl"


def cudnn_unsupported(dtype, head_dim: int) -> str:
  """Why cuDNN flash attention cannot take these inputs ('' if it can)."""
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
    return (f"needs bfloat16 or float16 compute, got {jnp.dtype(dtype).name} "
            "(set config.model.dtype=bfloat16)")
  if head_dim % 8 or head_dim > 256:
    return f"needs head_dim a multiple of 8 and at most 256, got {head_dim}"
  return ""


def resolve_impl(impl: str, platform: str, dtype, head_dim: int) -> str:
  """The attention implementation to run: `impl` with "auto" resolved.

  A pure function of the platform (`jax.default_backend()`: "cpu", "gpu",
  "cuda", "rocm" or "tpu"), the compute dtype and the head width, so the
  choice is testable without the hardware. An explicit choice the platform
  or inputs cannot run is one-line `VidjaxError`.
  """
  if impl not in ATTENTION_IMPLS:
    raise VidjaxError(f"{_KEY}={impl!r}; expected one of {ATTENTION_IMPLS}")
  gpu = platform in ("gpu", "cuda", "rocm")
  if impl == "auto":
    if gpu and platform != "rocm" and not cudnn_unsupported(dtype, head_dim):
      return "cudnn"
    return "splash" if platform == "tpu" else "einsum"
  if impl == "cudnn":
    if not gpu or platform == "rocm":
      raise VidjaxError(f"{_KEY}=cudnn needs a CUDA GPU, this backend is "
                        f"{platform} (use auto or einsum)")
    why = cudnn_unsupported(dtype, head_dim)
    if why:
      raise VidjaxError(f"{_KEY}=cudnn {why}")
  if impl == "splash" and platform != "tpu":
    raise VidjaxError(f"{_KEY}=splash needs a TPU, this backend is "
                      f"{platform} (use auto or einsum)")
  return impl


def einsum_attention(query, key, value, *, dropout_fn=None):
  """softmax(q k^T / sqrt(d)) v for (..., N, heads, head_dim) inputs.

  Args:
    query, key, value: arrays of shape (..., N, heads, head_dim).
    dropout_fn: optional callable applied to the attention weights.

  Returns:
    (..., N, heads, head_dim) array in the dtype of ``query``.
  """
  head_dim = query.shape[-1]
  query = query * jnp.asarray(head_dim ** -0.5, query.dtype)
  logits = jnp.einsum("...qhd,...khd->...hqk", query, key)
  weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  weights = weights.astype(value.dtype)
  if dropout_fn is not None:
    weights = dropout_fn(weights)
  return jnp.einsum("...hqk,...khd->...qhd", weights, value)


def _flat(t):
  """(..., N, heads, d) -> (B, N, heads, d), the layout the kernels want."""
  return t.reshape((-1,) + t.shape[-3:])


def dot_product_attention(query, key, value, implementation: str):
  """`jax.nn.dot_product_attention` ("xla" or "cudnn") on (..., N, h, d)."""
  out = jax.nn.dot_product_attention(_flat(query), _flat(key), _flat(value),
                                     implementation=implementation)
  return out.reshape(query.shape[:-3] + out.shape[-3:])


def splash_padding(n: int, block: int = SPLASH_BLOCK):
  """(padded length, segment ids): N rounded up to the block; the pad is
  segment 1, so real queries see only real keys (segment 0)."""
  padded = -(-n // block) * block
  return padded, (np.arange(padded) >= n).astype(np.int32)


@functools.lru_cache(maxsize=32)
def _splash_kernel(heads: int, padded: int, block: int, interpret: bool):
  # pylint: disable=g-import-not-at-top
  from jax.experimental.pallas.ops.tpu.splash_attention import (
      splash_attention_kernel as kernel_lib, splash_attention_mask as mask_lib)
  mask = mask_lib.MultiHeadMask([mask_lib.FullMask((padded, padded))] * heads)
  b = min(block, padded)
  sizes = kernel_lib.BlockSizes(
      block_q=b, block_kv=b, block_kv_compute=b, block_q_dkv=b,
      block_kv_dkv=b, block_kv_dkv_compute=b, block_q_dq=b, block_kv_dq=b)
  return kernel_lib, kernel_lib.make_splash_mha(
      mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
      interpret=interpret)


def splash_attention(query, key, value, *, block: int = SPLASH_BLOCK,
                     interpret: bool = False):
  """Pallas splash attention (TPU) for (..., N, heads, head_dim) inputs.

  The kernel takes (heads, N, d) per example with no 1/sqrt(d) scale: q is
  pre-scaled, N padded to a multiple of `block`, the pad masked by segment
  ids (`splash_padding`), and the kernel vmapped over the flattened batch.
  `interpret=True` runs the Pallas interpreter (any backend; tests).
  """
  n, heads, head_dim = query.shape[-3:]
  padded, seg = splash_padding(n, block)
  query = query * jnp.asarray(head_dim ** -0.5, query.dtype)

  def prep(t):  # (B, N, h, d) -> (B, h, padded, d)
    t = jnp.pad(_flat(t), ((0, 0), (0, padded - n), (0, 0), (0, 0)))
    return jnp.swapaxes(t, 1, 2)

  kernel_lib, kernel = _splash_kernel(heads, padded, block, interpret)
  seg = jnp.asarray(seg)
  segment_ids = kernel_lib.SegmentIds(q=seg, kv=seg)
  out = jax.vmap(lambda q, k, v: kernel(q, k, v, segment_ids=segment_ids))(
      prep(query), prep(key), prep(value))
  out = jnp.swapaxes(out, 1, 2)[:, :n].astype(value.dtype)
  return out.reshape(query.shape[:-3] + out.shape[-3:])


def attend(query, key, value, impl: str, dropout_fn=None):
  """Attention over axis -3 of (..., N, heads, head_dim) q/k/v with `impl`
  resolved for this backend at trace time (`resolve_impl`)."""
  if dropout_fn is not None:  # no fused kernel has attention dropout
    return einsum_attention(query, key, value, dropout_fn=dropout_fn)
  impl = resolve_impl(impl, jax.default_backend(), query.dtype,
                      query.shape[-1])
  if impl == "cudnn":
    return dot_product_attention(query, key, value, "cudnn")
  if impl == "splash":
    return splash_attention(query, key, value)
  if impl == "xla_fused":
    return dot_product_attention(query, key, value, "xla")
  return einsum_attention(query, key, value)


class MultiHeadSelfAttention(nn.Module):
  """Multi-head self-attention over the second-to-last axis of (..., N, D).

  Attributes:
    num_heads: number of heads; the input width must be divisible by it.
    dropout_rate: dropout on the attention weights (train only).
    attention_impl: one of ATTENTION_IMPLS (see the module docstring).
    dtype: compute dtype; parameters stay float32.
    kernel_init: initialiser of the q/k/v/out kernels.
    key_bias: False drops the key projection's bias (VideoMAE's q/v-only
      biases; a key bias adds the same logit to every key of a query, so the
      softmax never depends on it).
  """
  num_heads: int
  dropout_rate: float = 0.0
  attention_impl: str = "auto"
  dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.xavier_uniform()
  key_bias: bool = True

  @nn.compact
  def __call__(self, x, *, deterministic: bool = True):
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl={self.attention_impl!r}; "
                       f"expected one of {ATTENTION_IMPLS}")
    width = x.shape[-1]
    if width % self.num_heads:
      raise ValueError(f"width {width} not divisible by {self.num_heads} heads")
    head_dim = width // self.num_heads
    project = lambda name, bias=True: nn.DenseGeneral(
        features=(self.num_heads, head_dim), dtype=self.dtype,
        kernel_init=self.kernel_init, use_bias=bias, name=name)
    query = project("query")(x)
    key = project("key", self.key_bias)(x)
    value = project("value")(x)

    if (self.is_mutable_collection(ATTENTION_WEIGHTS)
        and not self.is_initializing()):
      logits = jnp.einsum("...qhd,...khd->...hqk", query * jnp.asarray(
          head_dim ** -0.5, query.dtype), key)
      self.sow(ATTENTION_WEIGHTS, "weights",
               jax.nn.softmax(logits.astype(jnp.float32), axis=-1))
    dropout_fn = None
    if self.dropout_rate > 0.0 and not deterministic:
      dropout_fn = lambda w: nn.Dropout(self.dropout_rate)(
          w, deterministic=False)
    out = attend(query, key, value, self.attention_impl, dropout_fn)

    return nn.DenseGeneral(
        features=width, axis=(-2, -1), dtype=self.dtype,
        kernel_init=self.kernel_init, name="out")(out)
