"""vidjax/checkpoint.py's save on one host with 8 devices: a replicated state
is written without compiling anything (no per-replica slices), and reads
back exactly."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vidjax import checkpoint, steps

# Shapes no other test uses: jit's in-memory cache cannot hide a compile.
SHAPES = {"a": (8, 97), "b": (40, 3, 7), "c": (24,), "d": (16, 5, 9)}


def _lowerings(fn):
  """How many programs JAX lowered while `fn` ran (cache hits included:
  the persistent cache is consulted after lowering)."""
  count = [0]

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
      count[0] += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return count[0]


def _state():
  mesh = Mesh(np.array(jax.devices()), ("data",))
  replicated = NamedSharding(mesh, PartitionSpec())
  rng = np.random.default_rng(0)
  params = {k: jax.device_put(rng.standard_normal(s).astype(np.float32),
                              replicated) for k, s in SHAPES.items()}
  tx = optax.sgd(0.1)
  zero = jnp.zeros((), jnp.int32)
  state = steps.TrainState(
      step=jnp.asarray(3, jnp.int32), params=params, batch_stats={},
      opt_state=tx.init(params), rng=jax.random.key(0), skipped_steps=zero,
      nonfinite_streak=zero, apply_fn=None, tx=tx)
  return jax.device_put(state, replicated)


def test_replicated_save_on_8_devices_compiles_nothing_and_restores(
    tmp_path):
  assert jax.device_count() == 8
  state = _state()
  assert all(len(x.sharding.device_set) == 8 and x.sharding.is_fully_replicated
             for x in jax.tree.leaves(state.params))
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2)
  # The finiteness check before a save: one program for the whole tree.
  assert _lowerings(lambda: checkpoint._all_finite(state.params)) == 1
  # Orbax's replica-parallel default lowers one slice program per shape and
  # replica (32 here).
  meta = {"param_shapes": steps.flat_shapes(state.params)}
  assert _lowerings(lambda: (ckpt.save(state, meta), ckpt.wait())) == 0
  restored = ckpt.restore(jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
      if isinstance(x, jax.Array) else x, state), 3)
  ckpt.close()
  for k in SHAPES:
    np.testing.assert_array_equal(restored.params[k], state.params[k])
  assert int(restored.step) == 3
