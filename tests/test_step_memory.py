"""vidjax.step_memory: the per-device memory line and the fits check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vidjax import step_memory
from vidjax.errors import VidjaxError


def _compiled(n=256, donate=False):
  f = jax.jit(lambda x, w: (jnp.tanh(x @ w) @ w, w),
              donate_argnums=(1,) if donate else ())
  x = jax.ShapeDtypeStruct((n, n), jnp.float32)
  return f.lower(x, x).compile()


def test_bytes_match_the_shapes():
  n = 256
  b = step_memory.memory_bytes(_compiled(n))
  assert b['argument'] == 2 * n * n * 4
  # Outputs: the two arrays plus XLA's small tuple table (pointers).
  assert 2 * n * n * 4 <= b['output'] <= 2 * n * n * 4 + 64
  assert b['total'] == (b['argument'] + b['output'] - b['alias'] + b['temp'] +
                        b['code'])
  donated = step_memory.memory_bytes(_compiled(n, donate=True))
  assert donated['alias'] == n * n * 4  # w's buffer is reused for the output w
  assert donated['total'] == b['total'] - n * n * 4


def test_bytes_are_per_device_under_sharding():
  devices = np.array(jax.devices())
  mesh = Mesh(devices, ('data',))
  n = 64 * len(devices)
  sh = NamedSharding(mesh, P('data'))
  f = jax.jit(lambda x: x * 2.0, in_shardings=sh, out_shardings=sh)
  b = step_memory.memory_bytes(
      f.lower(jax.ShapeDtypeStruct((n, 128), jnp.float32)).compile())
  assert b['argument'] == n * 128 * 4 // len(devices)


def test_memory_line_names_the_step_and_total():
  c = _compiled()
  line = step_memory.memory_line(c, 'train')
  total = step_memory.memory_bytes(c)['total']
  assert line.startswith('train step memory per device: ')
  assert f'{total / 1024**3:.2f} GiB total' in line
  assert '\n' not in line


def test_check_fits_raises_one_line_with_the_keys():
  c = _compiled()
  total = step_memory.memory_bytes(c)['total']
  step_memory.check_fits(c, 'train', limit_bytes=total)  # exactly fits
  with pytest.raises(VidjaxError) as e:
    step_memory.check_fits(c, 'eval', limit_bytes=total - 1)
  msg = str(e.value)
  assert '\n' not in msg
  assert 'eval step' in msg and str(total) in msg and str(total - 1) in msg
  for key in ('config.model.remat', 'config.grad_accum_steps',
              'config.sharding=fsdp', 'config.batch_size'):
    assert key in msg


def test_check_fits_skips_without_a_reported_limit():
  class NoStats:
    def memory_stats(self):
      return None

  class Small:
    def memory_stats(self):
      return {'bytes_limit': 1}

  c = _compiled()
  step_memory.check_fits(c, 'train', device=NoStats())  # CPU: nothing to check
  with pytest.raises(VidjaxError):
    step_memory.check_fits(c, 'train', device=Small())
