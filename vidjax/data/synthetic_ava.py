"""`synthetic_ava`: embedded, offline, seeded TFDS dataset for spatio-temporal
action detection (issue #21; AVA, Gu et al., CVPR 2018), rendered by
`ava_render.py` (2-3 actors per video, each in its own box, each doing one
`synthetic_motion` motion class, some also "flashing"; see there).

Each example is one video (64 frames of 64x64 by default):

  {"video": uint8 [T, H, W, 3], "video_id": "train_000007", "fps": 8,
   "keyframes": int32 [K] frame indices (8, 16, ..., T - 8),
   "boxes": float32 [K, n, 4] GT x1, y1, x2, y2 in [0, 1] per keyframe and
   actor, "labels": uint8 [n, 9] multi-hot per actor (constant over time)}

Nominal fps = keyframe_every (8), so keyframe frame f is the whole second
f / 8: timestamps 1..7 like AVA's 1 Hz keyframes. Beside the records
(`<build dir>/`, written on first use, AVA formats read by ava_public):

  {split}.csv                    GT: video_id, timestamp, x1, y1, x2, y2,
                                 action_id (1-based), person_id
  {split}_detector.csv           "detector" boxes: ..., x2, y2, , score
                                 (jitter, misses, false positives: ava_render)
  {split}_excluded_timestamps.csv  empty (no keyframe excluded)
  action_list.pbtxt              the 9 classes, all evaluated (ids 1..9)

Usage:
  builder = load_builder(train_videos=64)      # builds once, then cached
  source = builder.as_data_source("train")
  gt = ava_public.read_boxes(csv_path(builder, "train"))
"""
from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from vidjax.data import ava_public, ava_render  # noqa: E402
from vidjax.data import builder_configs  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

ACTION_NAMES = ava_render.ACTION_NAMES
SPLITS = ("train", "test")
LABEL_MAP = "action_list.pbtxt"


@dataclasses.dataclass(eq=False)
class SyntheticAvaConfig(tfds.core.BuilderConfig):
  """Generation settings (ava_render.plan / render for their meaning)."""

  train_videos: int = 512
  test_videos: int = 128
  video_frames: int = 64   # (config.dataset.num_frames is the clip length)
  resolution: int = 64
  keyframe_every: int = 8
  min_actors: int = 2
  max_actors: int = 3
  flash_prob: float = 0.4
  seed: int = 0

  @property
  def fps(self) -> float:
    return float(self.keyframe_every)

  def num_videos(self, split: str) -> int:
    return self.train_videos if split == "train" else self.test_videos

  def plan_kwargs(self) -> dict:
    return {"num_frames": self.video_frames, "res": self.resolution,
            "min_actors": self.min_actors, "max_actors": self.max_actors,
            "flash_prob": self.flash_prob}


def video_id(split: str, index: int) -> str:
  return f"{split}_{index:06d}"


def render_example(config: SyntheticAvaConfig, split: str, index: int) -> dict:
  """The example dict of (split, index): a pure function of the config."""
  video, actors = ava_render.render(config.seed, split, index,
                                    **config.plan_kwargs())
  kf = ava_render.keyframes(config.video_frames, config.keyframe_every)
  return {"video": video, "video_id": video_id(split, index),
          "fps": config.fps, "keyframes": kf.astype(np.int32),
          "boxes": ava_render.gt_boxes(actors, kf, config.resolution),
          "labels": np.stack([a["labels"] for a in actors])}


def annotation_rows(config: SyntheticAvaConfig, split: str):
  """(GT rows, detector rows) of a split in ava_public.write_boxes' form,
  without drawing pixels. Timestamp = keyframe frame / fps (whole seconds);
  action ids are 1-based; person ids are the actor's index in its video."""
  kf = ava_render.keyframes(config.video_frames, config.keyframe_every)
  seconds = (kf // config.keyframe_every).tolist()
  gt_rows, det_rows = [], []
  for i in range(config.num_videos(split)):
    vid = video_id(split, i)
    actors = ava_render.plan(config.seed, split, i, **config.plan_kwargs())
    boxes = ava_render.gt_boxes(actors, kf, config.resolution)
    for k, ts in enumerate(seconds):
      for person, a in enumerate(actors):
        for action in np.flatnonzero(a["labels"]):
          gt_rows.append((vid, ts, boxes[k, person], int(action) + 1, person))
    for ts, (b, s, _) in zip(seconds, ava_render.detections(
        config.seed, split, i, boxes)):
      det_rows += [(vid, ts, box, -1, float(sc)) for box, sc in zip(b, s)]
  return gt_rows, det_rows


def csv_path(builder, split: str, kind: str = "gt") -> str:
  """The build's AVA-format file of `split`: kind "gt", "detector" or
  "excluded" (written with the others on first use if missing)."""
  suffix = {"gt": "", "detector": "_detector",
            "excluded": "_excluded_timestamps"}[kind]
  path = os.path.join(str(builder.data_dir), f"{split}{suffix}.csv")
  if not os.path.exists(path):
    write_annotations(builder)
  return path


def label_map_path(builder) -> str:
  path = os.path.join(str(builder.data_dir), LABEL_MAP)
  if not os.path.exists(path):
    write_annotations(builder)
  return path


def write_annotations(builder) -> None:
  """Writes the CSVs and the pbtxt beside the records (see the docstring)."""
  cfg, folder = builder.builder_config, str(builder.data_dir)
  for split in SPLITS:
    gt, det = annotation_rows(cfg, split)
    ava_public.write_boxes(os.path.join(folder, f"{split}.csv"), gt)
    ava_public.write_boxes(os.path.join(folder, f"{split}_detector.csv"), det,
                           scores=True)
    open(os.path.join(folder, f"{split}_excluded_timestamps.csv"), "w").close()
  ava_public.write_label_map(os.path.join(folder, LABEL_MAP),
                             {i + 1: n for i, n in enumerate(ACTION_NAMES)})


class SyntheticAva(tfds.core.GeneratorBasedBuilder):
  """Procedural multi-actor videos with per-actor boxes and motion actions."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "Object log-size range x2, so grow / shrink "
                            "show within a 16-frame clip."}
  BUILDER_CONFIGS = [SyntheticAvaConfig(
      name="motion", description="2-3 actors, motion-defined actions.")]
  DEFAULT_CONFIG_NAME = "motion"

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(c.video_frames, c.resolution, c.resolution, 3),
                dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "video_id": tfds.features.Text(),
            "fps": tfds.features.Scalar(dtype=np.float32),
            "keyframes": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "boxes": tfds.features.Tensor(
                shape=(None, None, 4), dtype=np.float32,
                encoding=tfds.features.Encoding.BYTES),
            "labels": tfds.features.Tensor(shape=(None, len(ACTION_NAMES)),
                                           dtype=np.uint8),
        }),
        disable_shuffling=True,
        description=__doc__.split("\n\n")[0])

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {s: self._generate_examples(s) for s in SPLITS}

  def _generate_examples(self, split: str):
    cfg = self.builder_config  # serial: ~10 ms per video
    for i in range(cfg.num_videos(split)):
      yield i, render_example(cfg, split, i)


def check_config(c: SyntheticAvaConfig) -> None:
  """One-line VidjaxError naming the config.dataset field of an impossible
  setting, before anything is rendered."""
  def bad(key, why):
    raise VidjaxError(f"config.dataset.{key}={getattr(c, key)}: {why}")
  for key in ("train_videos", "test_videos"):
    if getattr(c, key) < 1:
      bad(key, "must be >= 1")
  if c.resolution < 32:
    bad("resolution", "must be >= 32 (pixels: four actor cells)")
  if c.keyframe_every < 1:
    bad("keyframe_every", "must be >= 1 (frames)")
  if c.video_frames < 2 * c.keyframe_every:
    bad("video_frames", f"must be >= 2 * keyframe_every={c.keyframe_every} "
        "(one keyframe with a clip around it)")
  if not 1 <= c.min_actors <= c.max_actors <= 4:
    bad("min_actors", f"must satisfy 1 <= min_actors <= max_actors="
        f"{c.max_actors} <= 4 (one actor per frame quadrant)")
  if not 0.0 <= c.flash_prob <= 1.0:
    bad("flash_prob", "must be in [0, 1]")


def make_config(**overrides) -> SyntheticAvaConfig:
  """The default config, or a copy with `overrides` under a stable name."""
  return builder_configs.custom_config(SyntheticAva.BUILDER_CONFIGS[0],
                                       overrides, "synthetic_ava", check_config)


def load_builder(data_dir: str | None = None, **overrides):
  """A prepared builder (built once into the TFDS data dir, then cached),
  its AVA-format CSVs and pbtxt written beside the records."""
  builder = SyntheticAva(config=make_config(**overrides), data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  label_map_path(builder)
  return builder
