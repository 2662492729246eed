"""Paper configs compute in bfloat16 with float32 parameters and optimizer
state (issue #16); shapes only, nothing compiled."""
import jax
import jax.numpy as jnp
import pytest

from tools.memory_table import paper_variants
from vidjax import costs, optim, steps

PAPER = dict(paper_variants())


def test_every_paper_variant_computes_in_bfloat16():
  assert len(PAPER) >= 20
  assert {n for n, c in PAPER.items()
          if c.model.get("dtype") != "bfloat16"} == set()


@pytest.mark.parametrize("name", ["videomae_finetune:k400_vit_b",
                                  "videomae_pretrain:k400_vit_l",
                                  "slowfast:8x8", "vivit_factorized:k400"])
def test_params_and_opt_state_stay_float32(name):
  config = PAPER[name]
  model, shape = costs.configured_model(config)
  schedule = optim.make_schedule(config.optimizer, 100, 10)
  tx = optim.make_optimizer(config.optimizer, schedule)
  state = jax.eval_shape(
      lambda: steps.create_state(model, tx, config, jax.random.key(0)))
  floats = lambda tree: [x.dtype for x in jax.tree.leaves(tree)  # noqa: E731
                         if jnp.issubdtype(x.dtype, jnp.floating)]
  assert set(floats(state.params)) == {jnp.dtype(jnp.float32)}
  assert set(floats(state.opt_state)) == {jnp.dtype(jnp.float32)}
  assert set(floats(state.batch_stats)) <= {jnp.dtype(jnp.float32)}
  # The forward pass multiplies in bfloat16: every matmul / convolution.
  x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(
      variables, x)
  heavy = [e for e in _eqns(jaxpr.jaxpr)
           if e.primitive.name in ("dot_general", "conv_general_dilated")]
  assert heavy
  bf16 = [e for e in heavy if e.invars[0].aval.dtype == jnp.bfloat16]
  # Only the float32 classifier head / router may stay float32.
  assert len(bf16) >= len(heavy) - 2, (len(bf16), len(heavy))


def _eqns(jaxpr):
  for e in jaxpr.eqns:
    yield e
    for p in e.params.values():
      sub = getattr(p, "jaxpr", p)
      if hasattr(sub, "eqns"):
        yield from _eqns(sub)
