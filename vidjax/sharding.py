"""Device mesh and placement: jit + `jax.sharding`, no pmap.

One mesh axis, `data`: batches are split along it, parameters and optimizer
state are replicated. The same code runs on one CPU, 8 forced host devices,
one GPU, or many hosts (each process passes only its own slice of the batch).
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vidjax.errors import VidjaxError

DATA = "data"


def make_mesh(num_devices: int = -1) -> Mesh:
  """A 1-D `data` mesh over all devices, or over the first `num_devices`."""
  devices = jax.devices()
  if num_devices > 0:
    if jax.process_count() > 1:
      raise VidjaxError("config.num_devices must be -1 on multi-host runs")
    if num_devices > len(devices):
      raise VidjaxError(f"config.num_devices={num_devices} but only "
                        f"{len(devices)} devices are visible")
    devices = devices[:num_devices]
  return Mesh(np.array(devices), (DATA,))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "batch_size"):
  n = mesh.devices.size
  if batch_size % n or batch_size % jax.process_count():
    raise VidjaxError(f"config.{key}={batch_size} is not divisible by the "
                      f"device count ({n})")


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA))


def put_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's slice of a global batch -> global arrays split on `data`."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}


def to_host(x) -> np.ndarray:
  """A (possibly multi-host) global array -> the whole array on every host."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)
