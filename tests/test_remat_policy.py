"""model.remat_policy: named jax.checkpoint_policies on scanned blocks (#16).

A policy that saves less leaves less temporary memory in the compiled
forward + backward (memory_analysis), and never changes the numbers.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax import step_memory
from vidjax.errors import VidjaxError
from vidjax.layers.transformer import REMAT_POLICIES, Encoder

X = jax.random.normal(jax.random.key(0), (4, 64, 64))
PROBE = jax.random.normal(jax.random.key(2), (4, 64, 64))


def _grad_step(**options):
  enc = Encoder(num_layers=4, num_heads=4, mlp_dim=256, scan_layers=True,
                **options)
  params = enc.init(jax.random.key(1), X)
  loss = lambda p, x: jnp.sum(enc.apply(p, x) * PROBE)  # noqa: E731
  step = jax.jit(jax.value_and_grad(loss))
  temp = step_memory.memory_bytes(step.lower(params, X).compile())["temp"]
  return temp, step(params, X)


def _max_rel(a, b) -> float:
  a, b = jax.tree.leaves(a), jax.tree.leaves(b)
  diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(a, b))
  return diff / max(float(np.max(np.abs(np.asarray(y)))) for y in b)


@pytest.mark.fast_compile  # five compiled steps (21 -> 14 CPU-s); same ladder
def test_policies_order_temp_memory_and_keep_the_gradients():
  base_temp, (base_loss, base_grads) = _grad_step()
  temps = {}
  for policy in ("nothing_saveable", "dots_with_no_batch_dims_saveable",
                 "dots_saveable", "everything_saveable"):
    temps[policy], (loss, grads) = _grad_step(remat=True, remat_policy=policy)
    np.testing.assert_allclose(loss, base_loss, rtol=1e-6)
    assert _max_rel(grads, base_grads) < 1e-6, policy
  # Saving less keeps less: each step down the ladder lowers the temporary.
  assert (temps["nothing_saveable"]
          < temps["dots_with_no_batch_dims_saveable"]
          < temps["dots_saveable"]
          <= temps["everything_saveable"])
  assert temps["everything_saveable"] == base_temp  # saves all: as no remat
  assert temps["nothing_saveable"] < base_temp / 2


def test_unknown_policy_is_one_line_naming_the_key():
  with pytest.raises(VidjaxError) as e:
    _grad_step(remat=True, remat_policy="save_some")
  assert "config.model.remat_policy='save_some'" in str(e.value)
  assert "\n" not in str(e.value)
  assert set(REMAT_POLICIES) <= set(dir(jax.checkpoint_policies))
