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

# The papers' class counts, for counting a paper config's model (parameters,
# FLOPs: vidjax/costs.py) without its data. A run uses the data's own count.
PAPER_NUM_CLASSES = {
    "kinetics400": 400,
    "kinetics600": 600,
    "ucf101": 101,
    "hmdb51": 51,
    "something_something_v2": 174,
    "sports1m": 487,
    "imagenet": 1000,
}
REAL_DATASETS = ("video_folder", "ucf101", "hmdb51", "kinetics400",
                 "something_something_v2")
# Temporal action localization (untrimmed videos, segments): read with
# vidjax.tasks.localization (data.SyntheticSequences over
# vidjax/data/synthetic_untrimmed.py; vidjax/data/untrimmed_public.load).
LOCALIZATION_DATASETS = ("synthetic_untrimmed", "activitynet", "thumos14")
# Spatio-temporal action detection (AVA-style keyframes, person boxes): read
# with vidjax.tasks.detection.data.load (vidjax/data/synthetic_ava.py;
# vidjax/data/ava_public.py).
DETECTION_DATASETS = ("synthetic_ava", "ava")
# Audio-visual (issue #22): synthetic_av in memory with
# vidjax/data/av_loader.py; AudioSet / VGGSound over the user's clips with
# vidjax/data/audioset.py.
AUDIO_VISUAL_DATASETS = ("synthetic_av", "audioset", "vggsound")


@dataclasses.dataclass
class Dataset:
  train: Any
  test: Any
  num_classes: int
  class_names: Sequence[str]
  report: Any = None  # video_folder.Report for real-video datasets


def _check_name(name: str):
  if name in LOCALIZATION_DATASETS:
    raise VidjaxError(
        f"config.dataset.name={name!r} is a temporal localization dataset "
        "(untrimmed videos with segments), not a clip-classification one")
  if name in DETECTION_DATASETS:
    raise VidjaxError(
        f"config.dataset.name={name!r} is a spatio-temporal detection dataset "
        "(keyframes with person boxes), not a clip-classification one")
  if name in AUDIO_VISUAL_DATASETS:
    raise VidjaxError(
        f"config.dataset.name={name!r} is an audio-visual dataset (read with "
        "vidjax.data.av_loader / vidjax.data.audioset), not a "
        "clip-classification one")
  if name != "synthetic_motion" and name not in REAL_DATASETS:
    raise VidjaxError(
        f"config.dataset.name={name!r}: vidjax has no builder for it; use "
        f"synthetic_motion, {', '.join(REAL_DATASETS)}")


def class_names(dataset_config) -> list:
  """The class names of a configured dataset, cheaply: no video decoded, no
  walk of the video tree. From the prepared manifest if there is one, else
  from the annotation files only (public datasets), the lists / CSV or the
  top-level class folders (video_folder); label i is class_names[i]."""
  name = dataset_config.name
  _check_name(name)
  if name == "synthetic_motion":
    from vidjax.data import synthetic_render
    kind = _synthetic_kind(dataset_config)
    return list(synthetic_render.MOTION_NAMES if kind == "motion" else
                synthetic_render.APPEARANCE_NAMES)
  from vidjax.data import listing, prepared, public_datasets
  manifest = prepared.read(dataset_config)
  if manifest is not None:
    return list(manifest["class_names"])
  if name == "video_folder":
    return list(listing.folder_class_names(dataset_config))
  return list(public_datasets.CLASS_NAMES[name](dataset_config))


def num_classes(dataset_config) -> int:
  """The class count of a configured dataset's data (len(class_names)),
  without loading it. Paper configs counted without their data:
  PAPER_NUM_CLASSES."""
  return len(class_names(dataset_config))


def load(dataset_config) -> Dataset:
  """The train/test splits as config.dataset.modality's view: rgb, or flow /
  rgb+flow from a cached flow build (vidjax/data/flow_builder.py)."""
  dataset = _load_rgb(dataset_config)
  if dataset_config.get("modality", "rgb") != "rgb":
    from vidjax.data import flow_builder  # TFDS import is slow: only here.
    dataset = flow_builder.modality_view(dataset, dataset_config)
  return dataset


def _load_rgb(dataset_config) -> Dataset:
  """Opens the train/test splits: a prepared build from its manifest (no
  listing of the raw tree), else lists, builds (once) and opens them."""
  name = dataset_config.name
  _check_name(name)
  if name == "synthetic_motion":
    return _synthetic_motion(dataset_config)
  from vidjax.data import video_folder  # TFDS import is slow: only here.
  opened = video_folder.open_prepared(
      dataset_config, video_folder._min_frames(dataset_config))
  if opened is not None:
    train, test, report, names = opened
  else:
    found = scan(dataset_config)
    train, test, report = video_folder.load(dataset_config, found)
    names = list(found.class_names)
  return Dataset(train=train, test=test, num_classes=len(names),
                 class_names=names, report=report)


def scan(dataset_config):
  """The real-video Listing (class names, files per split) of a config: reads
  the annotations and lists the raw tree."""
  from vidjax.data import listing, public_datasets
  name = dataset_config.name
  _check_name(name)
  if name == "video_folder":
    return listing.folder_listing(dataset_config)
  return public_datasets.LISTINGS[name](dataset_config)


def _synthetic_kind(dataset_config) -> str:
  if dataset_config.config not in ("motion", "appearance"):
    raise VidjaxError(f"config.dataset.config={dataset_config.config!r}: "
                      "synthetic_motion has 'motion' and 'appearance'")
  return dataset_config.config


def _synthetic_motion(dataset_config) -> Dataset:
  from vidjax.data import synthetic_motion  # TFDS import is slow: only here.
  overrides = {}
  for key in ("train_per_class", "test_per_class"):
    value = dataset_config.get(key, -1)
    if value is not None and value > 0:
      overrides[key] = int(value)
  background = dataset_config.get("synthetic_background", "textured")
  if background != "textured":  # the named builds keep their names
    from vidjax.data.synthetic_render import BACKGROUNDS
    if background not in BACKGROUNDS:
      raise VidjaxError(f"config.dataset.synthetic_background={background!r}:"
                        f" use one of {', '.join(BACKGROUNDS)}")
    overrides["background"] = background
  _synthetic_kind(dataset_config)
  builder = synthetic_motion.load_builder(
      dataset_config.config, data_dir=dataset_config.data_dir or None,
      **overrides)
  names = builder.info.features["label"].names
  return Dataset(
      train=builder.as_data_source(split="train"),
      test=builder.as_data_source(split="test"),
      num_classes=len(names), class_names=names)
