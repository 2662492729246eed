"""Parameter counts and XLA cost analysis of configured models.

Used by `tools/model_table` and `tools/benchmark`. FLOPs come from XLA's cost
analysis of the compiled, unrolled computation; papers quote multiply-adds,
which are half of XLA's flops.
"""
import jax
import jax.numpy as jnp

from vidjax import steps
from vidjax.data import datasets
from vidjax.registry import build_model


def configured_model(config):
  """(model, input shape without batch) from a config, without any data."""
  model = build_model(config.model, datasets.num_classes(config.dataset))
  return model, steps.input_shape(config)


def xla_flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per device
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0)) if analysis else 0.0


def count_params(model, shape) -> int:
  x = jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0),
                            "dropout": jax.random.PRNGKey(0)}, x, train=False),
      x)
  return steps.param_count(variables["params"])


def forward_gmacs(model, shape) -> float:
  """GFLOPs per view as multiply-adds (the papers' convention), batch 1."""
  x = jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32)
  variables = jax.eval_shape(
      lambda x: model.init({"params": jax.random.PRNGKey(0),
                            "dropout": jax.random.PRNGKey(0)}, x, train=False),
      x)
  compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
      variables, x).compile()
  return xla_flops(compiled) / 2 / 1e9
