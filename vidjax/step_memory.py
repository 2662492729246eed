"""Per-device memory of a compiled step, read before step 0.

`jax.stages.Compiled.memory_analysis()` reports the buffers XLA assigned to
one device's program (the SPMD-partitioned module, so every figure is per
device): arguments, outputs, temporaries, generated code and the bytes by
which outputs alias donated arguments
(https://docs.jax.dev/en/latest/aot.html, "Ahead-of-time lowering and
compilation"). Their sum, less the aliased bytes, is what the step needs
resident on one device while it runs.

`check_fits` compares that with the device's `memory_stats()["bytes_limit"]`
(reported by GPU and TPU backends; XLA:CPU reports none, so on CPU the check
is skipped unless a limit is given) and turns an out-of-memory at step 1 into
one line before training starts, naming the config keys that lower the need.
"""
from __future__ import annotations

from typing import Any, Optional

from vidjax.errors import VidjaxError

GIB = 1024 ** 3

# The knobs that lower a step's per-device memory, in the order to try them.
REMEDY_KEYS = ('config.model.remat=True (with config.model.scan_layers=True)',
               'config.grad_accum_steps', 'config.sharding=fsdp',
               'config.batch_size')


def memory_bytes(compiled: Any) -> dict:
  """Per-device byte counts of a compiled step (`memory_analysis()`).

  Keys: argument, output, temp, code, alias and total, where total =
  argument + output - alias + temp + code (donated inputs that the outputs
  reuse are counted once).
  """
  m = compiled.memory_analysis()
  if m is None:  # Some backends report nothing.
    return {}
  if isinstance(m, (list, tuple)):  # Older multi-executable form.
    m = m[0]
  out = {
      'argument': int(m.argument_size_in_bytes),
      'output': int(m.output_size_in_bytes),
      'temp': int(m.temp_size_in_bytes),
      'code': int(m.generated_code_size_in_bytes),
      'alias': int(m.alias_size_in_bytes),
  }
  out['total'] = (out['argument'] + out['output'] - out['alias'] + out['temp'] +
                  out['code'])
  return out


def _gib(n: int) -> str:
  return f'{n / GIB:.2f} GiB'


def memory_line(compiled: Any, name: str) -> str:
  """One log line with the per-device memory of the compiled step `name`."""
  b = memory_bytes(compiled)
  if not b:
    return f'{name} step memory: not reported by this backend'
  return (f'{name} step memory per device: {_gib(b["total"])} total '
          f'(arguments {_gib(b["argument"])}, outputs {_gib(b["output"])}, '
          f'aliased {_gib(b["alias"])}, temporaries {_gib(b["temp"])}, '
          f'code {_gib(b["code"])})')


def device_limit(device: Any = None) -> Optional[int]:
  """The device's memory in bytes where the backend reports it, else None."""
  if device is None:
    import jax  # pylint: disable=g-import-not-at-top
    device = jax.local_devices()[0]
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except
    return None
  if not stats or 'bytes_limit' not in stats:
    return None
  return int(stats['bytes_limit'])


def check_fits(compiled: Any, name: str, device: Any = None,
               limit_bytes: Optional[int] = None) -> None:
  """Raises a one-line VidjaxError when step `name` cannot fit one device.

  The limit is `limit_bytes` if given, else the device's reported
  `bytes_limit`; with neither (XLA:CPU) there is nothing to check.
  """
  limit = limit_bytes if limit_bytes is not None else device_limit(device)
  if limit is None:
    return
  b = memory_bytes(compiled)
  if not b or b['total'] <= limit:
    return
  raise VidjaxError(
      f'the {name} step needs {_gib(b["total"])} per device '
      f'({b["total"]} bytes; temporaries {_gib(b["temp"])}) but the device '
      f'has {_gib(limit)} ({limit} bytes): lower it with '
      + ', '.join(REMEDY_KEYS))
