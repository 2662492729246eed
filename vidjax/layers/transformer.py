"""Pre-norm transformer encoder (ViT, Dosovitskiy et al. 2021; used by ViViT).

Block: x + DropPath(MHSA(LN(x))), then x + DropPath(MLP(LN(x))), with dropout
after the attention output and inside the MLP. Stochastic depth (Huang et al.
2016, "Deep Networks with Stochastic Depth") drops a sample's whole residual
branch; as in ViViT/scenic the rate grows linearly from 0 at the first block to
`stochastic_depth` at the last.

`Encoder` stacks `num_layers` blocks and a final LayerNorm. Options:
* `scan_layers=True`: one `nn.scan` over the blocks; parameters are stacked on
  a leading layer axis under `layers/` (faster compiles for deep models on
  accelerators; ~17% slower steps on CPU).
* `remat=True`: `nn.remat` each block (recompute activations in backward),
  saving what `remat_policy` names in `jax.checkpoint_policies`
  (https://docs.jax.dev/en/latest/gradient-checkpointing.html):
  "nothing_saveable" (default: only the block inputs are kept),
  "dots_with_no_batch_dims_saveable" (keep the weight matmuls' outputs,
  recompute attention and elementwise ops), "dots_saveable",
  "everything_saveable", ... (`REMAT_POLICIES`). On XLA:CPU only scanned
  blocks (`scan_layers=True`) lower the temporary memory: XLA's CSE merges
  an unrolled block's recompute with its forward pass (measured, RESULTS.md).
Unrolled parameters live under `block_0 .. block_{L-1}`; stacking those along
a new axis 0 gives exactly the scanned `layers/` tree.

Block variants ("Tweaking Transformers"; defaults reproduce the ViT block):
* `norm="rmsnorm"`: RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer
  Normalization"): y = x / sqrt(eps + mean(x^2)) * gamma, eps 1e-6, no bias
  and no mean subtraction; used for both block norms and the final norm.
* `mlp="swiglu"`: SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"):
  (SiLU(x W1) * x W2) W3 without biases, hidden size `mlp_dim`, so 3 D mlp_dim
  parameters; mlp_dim = 2/3 of a GELU MLP's keeps the parameter count.
* `mlp="moe"`: a mixture of `num_experts` GELU MLPs (each of `mlp_dim`),
  every token routed to its `moe_top_k` (1 or 2) most probable experts
  (Shazeer et al. 2017; Switch, Fedus et al. 2021; see `MoeMlpBlock`). Its
  load-balancing loss is sown into the "aux_loss" collection; see
  `total_aux_loss` for how it reaches a training loss.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.attention import MultiHeadSelfAttention

NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "moe")
AUX_LOSS = "aux_loss"  # collection of the losses blocks sow (MoE balancing)
# Encoder/EncoderBlock options a model config may set to pick a block variant.
BLOCK_VARIANTS = ("norm", "mlp", "num_experts", "moe_top_k")
# Names in jax.checkpoint_policies that are policies (not policy factories).
REMAT_POLICIES = ("nothing_saveable", "everything_saveable", "dots_saveable",
                  "checkpoint_dots", "dots_with_no_batch_dims_saveable",
                  "checkpoint_dots_with_no_batch_dims")


def remat_block(block_cls, policy: str = "nothing_saveable",
                scanned: bool = False):
  """`nn.remat(block_cls)` saving what the named checkpoint policy allows.

  Unrolled blocks keep `prevent_cse=True` (so the recompute is not merged
  with the forward pass); under `nn.scan` the loop already prevents it.
  """
  if policy not in REMAT_POLICIES:
    raise VidjaxError(f"config.model.remat_policy={policy!r}; expected one of "
                      f"{', '.join(REMAT_POLICIES)}")
  fn = (None if policy == "nothing_saveable"  # nn.remat's own default
        else getattr(jax.checkpoint_policies, policy))
  return nn.remat(block_cls, prevent_cse=not scanned, policy=fn)


class DropPath(nn.Module):
  """Per-sample residual-branch dropout; `rate` may be a float or a scalar array."""

  @nn.compact
  def __call__(self, x, rate, *, deterministic: bool):
    if deterministic or (isinstance(rate, (int, float)) and rate == 0.0):
      return x
    keep = 1.0 - rate
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, mask_shape)
    return x * (mask / keep).astype(x.dtype)


class MlpBlock(nn.Module):
  """Dense(mlp_dim) -> GELU -> Dropout -> Dense(width) -> Dropout."""
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  approximate_gelu: bool = True  # False: exact erf GELU (VideoMAE, BERT)

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    width = x.shape[-1]
    dense = lambda features, name: nn.Dense(
        features, dtype=self.dtype, name=name,
        kernel_init=nn.initializers.xavier_uniform(),
        bias_init=nn.initializers.normal(stddev=1e-6))
    x = dense(self.mlp_dim, "fc1")(x)
    x = nn.gelu(x, approximate=self.approximate_gelu)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = dense(width, "fc2")(x)
    return nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)


def make_norm(kind: str, dtype: Any, name: str,
              epsilon: float = 1e-6) -> nn.Module:
  """"layernorm" (ViT) or "rmsnorm" (module docstring)."""
  if kind == "layernorm":
    return nn.LayerNorm(epsilon, dtype=dtype, name=name)
  if kind == "rmsnorm":
    return nn.RMSNorm(epsilon=epsilon, dtype=dtype, name=name)
  raise ValueError(f"norm={kind!r}; expected one of {NORMS}")


class SwiGluBlock(nn.Module):
  """(SiLU(x W1) * x W2) W3, no biases (Shazeer 2020), then Dropout."""
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    dense = lambda features, name: nn.Dense(
        features, use_bias=False, dtype=self.dtype, name=name,
        kernel_init=nn.initializers.xavier_uniform())
    y = nn.silu(dense(self.mlp_dim, "w1")(x)) * dense(self.mlp_dim, "w2")(x)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    y = dense(x.shape[-1], "w3")(y)
    return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)


def route_top_k(probs, top_k: int):
  """Router probabilities (N, E) -> (combine weights (N, E), dispatch (N, E)).

  dispatch[n, e] = 1 when e is one of token n's `top_k` most probable experts.
  Gates: with top_k = 1 the chosen expert's probability (Switch); with
  top_k > 1 the chosen probabilities renormalised to sum to 1 (GShard).
  """
  gates, index = jax.lax.top_k(probs, top_k)
  if top_k > 1:
    gates = gates / jnp.sum(gates, axis=-1, keepdims=True)
  one_hot = jax.nn.one_hot(index, probs.shape[-1], dtype=probs.dtype)
  combine = jnp.einsum("nk,nke->ne", gates, one_hot)
  return combine, jnp.sum(one_hot, axis=1)


def balancing_loss(probs, dispatch, top_k: int):
  """Switch load-balancing loss E * sum_e f_e P_e (Fedus et al. 2021, Eq. 4).

  f_e: fraction of the N*top_k routing slots sent to expert e; P_e: mean
  router probability of e. It is 1 for perfectly uniform routing and E when
  every token goes to one expert with probability 1.
  """
  num_experts = probs.shape[-1]
  fraction = jnp.mean(dispatch, axis=0) / top_k
  return num_experts * jnp.sum(fraction * jnp.mean(probs, axis=0))


class MoeMlpBlock(nn.Module):
  """Mixture of `num_experts` GELU MLPs with top-k routing, on (..., D).

  Router: Dense(E, no bias) in float32 -> softmax over experts; each token's
  output is sum over its top-k experts of gate * expert_MLP(token)
  (`route_top_k`). Experts are computed densely for every token and the
  combine weights zero the unchosen ones (one-hot dispatch: simple, exact, no
  token dropped, no capacity factor; the compute is that of E MLPs -- a
  sparse dispatch, which makes it ~k MLPs, is an accelerator optimisation).
  With one expert this is exactly `MlpBlock` with `experts/fc1/kernel[0]` etc.
  Sows `balancing_loss` as ("aux_loss", "moe_balancing") when that collection
  is mutable. Parameters: router/kernel (D, E); experts/fc1/{kernel (E, D, H),
  bias (E, H)}; experts/fc2/{kernel (E, H, D), bias (E, D)}.
  """
  mlp_dim: int
  num_experts: int = 4
  top_k: int = 1
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  approximate_gelu: bool = True  # as MlpBlock

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    if not 1 <= self.top_k <= min(2, self.num_experts):
      raise ValueError(f"moe_top_k={self.top_k}: expected 1 or 2 and at most "
                       f"num_experts={self.num_experts}")
    width = x.shape[-1]
    tokens = x.reshape(-1, width)
    logits = nn.Dense(self.num_experts, use_bias=False, dtype=jnp.float32,
                      kernel_init=nn.initializers.normal(0.02),
                      name="router")(tokens.astype(jnp.float32))
    probs = jax.nn.softmax(logits, axis=-1)
    combine, dispatch = route_top_k(probs, self.top_k)
    self.sow(AUX_LOSS, "moe_balancing",
             balancing_loss(probs, dispatch, self.top_k))
    y = _Experts(self.num_experts, self.mlp_dim, self.dropout_rate,
                 self.dtype, self.approximate_gelu,
                 name="experts")(tokens, deterministic)
    y = jnp.einsum("ne,ned->nd", combine.astype(y.dtype), y)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    return y.reshape(x.shape[:-1] + (width,))


class _ExpertDense(nn.Module):
  """E independent Dense layers: (N, D_in) or (N, E, D_in) -> (N, E, D_out)."""
  num_experts: int
  features: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    kernel = self.param(
        "kernel", nn.initializers.xavier_uniform(in_axis=-2, out_axis=-1,
                                                 batch_axis=(0,)),
        (self.num_experts, x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.normal(stddev=1e-6),
                      (self.num_experts, self.features), jnp.float32)
    spec = "nd,edh->neh" if x.ndim == 2 else "ned,edh->neh"
    return (jnp.einsum(spec, x.astype(self.dtype), kernel.astype(self.dtype))
            + bias.astype(self.dtype))


class _Experts(nn.Module):
  """E GELU MLPs (MlpBlock's layout) on every token: (N, D) -> (N, E, D)."""
  num_experts: int
  mlp_dim: int
  dropout_rate: float
  dtype: Any
  approximate_gelu: bool

  @nn.compact
  def __call__(self, tokens, deterministic):
    h = _ExpertDense(self.num_experts, self.mlp_dim, self.dtype,
                     name="fc1")(tokens)
    h = nn.gelu(h, approximate=self.approximate_gelu)
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return _ExpertDense(self.num_experts, tokens.shape[-1], self.dtype,
                        name="fc2")(h)


def make_mlp(kind: str, mlp_dim: int, dropout_rate: float, dtype: Any,
             num_experts: int = 4, top_k: int = 1,
             approximate_gelu: bool = True) -> nn.Module:
  """The block's MLP named "mlp": "gelu" | "swiglu" | "moe"."""
  if kind == "gelu":
    return MlpBlock(mlp_dim, dropout_rate, dtype, approximate_gelu,
                    name="mlp")
  if kind == "swiglu":
    return SwiGluBlock(mlp_dim, dropout_rate, dtype, name="mlp")
  if kind == "moe":
    return MoeMlpBlock(mlp_dim, num_experts, top_k, dropout_rate, dtype,
                       approximate_gelu, name="mlp")
  raise ValueError(f"mlp={kind!r}; expected one of {MLPS}")


def total_aux_loss(collections) -> jax.Array:
  """Sum of every loss the blocks sowed (all layers, scanned ones included).

  How the MoE balancing loss reaches training: apply the model with
  `mutable=["aux_loss"]`, e.g.
    logits, state = model.apply(variables, x, train=True, rngs=...,
                                mutable=["aux_loss"])
    loss = cross_entropy + weight * total_aux_loss(state)
  (Switch uses weight 0.01). `collections` may be the returned mutable dict
  or its "aux_loss" entry; an empty one gives 0.
  """
  tree = collections.get(AUX_LOSS, collections) if hasattr(
      collections, "get") else collections
  leaves = jax.tree.leaves(tree)
  return sum((jnp.sum(leaf) for leaf in leaves), jnp.zeros((), jnp.float32))


class EncoderBlock(nn.Module):
  """One pre-norm transformer block on (B, N, D) tokens.

  `__call__(x, drop_path_rate=None)`: the per-call rate (used by `nn.scan`,
  where each layer gets its own traced rate) overrides the attribute.
  With `scan_carry=True` it returns `(x, None)` as `nn.scan` wants.
  `norm`, `mlp`, `num_experts`, `moe_top_k`: see the module docstring.
  """
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  attention_impl: str = "auto"
  deterministic: bool = True
  scan_carry: bool = False
  dtype: Any = jnp.float32
  layer_norm_eps: float = 1e-6
  key_bias: bool = True           # False: q/v biases only (VideoMAE)
  approximate_gelu: bool = True   # False: exact GELU (VideoMAE)
  norm: str = "layernorm"         # | "rmsnorm"
  mlp: str = "gelu"               # | "swiglu" | "moe"
  num_experts: int = 4            # mlp="moe" only
  moe_top_k: int = 1              # mlp="moe" only: 1 or 2

  @nn.compact
  def __call__(self, x, drop_path_rate=None):
    rate = self.drop_path_rate if drop_path_rate is None else drop_path_rate
    det = self.deterministic
    y = make_norm(self.norm, self.dtype, "norm1", self.layer_norm_eps)(x)
    y = MultiHeadSelfAttention(
        num_heads=self.num_heads, dropout_rate=self.attention_dropout_rate,
        attention_impl=self.attention_impl, dtype=self.dtype,
        key_bias=self.key_bias, name="attention")(y, deterministic=det)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=det)
    x = x + DropPath()(y, rate, deterministic=det)
    y = make_norm(self.norm, self.dtype, "norm2", self.layer_norm_eps)(x)
    y = make_mlp(self.mlp, self.mlp_dim, self.dropout_rate, self.dtype,
                 self.num_experts, self.moe_top_k,
                 self.approximate_gelu)(y, deterministic=det)
    x = x + DropPath()(y, rate, deterministic=det)
    return (x, None) if self.scan_carry else x


class Encoder(nn.Module):
  """`num_layers` pre-norm blocks on (B, N, D) tokens, then a final LayerNorm.

  Position embeddings / CLS tokens are the caller's business.
  """
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  attention_impl: str = "auto"
  scan_layers: bool = False
  remat: bool = False
  remat_policy: str = "nothing_saveable"  # REMAT_POLICIES
  dtype: Any = jnp.float32
  # Any block with EncoderBlock's constructor options and a
  # `__call__(x, drop_path_rate=None)`, e.g. the factorised blocks of
  # `vidjax.layers.factorized_attention`; scanning needs `EncoderBlock`.
  block_cls: Any = None
  # Extra constructor options for every block, as ((name, value), ...) pairs,
  # e.g. (("key_bias", False), ("layer_norm_eps", 1e-12)) for VideoMAE.
  block_options: Any = ()
  final_norm: bool = True         # False: return the last block's output
  layer_norm_eps: float = 1e-6    # of the final LayerNorm
  # Block variants (module docstring); non-default values need EncoderBlock.
  norm: str = "layernorm"         # blocks' and final norm: | "rmsnorm"
  mlp: str = "gelu"               # | "swiglu" | "moe"
  num_experts: int = 4
  moe_top_k: int = 1

  def _layer_rates(self):
    """Linearly increasing drop-path rates, 0 at the first block."""
    denom = max(self.num_layers - 1, 1)
    return [self.stochastic_depth * i / denom for i in range(self.num_layers)]

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    block_kwargs = dict(
        num_heads=self.num_heads, mlp_dim=self.mlp_dim,
        dropout_rate=self.dropout_rate,
        attention_dropout_rate=self.attention_dropout_rate,
        attention_impl=self.attention_impl, deterministic=not train,
        dtype=self.dtype, **dict(self.block_options))
    block_cls = self.block_cls or EncoderBlock
    if self.scan_layers and block_cls is not EncoderBlock:
      raise ValueError("scan_layers needs EncoderBlock blocks")
    if block_cls is EncoderBlock:
      variant = dict(norm=self.norm, mlp=self.mlp,
                     num_experts=self.num_experts, moe_top_k=self.moe_top_k)
      for key, value in variant.items():  # block_options take precedence
        block_kwargs.setdefault(key, value)
    elif (self.norm, self.mlp) != ("layernorm", "gelu"):
      raise ValueError(f"norm={self.norm!r} / mlp={self.mlp!r} need "
                       "EncoderBlock blocks")
    if self.remat:
      block_cls = remat_block(block_cls, self.remat_policy, self.scan_layers)

    if self.scan_layers and self.num_layers > 0:
      rates: Optional[jax.Array] = None
      if self.stochastic_depth > 0.0:
        rates = jnp.asarray(self._layer_rates(), jnp.float32)
      scanned = nn.scan(
          block_cls, variable_axes={"params": 0, AUX_LOSS: 0},
          split_rngs={"params": True, "dropout": True},
          in_axes=0, length=self.num_layers)
      x, _ = scanned(scan_carry=True, name="layers", **block_kwargs)(x, rates)
    else:
      for i, rate in enumerate(self._layer_rates()):
        x = block_cls(drop_path_rate=rate, name=f"block_{i}",
                      **block_kwargs)(x)
    if not self.final_norm:
      return x
    return make_norm(self.norm, self.dtype, "norm", self.layer_norm_eps)(x)
