"""`synthetic_motion`: an embedded, offline TFDS dataset of procedurally drawn videos.

No download: every video is rendered deterministically from (config.seed, split, index)
by the pure-numpy renderer in `synthetic_render.py`.

Configs:
  * `motion`: 8 classes defined only by HOW the object moves (translate right / left /
    up / down, rotate clockwise / anticlockwise, grow / shrink). Shape, colour, texture,
    background, position and speed are random and independent of the class, and the
    per-frame marginals (position, orientation, size) are class-independent, so a
    single frame is at chance while frame differences tell the class.
  * `appearance`: 8 classes defined by WHAT the object is (circle, square, triangle,
    cross, ring, bar, L, diamond); the motion is drawn at random from the motion set.

Usage:
  builder = load_builder("motion")                 # builds once into the TFDS data dir
  source = builder.as_data_source("train")         # random access, ~0.35 ms / example
  video, label = source[0]["video"], source[0]["label"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from vidjax.data import synthetic_render  # noqa: E402

MOTION_NAMES = synthetic_render.MOTION_NAMES
APPEARANCE_NAMES = synthetic_render.APPEARANCE_NAMES
NUM_CLASSES = 8


@dataclasses.dataclass(eq=False)
class SyntheticMotionConfig(tfds.core.BuilderConfig):
  """Generation settings of one `synthetic_motion` config.

  Attributes:
    num_frames: frames per video.
    resolution: height = width in pixels (speeds and sizes scale with it).
    train_per_class: training videos per class (the split is exactly balanced).
    test_per_class: test videos per class.
    seed: root seed; the splits use different streams derived from it.
    label_kind: "motion" (class = how it moves) or "appearance" (class = shape).
    background: "textured" (default) or "plain" (`synthetic_render.render`:
      a flat colour, no noise).
  """

  num_frames: int = 32
  resolution: int = 32
  train_per_class: int = 600
  test_per_class: int = 100
  seed: int = 0
  label_kind: str = "motion"
  background: str = "textured"

  @property
  def class_names(self) -> tuple[str, ...]:
    return MOTION_NAMES if self.label_kind == "motion" else APPEARANCE_NAMES


def render_example(config: SyntheticMotionConfig, split: str,
                   index: int) -> tuple[np.ndarray, int]:
  """Example `index` of `split`: (video uint8 [T, H, W, 3], label int).

  Pure function of (config.seed, split, index) and the config's shape fields: the
  label is `index % 8`, so the first `8 * per_class` indices are exactly balanced.
  """
  return synthetic_render.render(
      config.seed, split, index, label_kind=config.label_kind,
      num_frames=config.num_frames, res=config.resolution, num_classes=NUM_CLASSES,
      background=config.background)


class SyntheticMotion(tfds.core.GeneratorBasedBuilder):
  """Procedural videos whose class is their motion (`motion`) or shape (`appearance`)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      SyntheticMotionConfig(
          name="motion", label_kind="motion",
          description="8 classes defined only by how the object moves."),
      SyntheticMotionConfig(
          name="appearance", label_kind="appearance", seed=1,
          description="8 classes defined by the object's shape; motion is random."),
  ]
  DEFAULT_CONFIG_NAME = "motion"

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    shape = (cfg.num_frames, cfg.resolution, cfg.resolution, 3)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=list(cfg.class_names)),
        }),
        supervised_keys=("video", "label"),
        disable_shuffling=True,  # index order is already class-interleaved
        description=__doc__.split("\n\n")[0],
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    cfg = self.builder_config
    return {
        "train": self._generate_examples("train", cfg.train_per_class * NUM_CLASSES),
        "test": self._generate_examples("test", cfg.test_per_class * NUM_CLASSES),
    }

  def _generate_examples(self, split: str, num_examples: int):
    # Serial on purpose: rendering takes ~3 ms / example, the whole build well under a
    # minute, and a spawned worker pool would re-import the caller's __main__.
    cfg = self.builder_config
    for i in range(num_examples):
      video, label = render_example(cfg, split, i)
      yield i, {"video": video, "label": label}


def _custom_name(base: str, overrides: dict) -> str:
  key = ",".join(f"{k}={overrides[k]!r}" for k in sorted(overrides))
  return f"{base}_custom_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def make_config(config_name: str = "motion", **overrides) -> SyntheticMotionConfig:
  """The named config, or a copy with `overrides` under a distinct, stable name."""
  named = {c.name: c for c in SyntheticMotion.BUILDER_CONFIGS}
  if config_name not in named:
    raise ValueError(
        f"synthetic_motion config_name must be one of {sorted(named)}, "
        f"got {config_name!r}")
  base = named[config_name]
  if not overrides:
    return base
  fields = {f.name for f in dataclasses.fields(SyntheticMotionConfig)}
  unknown = sorted(set(overrides) - fields - {"name"})
  if unknown:
    raise ValueError(f"unknown SyntheticMotionConfig field(s): {unknown}")
  data_overrides = {k: v for k, v in overrides.items() if k != "name"}
  name = overrides.get("name") or _custom_name(config_name, data_overrides)
  return dataclasses.replace(base, **{**overrides, "name": name})


def load_builder(config_name: str = "motion", data_dir: str | None = None,
                 **overrides) -> tfds.core.DatasetBuilder:
  """A prepared `synthetic_motion` builder (built on first use, then cached).

  Args:
    config_name: "motion" or "appearance".
    data_dir: TFDS data dir (default: TFDS's, usually ~/tensorflow_datasets).
    **overrides: SyntheticMotionConfig fields (e.g. train_per_class=4); a config with
      overrides gets its own name, so it is cached apart from the named configs.

  Returns:
    The builder; read it with `builder.as_data_source(split)`.
  """
  config = make_config(config_name, **overrides)
  builder = SyntheticMotion(config=config, data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  return builder
