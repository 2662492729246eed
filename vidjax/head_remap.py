"""A pretrained classification head matched to the run's classes by name.

A checkpoint's head rows are classes: a converted transformers model's
`id2label`, or the data classes of the vidjax run that saved it; its meta
holds them as `class_names` (checkpoint.make_meta). When the run's data names
its classes too (every real dataset does), `remap_head` rebuilds each head
leaf so that row i is the data's class i: the same classes in another order,
or a subset (a user's Kinetics subset with 2 of the 400 classes), are then
predicted exactly as the pretrained model predicts them, before any
finetuning. Names are compared by `normalize_name` (case, spaces,
underscores and punctuation ignored: "air drumming", "Air_Drumming" and
"AirDrumming" are one class). Data classes the head lacks get zero rows
(logit 0 until finetuned); with no class in common the head is left out and
the model's fresh head is trained, as for any head of another shape.
A head leaf is the `kernel` ([..., classes]) or `bias` ([classes]) of a
module named `head` or `<x>_head` (two-stream heads) whose last axis has one
entry per checkpoint class name.
"""
from collections.abc import Mapping
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

_SHOWN = 3  # names quoted in a log line


def normalize_name(name) -> str:
  """Case-folded letters and digits only: the key names are compared by."""
  return "".join(c for c in str(name).casefold() if c.isalnum())


def match_classes(head_names: Sequence[str],
                  data_names: Sequence[str]) -> List[int]:
  """For each data class, its row in the head (-1: not among head_names).

  A name that occurs twice in the head matches its first row."""
  rows = {}
  for i, name in enumerate(head_names):
    rows.setdefault(normalize_name(name), i)
  return [rows.get(normalize_name(name), -1) for name in data_names]


def _is_head(name: str) -> bool:
  return name == "head" or name.endswith("_head")


def _head_modules(tree, path=()):
  """(path, module) of every head module in a nested params tree."""
  if not isinstance(tree, Mapping):
    return
  for key, value in tree.items():
    if isinstance(value, Mapping):
      if _is_head(key):
        yield path + (key,), value
      yield from _head_modules(value, path + (key,))


def head_rows(tree) -> Optional[int]:
  """The class count of the first head module's bias (None: no head)."""
  for _, module in _head_modules(tree):
    if np.ndim(module.get("bias")) == 1:
      return int(np.shape(module["bias"])[0])
  return None


def head_paths(tree, num_rows: int) -> List[Tuple[str, ...]]:
  """Paths of the head leaves of `tree` with `num_rows` classes."""
  found = []
  for path, module in _head_modules(tree):
    for leaf, array in module.items():
      shape = np.shape(array)
      if ((leaf == "kernel" and len(shape) >= 2)
          or (leaf == "bias" and len(shape) == 1)) and shape[-1] == num_rows:
        found.append(path + (leaf,))
  return found


def get_path(tree, path):
  """The node of nested mapping `tree` at key `path`, or None."""
  for key in path:
    if not isinstance(tree, Mapping) or key not in tree:
      return None
    tree = tree[key]
  return tree


def _quote(names: Sequence[str]) -> str:
  shown = ", ".join(repr(str(n)) for n in names[:_SHOWN])
  return shown + (", ..." if len(names) > _SHOWN else "")


def remap_head(loaded: dict, target, head_names: Sequence[str],
               data_names: Sequence[str], log: Callable = print) -> dict:
  """Rewrites the head leaves of `loaded` (in place; returned) for the data.

  `target`: the model's parameters or their shapes (jax.eval_shape), whose
  head has one row per data class. Without names on either side, or when
  the checkpoint's names do not fit its head, `loaded` is left as it is.
  """
  head_names, data_names = list(head_names or ()), list(data_names or ())
  if not head_names or not data_names:
    return loaded
  paths = [p for p in head_paths(loaded, len(head_names))
           if get_path(target, p) is not None
           and np.shape(get_path(target, p))[-1] == len(data_names)
           # a head of another input width (another model) stays unmatched
           and np.shape(get_path(target, p))[:-1]
           == np.shape(get_path(loaded, p))[:-1]]
  if not paths:
    log(f"  init_from: head: the checkpoint's {len(head_names)} class names "
        "name no head of this model; the head is loaded by shape")
    return loaded
  rows = match_classes(head_names, data_names)
  found = [j for j, r in enumerate(rows) if r >= 0]
  if not found:
    for path in paths:
      del get_path(loaded, path[:-1])[path[-1]]
    log(f"  init_from: head: none of the {len(data_names)} data classes "
        f"({_quote(data_names)}) is among the checkpoint's "
        f"{len(head_names)} classes ({_quote(head_names)}) by name; the head "
        "starts fresh")
    return loaded
  src_rows = np.array([rows[j] for j in found])
  for path in paths:
    source = np.asarray(get_path(loaded, path))
    out = np.zeros(np.shape(get_path(target, path)), source.dtype)
    out[..., np.array(found)] = source[..., src_rows]
    get_path(loaded, path[:-1])[path[-1]] = out
  missing = [data_names[j] for j, r in enumerate(rows) if r < 0]
  same = src_rows.tolist() == list(range(len(head_names)))
  order = "the head as it is" if same else (
      "its rows selected and ordered as the data's classes")
  line = (f"  init_from: head: {len(found)} of {len(data_names)} data classes "
          f"matched the checkpoint's {len(head_names)} classes by name "
          f"({order})")
  if missing:
    line += (f"; {len(missing)} not in the head start from zero rows: "
             f"{_quote(missing)}")
  log(line)
  return loaded
