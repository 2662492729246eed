"""Multi-head self-attention (Vaswani et al. 2017, "Attention Is All You Need").

Separate query/key/value projections (`DenseGeneral` to (heads, head_dim)),
scaled dot-product attention, and an output projection back to the model
width. Two interchangeable implementations of the attention core share the
same parameters:

* ``"einsum"`` (default): ``softmax(Q K^T / sqrt(d)) V`` written with
  ``jnp.einsum``. Fastest on CPU for this codebase's sizes.
* ``"xla_fused"``: ``jax.nn.dot_product_attention`` with ``implementation=None``
  (plain XLA on CPU, a fused kernel where the backend has one). It has no
  attention-dropout; when attention dropout is active (train=True and
  ``dropout_rate > 0``) the einsum path is used instead.

Parameters are float32; ``dtype`` is the compute dtype. The softmax is always
taken in float32.
"""
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

ATTENTION_IMPLS = ("einsum", "xla_fused")
# Collection the softmax weights (..., heads, N, N) are sown into when an
# apply makes it mutable (vidjax.viz attention rollout); not at init, and
# never computed otherwise.
ATTENTION_WEIGHTS = "attention_weights"


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


def xla_fused_attention(query, key, value):
  """`jax.nn.dot_product_attention` for (..., N, heads, head_dim) inputs."""
  lead = query.shape[:-3]
  flat = lambda t: t.reshape((-1,) + t.shape[-3:])  # the op wants (B, N, H, d)
  out = jax.nn.dot_product_attention(
      flat(query), flat(key), flat(value), implementation=None)
  return out.reshape(lead + out.shape[-3:])


class MultiHeadSelfAttention(nn.Module):
  """Multi-head self-attention over the second-to-last axis of (..., N, D).

  Attributes:
    num_heads: number of heads; the input width must be divisible by it.
    dropout_rate: dropout on the attention weights (train only).
    attention_impl: "einsum" or "xla_fused" (see the module docstring).
    dtype: compute dtype; parameters stay float32.
    kernel_init: initialiser of the q/k/v/out kernels.
    key_bias: False drops the key projection's bias (VideoMAE's q/v-only
      biases; a key bias adds the same logit to every key of a query, so the
      softmax never depends on it).
  """
  num_heads: int
  dropout_rate: float = 0.0
  attention_impl: str = "einsum"
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
    dropout_active = self.dropout_rate > 0.0 and not deterministic
    if self.attention_impl == "xla_fused" and not dropout_active:
      out = xla_fused_attention(query, key, value)
    else:
      dropout_fn = None
      if dropout_active:
        dropout_fn = lambda w: nn.Dropout(self.dropout_rate)(
            w, deterministic=False)
      out = einsum_attention(query, key, value, dropout_fn=dropout_fn)

    return nn.DenseGeneral(
        features=width, axis=(-2, -1), dtype=self.dtype,
        kernel_init=self.kernel_init, name="out")(out)
