"""`synthetic_untrimmed`: embedded, offline TFDS dataset for temporal action
localization (issue #20), rendered by `untrimmed_render.py`.

Each example is one long video (256-512 frames of 32x32 by default) of an
object idling with class-neutral jitter and performing 1-4 non-overlapping
instances of the 8 `synthetic_motion` motion classes, 8-96 frames each:

  {"video": uint8 [T, H, W, 3], "num_frames": T, "fps": FPS,
   "video_id": "train_000007", "segments": int32 [n, 2] frames [start, end),
   "labels": [n] class ids}

Boundaries are exact: instance k is frames [start, end), i.e. the seconds
[start / fps, end / fps] (vidjax/tasks/localization/timing.py). The build
also writes the annotations in the ActivityNet JSON schema
(`<build dir>/activity_net.json`, subsets "training" = TFDS split train and
"validation" = split test), so the loader that reads the real
`activity_net.v1-3.min.json` reads these too (`annotations_path`).

Usage:
  builder = load_builder(train_videos=64)       # builds once, then cached
  source = builder.as_data_source("train")
  db = annotations.read_activitynet(annotations_path(builder))
"""
from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from vidjax.data import untrimmed_render  # noqa: E402
from vidjax.data.synthetic_render import MOTION_NAMES  # noqa: E402
from vidjax.data import builder_configs  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

ANNOTATION_FILE = "activity_net.json"
SUBSETS = {"train": "training", "test": "validation"}


@dataclasses.dataclass(eq=False)
class SyntheticUntrimmedConfig(tfds.core.BuilderConfig):
  """Generation settings (see untrimmed_render.plan for the shape fields)."""

  train_videos: int = 256
  test_videos: int = 64
  resolution: int = 32
  fps: float = 8.0  # nominal: frame k is [k / 8, (k + 1) / 8) s, exact in JSON
  min_frames: int = 256
  max_frames: int = 512
  min_instances: int = 1
  max_instances: int = 4
  min_duration: int = 8
  max_duration: int = 96
  min_gap: int = 4
  seed: int = 0

  def plan_kwargs(self) -> dict:
    return {k: getattr(self, k) for k in (
        "min_frames", "max_frames", "min_instances", "max_instances",
        "min_duration", "max_duration", "min_gap")}

  def num_videos(self, split: str) -> int:
    return self.train_videos if split == "train" else self.test_videos


def video_id(split: str, index: int) -> str:
  return f"{split}_{index:06d}"


def render_example(config: SyntheticUntrimmedConfig, split: str,
                   index: int) -> dict:
  """The example dict of (split, index): a pure function of the config."""
  video, segments, labels = untrimmed_render.render(
      config.seed, split, index, res=config.resolution,
      **config.plan_kwargs())
  return {"video": video, "num_frames": len(video), "fps": config.fps,
          "video_id": video_id(split, index),
          "segments": segments.astype(np.int32), "labels": labels}


def database(config: SyntheticUntrimmedConfig) -> dict:
  """{video_id: VideoAnnotation} of both splits, without drawing pixels."""
  from vidjax.tasks.localization.annotations import VideoAnnotation
  out = {}
  for split, subset in SUBSETS.items():
    for i in range(config.num_videos(split)):
      t, segs, labels = untrimmed_render.annotation(
          config.seed, split, i, **config.plan_kwargs())
      out[video_id(split, i)] = VideoAnnotation(
          video_id=video_id(split, i), duration=t / config.fps, subset=subset,
          segments=tuple((s / config.fps, e / config.fps, MOTION_NAMES[c])
                         for (s, e), c in zip(segs.tolist(), labels.tolist())))
  return out


class SyntheticUntrimmed(tfds.core.GeneratorBasedBuilder):
  """Long procedural videos with exactly annotated motion instances."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [SyntheticUntrimmedConfig(
      name="motion", description="1-4 motion instances per long video.")]
  DEFAULT_CONFIG_NAME = "motion"

  def _info(self) -> tfds.core.DatasetInfo:
    res = self.builder_config.resolution
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(None, res, res, 3), dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            "num_frames": tfds.features.Scalar(dtype=np.int32),
            "fps": tfds.features.Scalar(dtype=np.float32),
            "video_id": tfds.features.Text(),
            "segments": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
            "labels": tfds.features.Sequence(
                tfds.features.ClassLabel(names=list(MOTION_NAMES))),
        }),
        disable_shuffling=True,
        description=__doc__.split("\n\n")[0])

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {s: self._generate_examples(s) for s in SUBSETS}

  def _generate_examples(self, split: str):
    cfg = self.builder_config  # serial: ~75 ms per 384-frame video
    for i in range(cfg.num_videos(split)):
      yield i, render_example(cfg, split, i)


def annotations_path(builder) -> str:
  """The build's ActivityNet JSON (written on first use if missing)."""
  from vidjax.tasks.localization import annotations
  path = os.path.join(str(builder.data_dir), ANNOTATION_FILE)
  if not os.path.exists(path):
    annotations.write_activitynet(
        path, database(builder.builder_config),
        taxonomy=[{"nodeName": n, "nodeId": i} for i, n in
                  enumerate(MOTION_NAMES)])
  return path


def check_config(c: SyntheticUntrimmedConfig) -> None:
  """One-line VidjaxError naming the config.dataset field of an impossible
  setting, before anything is rendered."""
  def bad(key, why):
    raise VidjaxError(f"config.dataset.{key}={getattr(c, key)}: {why}")
  for key in ("train_videos", "test_videos", "min_instances", "min_gap"):
    if getattr(c, key) < (0 if key == "min_gap" else 1):
      bad(key, "must be >= " + ("0" if key == "min_gap" else "1"))
  if c.resolution < 8:
    bad("resolution", "must be >= 8 (pixels)")
  if not c.fps > 0:
    bad("fps", "must be > 0")
  if c.min_duration < 2:
    bad("min_duration", "must be >= 2 frames (a motion needs two)")
  for lo, hi in (("min_frames", "max_frames"), ("min_instances",
                 "max_instances"), ("min_duration", "max_duration")):
    if getattr(c, lo) > getattr(c, hi):
      bad(lo, f"is above {hi}={getattr(c, hi)}")
  need = c.max_instances * c.min_duration + (c.max_instances + 1) * c.min_gap
  if need > c.min_frames:
    bad("min_frames", f"cannot hold max_instances={c.max_instances} of "
        f"min_duration={c.min_duration} frames with min_gap={c.min_gap} "
        f"(needs >= {need})")


def make_config(**overrides) -> SyntheticUntrimmedConfig:
  """The default config, or a copy with `overrides` under a stable name."""
  return builder_configs.custom_config(
      SyntheticUntrimmed.BUILDER_CONFIGS[0], overrides, "synthetic_untrimmed",
      check_config)


def load_builder(data_dir: str | None = None, **overrides):
  """A prepared builder (built once into the TFDS data dir, then cached),
  its ActivityNet JSON written beside the records."""
  builder = SyntheticUntrimmed(config=make_config(**overrides),
                               data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  annotations_path(builder)
  return builder
