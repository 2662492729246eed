"""Parameter counts and FLOPs of configured models.

Used by `tools/model_table` and `tools/benchmark`. Two counts of a forward
pass, in G multiply-adds (the papers' convention):
* `kernel_gmacs`: every convolution costs output size x kernel volume x input
  channels per group and every matmul output size x contraction size, read off
  the jaxpr -- as the papers count, zero padding included;
* `forward_gmacs`: XLA's cost analysis of the compiled computation (flops / 2).
  XLA skips products that only touch zero padding, so for padded convolutions
  on small feature maps it reads low (C3D at 16x112x112: 33.0 vs 38.5).
`kernel_gmacs` multiplies a scan's body by its length (scanned layers,
recurrent cells); XLA's cost analysis sees the loop body once, so count
`forward_gmacs` on an unrolled model. A model with a `depthwise_impl` field
(X3D) is counted in its "conv" form: its CPU form, "shifts", computes the
depthwise convs with element-wise products that neither count sees.

Model FLOPs utilisation (MFU; Chowdhery et al. 2022, "PaLM", appendix B) of
a train step: `train_flops_per_clip` (kernel multiply-adds x 2 FLOPs x 3 for
forward + backward, rematerialisation not counted) x clips per second over
(devices x `device_peak_flops`). The count is the model's, independent of the
device count and of scanned layers; XLA's `cost_analysis()` of a sharded
step is per device and counts a scanned layer once, so it is not used.
"""
import math

import jax
import jax.numpy as jnp

from vidjax import steps
from vidjax.data import datasets
from vidjax.registry import build_model


# Dense bf16 peak FLOP/s per device, by `device.device_kind` (vendor figures;
# XLA:CPU has none).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12, "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12, "NVIDIA A100 80GB PCIe": 312e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5": 459e12,
    "TPU v5p": 459e12, "TPU v6 lite": 918e12}


def device_peak_flops(device, given: float = 0.0):
  """FLOP/s of one device: `given` when > 0, else PEAK_FLOPS (None if the
  kind is unknown)."""
  if given and given > 0:
    return float(given)
  return PEAK_FLOPS.get(getattr(device, "device_kind", ""))


def train_flops_per_clip(forward_macs: float) -> float:
  """Train-step FLOPs of one clip from its forward multiply-adds: x 2 FLOPs
  per multiply-add, x 3 for forward + backward (the backward pass costs about
  twice the forward)."""
  return forward_macs * 2 * 3


def mfu(flops_per_step: float, step_seconds: float, num_devices: int,
        peak_flops) -> float:
  """Model FLOPs utilisation, or None when the peak is unknown."""
  if not peak_flops:
    return None
  return flops_per_step / step_seconds / (num_devices * peak_flops)


def configured_model(config):
  """(model, input shape without batch) from a config, without any data
  (a paper's dataset: the paper's class count)."""
  name = config.dataset.name
  model = build_model(config.model, datasets.PAPER_NUM_CLASSES[name]
                      if name in datasets.PAPER_NUM_CLASSES
                      else datasets.num_classes(config.dataset))
  return model, steps.input_shape(config)


def xla_flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per device
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0)) if analysis else 0.0


def _counted(model):
  """`model`, or its "conv" form if it has a `depthwise_impl` field (see the
  module docstring): each depthwise conv is then a grouped
  `conv_general_dilated`, output size x kernel volume multiply-adds."""
  if "depthwise_impl" in getattr(model, "__dataclass_fields__", {}):
    return model.clone(depthwise_impl="conv")
  return model


def count_params(model, shape) -> int:
  x = jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32)
  return steps.param_count(_abstract_variables(model, x)["params"])


def _abstract_variables(model, x):
  return jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0),
                            "dropout": jax.random.PRNGKey(0)}, x, train=False),
      x)


def kernel_gmacs(model, shape) -> float:
  """G multiply-adds per view at batch 1, counted as the papers do."""
  model = _counted(model)
  x = jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32)
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(
      _abstract_variables(model, x), x)
  return _jaxpr_macs(jaxpr.jaxpr) / 1e9


def _jaxpr_macs(jaxpr) -> float:
  total = 0.0
  for eqn in jaxpr.eqns:
    out = math.prod(eqn.outvars[0].aval.shape)
    if eqn.primitive.name == "conv_general_dilated":
      rhs = eqn.invars[1].aval.shape
      out_dim = eqn.params["dimension_numbers"].rhs_spec[0]
      total += out * math.prod(rhs) / rhs[out_dim]
    elif eqn.primitive.name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += out * math.prod(lhs[d] for d in contract)
    # A scan's body runs `length` times (nn.scan layers, recurrent cells).
    repeat = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
    for param in eqn.params.values():
      sub = getattr(param, "jaxpr", param)  # pjit, remat, custom_vjp bodies
      if hasattr(sub, "eqns"):
        total += repeat * _jaxpr_macs(sub)
  return total


def forward_gmacs(model, shape) -> float:
  """G multiply-adds per view at batch 1 from XLA's cost analysis."""
  model = _counted(model)
  x = jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32)
  variables = _abstract_variables(model, x)
  compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
      variables, x).compile()
  return xla_flops(compiled) / 2 / 1e9
