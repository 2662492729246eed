"""Dataset registry: `config.dataset.name` -> random-access video sources.

A source is anything with `len(source)` and `source[i]` returning a dict with
`video` (uint8 [T, H, W, 3], or a `decode.LazyVideo` whose `frames(idx)`
decodes only the frames a clip samples) and `label` (int). The pipeline samples
clips and crops from it, so a source never needs to know the clip length.

Names: `synthetic_motion` (embedded), `video_folder` (the user's class folders:
`config.dataset.path`, see vidjax/data/listing.py), and the public datasets
ucf101, hmdb51, kinetics400, something_something_v2 over the user's copy
(`config.dataset.manual_dir`, see vidjax/data/public_datasets.py).
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
  report: Any = None  # video_folder.Report for real-video datasets


def num_classes(dataset_config) -> int:
  """The class count of a configured dataset, without loading it."""
  name = dataset_config.name
  if name == "synthetic_motion":
    return SYNTHETIC_NUM_CLASSES
  if name == "video_folder":
    return len(_listing(dataset_config).class_names)
  if name in PUBLIC_NUM_CLASSES:
    return PUBLIC_NUM_CLASSES[name]
  raise VidjaxError(f"config.dataset.name={name!r} is not a known dataset; "
                    f"known: synthetic_motion, video_folder, "
                    f"{', '.join(PUBLIC_NUM_CLASSES)}")


def load(dataset_config) -> Dataset:
  """The train/test splits as config.dataset.modality's view: rgb, or flow /
  rgb+flow from a cached flow build (vidjax/data/flow_builder.py)."""
  dataset = _load_rgb(dataset_config)
  if dataset_config.get("modality", "rgb") != "rgb":
    from vidjax.data import flow_builder  # TFDS import is slow: only here.
    dataset = flow_builder.modality_view(dataset, dataset_config)
  return dataset


def _load_rgb(dataset_config) -> Dataset:
  """Builds (on first use, cached by TFDS) and opens the train/test splits."""
  name = dataset_config.name
  if name == "synthetic_motion":
    return _synthetic_motion(dataset_config)
  listing = _listing(dataset_config)  # unknown names fail, listing known ones
  from vidjax.data import video_folder  # TFDS import is slow: only here.
  train, test, report = video_folder.load(dataset_config, listing)
  return Dataset(train=train, test=test,
                 num_classes=len(listing.class_names),
                 class_names=list(listing.class_names), report=report)


def _listing(dataset_config):
  """The real-video Listing (class names, files per split) of a config."""
  from vidjax.data import listing, public_datasets
  name = dataset_config.name
  if name == "video_folder":
    return listing.folder_listing(dataset_config)
  if name not in public_datasets.LISTINGS:
    raise VidjaxError(
        f"config.dataset.name={name!r}: vidjax has no builder for it; use "
        "synthetic_motion, video_folder or "
        f"{', '.join(public_datasets.LISTINGS)}")
  return public_datasets.LISTINGS[name](dataset_config)


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
