"""Device mesh and placement: jit + `jax.sharding`, no pmap.

One mesh axis, `data`: batches are split along it. The train state
(parameters, optimizer state) is either replicated (`config.sharding =
"replicate"`) or sharded over the same axis (`"fsdp"`, fully sharded data
parallelism; ZeRO-3 in Rajbhandari et al. 2020, "ZeRO: Memory Optimizations
Toward Training Trillion Parameter Models"), by big_vision's shape rule
(github.com/google-research/big_vision, `big_vision/sharding.py`, `fsdp`):
every leaf of at least `config.fsdp_min_size_mb` MiB is split along its
largest dimension that the axis size divides, and left whole otherwise.
The threshold defaults to 1 MiB rather than big_vision's 4: an unrolled
ViT-B's attention kernels (768 x 12 x 64 fp32, 2.25 MiB) are a third of its
parameters, and at 4 MiB they would stay whole (per-device state 0.43 of the
replicated figure on 8 devices, against 0.13 at 1 MiB; scanned, 0.14 at 4). No
model code changes: XLA's SPMD partitioner all-gathers a weight where it is
used and reduce-scatters its gradient. The stacked layer axis of scanned
blocks (`layers/`, axis 0) is never chosen, so each scan iteration reads one
slice of every sharded leaf. The same shardings serve state creation, the
train and eval steps and the Orbax restore target, so a checkpoint written
under one mode restores under the other (Orbax reshards on restore).

The same code runs on one CPU, 8 forced host devices, one GPU, or many hosts
(each process passes only its own slice of the batch).
"""
import math

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


SHARDING_MODES = ("replicate", "fsdp")


def check_mode(config):
  mode = config.get("sharding", "replicate")
  if mode not in SHARDING_MODES:
    raise VidjaxError(f"config.sharding must be one of {SHARDING_MODES}, got "
                      f"{mode!r}")
  if config.get("fsdp_min_size_mb", 1.0) < 0:
    raise VidjaxError("config.fsdp_min_size_mb must be >= 0, got "
                      f"{config.fsdp_min_size_mb}")


def _names(path) -> list:
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def fsdp_spec(shape, nbytes: int, axis_size: int, min_bytes: float,
              skip=()) -> P:
  """big_vision's rule for one leaf: P() below `min_bytes` or when no
  dimension (outside `skip`) divides evenly; else `data` on the largest such
  dimension (the first of equal ones)."""
  if axis_size <= 1 or nbytes < min_bytes:
    return P()
  order = sorted(range(len(shape)), key=lambda d: (-shape[d], d))
  for dim in order:
    if dim not in skip and shape[dim] % axis_size == 0:
      return P(*([None] * dim + [DATA]))
  return P()


def state_specs(abstract_state, mesh: Mesh, mode: str = "replicate",
                min_size_mb: float = 1.0):
  """PartitionSpecs for every leaf of a (shape-only) state tree."""
  if mode == "replicate":
    return jax.tree.map(lambda _: P(), abstract_state)
  axis_size = mesh.shape[DATA]

  def spec(path, leaf):
    shape = tuple(getattr(leaf, "shape", ()))
    nbytes = math.prod(shape) * np.dtype(leaf.dtype).itemsize
    skip = (0,) if "layers" in _names(path) and shape else ()
    return fsdp_spec(shape, nbytes, axis_size, min_size_mb * 2**20, skip)

  return jax.tree_util.tree_map_with_path(spec, abstract_state)


def state_shardings(abstract_state, mesh: Mesh, mode: str = "replicate",
                    min_size_mb: float = 1.0):
  """NamedShardings for a state tree (see the module docstring)."""
  return jax.tree.map(lambda s: NamedSharding(mesh, s),
                      state_specs(abstract_state, mesh, mode, min_size_mb),
                      is_leaf=lambda x: isinstance(x, P))


def config_state_shardings(config, abstract_state, mesh: Mesh):
  """`state_shardings` with `config.sharding` and `config.fsdp_min_size_mb`."""
  return state_shardings(abstract_state, mesh,
                         config.get("sharding", "replicate"),
                         config.get("fsdp_min_size_mb", 1.0))


def with_shardings(abstract_tree, shardings):
  """ShapeDtypeStructs carrying their shardings (AOT lowering, restore)."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract_tree, shardings)


def bytes_per_device(abstract_tree, shardings) -> int:
  """Bytes one device holds of a sharded tree, from shapes only."""
  total = 0
  for x, s in zip(jax.tree.leaves(abstract_tree), jax.tree.leaves(shardings)):
    shard = s.shard_shape(tuple(x.shape))
    total += math.prod(shard) * np.dtype(x.dtype).itemsize
  return total


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
