"""Checkpoints with orbax: save every N steps, keep K, resume, init_from.

Each checkpoint step holds two items: `state` (the whole TrainState) and `meta`
(JSON: the config, the model name, every parameter's shape and the head's
class names). `meta` lets a resume or `init_from` check compatibility and
name the mismatched parameters before any array is read. Orbax writes a step
into a temporary folder and renames it when complete, so an interrupted save
never replaces a good one: a process killed mid-save leaves a
`<step>.orbax-checkpoint-tmp-*` folder that `latest_step()` never lists and
the next run's manager deletes.
A failed write (disk full, read-only) becomes one VidjaxError naming the
folder and the last complete checkpoint, and parameters that are not finite
are never written. Workdirs and `init_from` paths may be remote (gs://...):
Orbax writes them itself; vidjax lists them through etils.epath.

The restore target carries the run's shardings (`config.sharding`,
vidjax/sharding.py), so Orbax places each array as the step expects: a
checkpoint written replicated restores sharded, and the other way round.
"""
import json
import os
from typing import Optional, Tuple

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp

from vidjax.config_check import absolute_path, is_remote, remote_path
from vidjax.errors import VidjaxError
from vidjax.steps import TrainState, flat_shapes


_ONE_REPLICA = False  # set once this process's handler is registered


def _one_replica_writes():
  """In a single process, each replicated array is written from one replica.

  Orbax's default (replica-parallel) splits every replicated array into one
  slice per replica so that several hosts share the writing: each slice is an
  on-device `lax.slice`, compiled per shape and device count at a run's
  first save. With one process every slice is written by the same host
  anyway, so the splitting only costs compilation (tests/test_detection_main.py
  on 8 CPU devices: 62 -> 54 CPU-s). Multi-process runs keep orbax's default.
  The files are the same arrays either way; either restores."""
  global _ONE_REPLICA
  if _ONE_REPLICA or jax.process_count() > 1:
    return
  _ONE_REPLICA = True
  # orbax-checkpoint is pinned: its default jax.Array handler, with this one
  # option changed (array_metadata_store as in its registry's default).
  from orbax.checkpoint._src.metadata import array_metadata_store  # noqa: PLC0415
  ocp.type_handlers.register_type_handler(
      jax.Array, ocp.type_handlers.ArrayHandler(
          use_replica_parallel=False,
          array_metadata_store=array_metadata_store.Store()), override=True)


def _manager(directory: str, keep: int = 0, create: bool = True, **kwargs):
  _one_replica_writes()
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep or None, create=create)
  return ocp.CheckpointManager(directory, options=options, **kwargs)


class Checkpointer:
  """The run's checkpoints under `workdir/checkpoints`."""

  def __init__(self, workdir: str, keep: int):
    self.directory = os.path.join(absolute_path(workdir), "checkpoints")
    self.manager = _manager(self.directory, keep)

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, state: TrainState, meta: dict):
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    if not bool(_all_finite(state.params)):
      raise VidjaxError(
          f"parameters are not finite at step {step}: not saving them; last "
          f"complete checkpoint: {self.last_good()}")
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    except Exception as e:  # noqa: BLE001  (orbax/tensorstore raise many kinds)
      raise self._write_error(step, e) from None
    _fault_after_save(step)

  def last_good(self) -> str:
    """The newest complete checkpoint's path, or 'none'."""
    try:
      self.manager.reload()
      step = self.manager.latest_step()
    except Exception:  # noqa: BLE001
      step = None
    return self.path(step) if step is not None else "none"

  def _write_error(self, step: int, e: Exception) -> VidjaxError:
    lines = str(e).strip().splitlines()
    first = lines[0] if lines else type(e).__name__
    return VidjaxError(f"cannot write checkpoint {self.path(step)}: {first}; "
                       f"last complete checkpoint: {self.last_good()}")

  def check_resumable(self, abstract_params, step: int):
    """Raises unless checkpoint `step` holds this model's parameters (its
    saved shapes only: nothing else is read)."""
    check_shapes(self.meta(step).get("param_shapes", {}),
                 flat_shapes(abstract_params), self.path(step))

  def restore(self, abstract_state: TrainState, step: int) -> TrainState:
    """Restores `step` into the structure/shardings of `abstract_state`."""
    self.check_resumable(abstract_state.params, step)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return restored.state

  def meta(self, step: int) -> dict:
    return self.manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

  def wait(self):
    """Blocks until background writes finish; a failed one raises here."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001
      step = self.manager.latest_step()
      raise self._write_error(-1 if step is None else step, e) from None

  def close(self, wait: bool = True):
    """Finishes (wait=True) or abandons pending writes, then closes."""
    try:
      if wait:
        self.wait()
    finally:
      try:
        self.manager.close()
      except Exception:  # noqa: BLE001  (an error is already propagating)
        if wait:
          raise


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jax.numpy.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)]
  return jax.numpy.stack(leaves).all() if leaves else jax.numpy.bool_(True)


def _fault_after_save(step: int):
  """Fault injection for the reliability tests (never set in real runs).

  VIDJAX_FAULT=kill_after_save_start:STEP sends SIGKILL to this process right
  after the asynchronous save of STEP has started, i.e. while it is writing.
  """
  fault = os.environ.get("VIDJAX_FAULT", "")
  if fault == f"kill_after_save_start:{step}":
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


def make_meta(config, params, class_names=()) -> dict:
  """A checkpoint's `meta` item. `class_names`: the classes of the model's
  head in row order (the run's data classes; a converted model's
  `id2label`), so that `init_from` can match the head to another run's data
  by name (vidjax/head_remap.py); [] when unknown."""
  return {"model": config.model.name,
          "config": json.loads(config.to_json_best_effort()),
          "param_shapes": flat_shapes(params),
          "class_names": [str(n) for n in class_names or ()]}


def check_shapes(saved: dict, wanted: dict, where: str):
  """Raises a one-line error naming every parameter that does not match."""
  problems = []
  for key in sorted(set(saved) | set(wanted)):
    if key not in saved:
      problems.append(f"{key} missing from the checkpoint")
    elif key not in wanted:
      problems.append(f"{key} not in the model")
    elif list(saved[key]) != list(wanted[key]):
      problems.append(f"{key} {list(saved[key])} in checkpoint vs "
                      f"{list(wanted[key])} in model")
  if problems:
    shown = "; ".join(problems[:6])
    more = f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
    raise VidjaxError(
        f"checkpoint {where} does not fit the configured model: "
        f"{len(problems)} parameters differ: {shown}{more}")


def _resolve(path: str) -> Tuple[str, int]:
  """A run workdir, its checkpoints folder, or one step folder -> (dir, step).
  Remote paths (gs://...) are listed through etils.epath."""
  path = absolute_path(path)
  exists, isdir, listdir = os.path.exists, os.path.isdir, os.listdir
  if is_remote(path):
    exists = lambda p: remote_path(p).exists()  # noqa: E731
    isdir = lambda p: remote_path(p).is_dir()  # noqa: E731
    listdir = lambda p: [c.name for c in remote_path(p).iterdir()]  # noqa: E731
  if not exists(path):
    raise VidjaxError(f"config.init_from.checkpoint_path={path} does not exist")
  if isdir(os.path.join(path, "checkpoints")):
    path = os.path.join(path, "checkpoints")
  if isdir(os.path.join(path, "state")):
    base = os.path.basename(path.rstrip("/"))
    if base.isdigit():
      return os.path.dirname(path.rstrip("/")), int(base)
  steps = [int(d) for d in listdir(path) if d.isdigit()
           and isdir(os.path.join(path, d, "state"))]
  if not steps:
    raise VidjaxError(f"config.init_from.checkpoint_path={path} holds no "
                      "vidjax checkpoint (expected checkpoints/<step>/state)")
  return path, max(steps)


def pretrained_param_shapes(path: str) -> Tuple[Optional[dict], str]:
  """({"a/b/kernel": shape} from the checkpoint's meta, step folder), reading
  no parameter arrays; (None, folder) for a checkpoint without saved shapes."""
  directory, step = _resolve(path)
  where = os.path.join(directory, str(step))
  manager = _manager(directory, create=False)
  try:
    meta = manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta or {}
  except Exception:  # noqa: BLE001 - no meta item: check after loading
    meta = {}
  finally:
    manager.close()
  shapes = meta.get("param_shapes")
  return ({k: tuple(v) for k, v in shapes.items()} if shapes else None), where


def load_pretrained(path: str) -> Tuple[dict, dict, str]:
  """Reads params (+ batch_stats) of another run's checkpoint as numpy.

  Restored straight to host numpy arrays, so any device topology reads it: a
  run saved on 8 devices (replicated or FSDP) initialises a 1-device run.
  (Without a target, Orbax would rebuild the saved shardings and fail on
  other devices: "Topology mismatch detected".)"""
  directory, step = _resolve(path)
  manager = _manager(directory, create=False,
                     item_handlers={"state": ocp.PyTreeCheckpointHandler()})
  try:
    tree = manager.item_metadata(step)["state"]
    to_host = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                           getattr(tree, "tree", tree))
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(restore_args=to_host)))
  except Exception as e:  # orbax's own errors are long; keep the first line.
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise VidjaxError(f"cannot read checkpoint {directory}/{step}: {first}")
  finally:
    manager.close()
  state = restored.state
  to_np = lambda tree: jax.tree.map(np.asarray, tree or {})  # noqa: E731
  return (to_np(state.get("params")), to_np(state.get("batch_stats")),
          os.path.join(directory, str(step)))


def init_paths(value) -> list:
  """`config.init_from.checkpoint_path` -> its checkpoints: one path, or
  several joined by "," (for example MBT's video and audio streams, each
  pretrained in its own run): each parameter comes from the first listed
  checkpoint that has it by name and shape (`merge_first`)."""
  paths = [p.strip() for p in str(value or "").split(",")]
  if any(not p for p in paths) and len(paths) > 1:
    raise VidjaxError(f"config.init_from.checkpoint_path={value!r}: an empty "
                      "path in the comma-separated list")
  return [p for p in paths if p]


def merge_first(target, sources) -> Tuple[dict, list, list, list]:
  """`merge_pretrained` over several loaded trees in order: a leaf comes from
  the first tree that has it by name and shape. Returns (merged tree,
  [loaded names per source], skipped 'name: reason' of the leaves no source
  filled (the last source's reasons), [unused names per source])."""
  done_all, dones, unused_all = set(), [], []
  skipped = []
  for loaded in sources:
    flat = flax.traverse_util.flatten_dict(loaded, sep="/") if loaded else {}
    fresh = {k: v for k, v in flat.items() if k not in done_all}
    target, done, skipped, unused = merge_pretrained(
        target, flax.traverse_util.unflatten_dict(fresh, sep="/")
        if fresh else {})
    skipped = [s for s in skipped if s.split(":")[0] not in done_all]
    unused_all.append(sorted(set(unused) | (set(flat) - set(fresh))))
    dones.append(done)
    done_all.update(done)
  return target, dones, skipped, unused_all


def check_fits(target, loaded, path: str, min_fraction: float = 0.5):
  """Raises unless most of a checkpoint (by values) fits `target` by name and
  shape: a checkpoint of another model fails here, before any compile, while
  a new head or a resized embedding is fine."""
  _, done, _, _ = merge_pretrained(target, loaded)
  flat = flax.traverse_util.flatten_dict(loaded, sep="/") if loaded else {}
  total = sum(int(np.size(v)) for v in flat.values())
  fit = sum(int(np.size(flat[k])) for k in done)
  if not total or fit < min_fraction * total:
    raise VidjaxError(
        f"config.init_from.checkpoint_path={path}: only {len(done)} of "
        f"{len(flat)} checkpoint parameters ({fit:,} of {total:,} values) fit "
        "this model by name and shape; is it a checkpoint of another model?")


def merge_pretrained(target, loaded) -> Tuple[dict, list, list, list]:
  """Copies every loaded leaf whose name and shape match into `target`.

  Returns (merged tree, loaded names, skipped 'name: reason', unused names).
  """
  flat_t = flax.traverse_util.flatten_dict(flax.core.unfreeze(target), sep="/")
  flat_l = flax.traverse_util.flatten_dict(loaded, sep="/") if loaded else {}
  merged, done, skipped = {}, [], []
  for key, value in flat_t.items():
    src = flat_l.get(key)
    if src is None:
      skipped.append(f"{key}: not in checkpoint")
      merged[key] = value
    elif tuple(src.shape) != tuple(value.shape):
      skipped.append(f"{key}: shape {list(src.shape)} in checkpoint vs "
                     f"{list(value.shape)} in model")
      merged[key] = value
    else:
      merged[key] = jax.numpy.asarray(src, dtype=value.dtype)
      done.append(key)
  unused = sorted(set(flat_l) - set(flat_t))
  return (flax.traverse_util.unflatten_dict(merged, sep="/"), done, skipped,
          unused)
