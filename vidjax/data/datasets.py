"""Dataset registry: `config.dataset.name` -> random-access video sources.

A source is anything with `len(source)` and `source[i]` returning a dict with
`video` (uint8 [T, H, W, 3]) and `label` (int). The pipeline samples clips and
crops from it, so a source never needs to know the clip length.
"""
import dataclasses
from typing import Any, Sequence

from vidjax.errors import VidjaxError

# Class counts of the public datasets, so paper configs can be shape-checked
# (`jax.eval_shape`) before their data exists on this machine.
PUBLIC_NUM_CLASSES = {
    "kinetics400": 400,
    "ucf101": 101,
    "hmdb51": 51,
    "something_something_v2": 174,
    "sports1m": 487,
    "imagenet": 1000,
}
SYNTHETIC_NUM_CLASSES = 8


@dataclasses.dataclass
class Dataset:
  train: Any
  test: Any
  num_classes: int
  class_names: Sequence[str]


def num_classes(dataset_config) -> int:
  """The class count of a configured dataset, without loading it."""
  name = dataset_config.name
  if name == "synthetic_motion":
    return SYNTHETIC_NUM_CLASSES
  if name in PUBLIC_NUM_CLASSES:
    return PUBLIC_NUM_CLASSES[name]
  raise VidjaxError(f"config.dataset.name={name!r} is not a known dataset; "
                    f"known: synthetic_motion, {', '.join(PUBLIC_NUM_CLASSES)}")


def load(dataset_config) -> Dataset:
  """Builds (on first use, cached by TFDS) and opens the train/test splits."""
  name = dataset_config.name
  if name == "synthetic_motion":
    return _synthetic_motion(dataset_config)
  num_classes(dataset_config)  # unknown names fail with the list of known ones
  raise VidjaxError(
      f"config.dataset.name={name!r}: this version of vidjax has no builder "
      "for it yet (real-video builders are issue #3); use synthetic_motion")


def _synthetic_motion(dataset_config) -> Dataset:
  from vidjax.data import synthetic_motion  # TFDS import is slow: only here.
  overrides = {}
  for key in ("train_per_class", "test_per_class"):
    value = dataset_config.get(key, -1)
    if value is not None and value > 0:
      overrides[key] = int(value)
  if dataset_config.config not in ("motion", "appearance"):
    raise VidjaxError(f"config.dataset.config={dataset_config.config!r}: "
                      "synthetic_motion has 'motion' and 'appearance'")
  builder = synthetic_motion.load_builder(
      dataset_config.config, data_dir=dataset_config.data_dir or None,
      **overrides)
  names = builder.info.features["label"].names
  return Dataset(
      train=builder.as_data_source(split="train"),
      test=builder.as_data_source(split="test"),
      num_classes=len(names), class_names=names)
