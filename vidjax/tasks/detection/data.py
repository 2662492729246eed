"""AVA-style keyframes as fixed-shape, masked batches for a jitted step.

A `Keyframe` is one annotated instant of a video: the frame index of the
keyframe, its person boxes (normalised x1, y1, x2, y2) and multi-hot labels.
The model sees the clip of `num_frames` frames `frame_stride` apart centred
on it (PySlowFast `utils.get_sequence`: frames center - T * stride / 2 + k *
stride, clamped to the video) and classifies each box (Gu et al., CVPR 2018;
Feichtenhofer et al., SlowFast, ICCV 2019, Sec. 5: "the region of interest
features are extracted from the clip centred on the keyframe").

`make_batch` returns numpy arrays of one shape per config, so the step
compiles once:

  video      [B, T, S, S, 3] uint8   (S = dataset.crop_size)
  boxes      [B, M, 4] float32       normalised x1, y1, x2, y2 (0 on padding)
  box_mask   [B, M] bool             True on real boxes
  labels     [B, M, K] float32       multi-hot (0 on padding)
  scores     [B, M] float32          detector score (1 for GT boxes)
  index      [B] int32               keyframe index in its KeyframeSet

(M = dataset.max_boxes, or the most boxes of any keyframe when 0; K
classes.) Frames are letterboxed to square (box_augment.letterbox), then in
training randomly cropped (dataset.box_crop_scale, default (0.6, 1)) and
flipped (dataset.flip; labels permuted by the dataset's flip permutation),
resized to crop_size. Training uses GT boxes; evaluation uses GT or the
detector's boxes (`dataset.eval_boxes` = "gt" | "detector"; detector boxes
with score >= dataset.detection_score_thresh, 0.8 like PySlowFast).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from vidjax.data import box_augment
from vidjax.errors import VidjaxError


@dataclasses.dataclass
class Keyframe:
  video_id: str
  timestamp: int          # seconds, as in the CSVs
  center: int             # frame index of the keyframe in the video
  boxes: np.ndarray       # [n, 4] float32
  labels: np.ndarray      # [n, K] uint8 multi-hot (zeros: detector boxes)
  scores: np.ndarray      # [n] float32


@dataclasses.dataclass
class KeyframeSet:
  """Keyframes and a frame reader: `frames(video_id, indices)` -> uint8
  [len(indices), H, W, 3], `num_frames(video_id)`."""
  keyframes: list
  videos: Any
  flip_permutation: Sequence[int] | None = None

  def __len__(self) -> int:
    return len(self.keyframes)


def clip_indices(center: int, num_frames: int, stride: int,
                 video_frames: int) -> np.ndarray:
  """Frame indices of the clip centred on `center` (get_sequence's rule)."""
  start = int(center) - (num_frames * stride) // 2
  idx = start + stride * np.arange(num_frames)
  return np.clip(idx, 0, max(int(video_frames) - 1, 0))


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  num_frames: int = 16
  frame_stride: int = 1
  crop_size: int = 64
  max_boxes: int = 4
  crop_scale: tuple = (0.6, 1.0)
  flip: bool = True

  @classmethod
  def from_config(cls, d, max_boxes: int) -> "ClipSpec":
    spec = cls(num_frames=int(d.get("num_frames", 16)),
               frame_stride=int(d.get("frame_stride", 1)),
               crop_size=int(d.get("crop_size", 64)),
               max_boxes=int(d.get("max_boxes", 0) or max_boxes),
               crop_scale=tuple(d.get("box_crop_scale", (0.6, 1.0))),
               flip=bool(d.get("flip", True)))
    for key in ("num_frames", "frame_stride", "crop_size", "max_boxes"):
      if getattr(spec, key) < 1:
        raise VidjaxError(f"config.dataset.{key}={getattr(spec, key)}: must "
                          "be >= 1")
    lo, hi = spec.crop_scale
    if not 0 < lo <= hi <= 1:
      raise VidjaxError(f"config.dataset.box_crop_scale={spec.crop_scale}: "
                        "needs 0 < min <= max <= 1 (fraction of the side)")
    return spec


def make_batch(kset: KeyframeSet, indices, spec: ClipSpec,
               rng: np.random.Generator | None = None) -> dict:
  """The fixed-shape batch of keyframes `indices` (module docstring); `rng`
  given: training augmentation, else the letterboxed clip resized. A
  keyframe with more than max_boxes boxes keeps the max_boxes best-scored
  (the first ones among equal scores)."""
  b, m, s = len(indices), spec.max_boxes, spec.crop_size
  k = kset.keyframes[int(indices[0])].labels.shape[1]
  out = {"video": np.zeros((b, spec.num_frames, s, s, 3), np.uint8),
         "boxes": np.zeros((b, m, 4), np.float32),
         "box_mask": np.zeros((b, m), bool),
         "labels": np.zeros((b, m, k), np.float32),
         "scores": np.zeros((b, m), np.float32),
         "index": np.asarray(indices, np.int32)}
  for row, i in enumerate(indices):
    kf = kset.keyframes[int(i)]
    idx = clip_indices(kf.center, spec.num_frames, spec.frame_stride,
                       kset.videos.num_frames(kf.video_id))
    frames = kset.videos.frames(kf.video_id, idx)
    side = max(frames.shape[1:3])
    frames, boxes = box_augment.letterbox(frames, kf.boxes, side)
    labels, scores = kf.labels, kf.scores
    if rng is not None:
      frames, boxes, labels, keep = box_augment.augment(
          frames, boxes, labels, rng, s, spec.crop_scale, spec.flip,
          kset.flip_permutation)
      scores = scores[keep]
    else:
      frames = box_augment.resize_clip(frames, s, s)
    order = np.argsort(-scores, kind="stable")[:m]
    n = len(order)
    out["video"][row] = frames
    out["boxes"][row, :n] = boxes[order]
    out["box_mask"][row, :n] = True
    out["scores"][row, :n] = scores[order]
    out["labels"][row, :n] = labels[order]
  return out


def batches(kset: KeyframeSet, batch_size: int, spec: ClipSpec, seed: int,
            train: bool = True):
  """Endless shuffled training batches (train) or one pass in order (the
  last batch padded by repeating its final keyframe; `valid` [B] marks the
  real rows)."""
  rng = np.random.default_rng(seed)
  n = len(kset)
  if n == 0:
    raise VidjaxError("no keyframes to batch (check the dataset's CSVs)")
  if train:
    while True:
      order = rng.permutation(n)
      for j in range(0, n - batch_size + 1, batch_size):
        yield make_batch(kset, order[j:j + batch_size], spec, rng)
      if n < batch_size:
        yield make_batch(kset, rng.integers(0, n, batch_size), spec, rng)
  for j in range(0, n, batch_size):
    idx = np.arange(j, min(j + batch_size, n))
    valid = np.arange(batch_size) < len(idx)
    idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])
    batch = make_batch(kset, idx, spec)
    batch["valid"] = valid
    yield batch


def prediction_rows(kset: KeyframeSet, batch: dict, probs: np.ndarray,
                    class_ids: Sequence[int]) -> list:
  """AVA result rows (ava_io.AvaRow: video_id, timestamp, box, action_id,
  score) of an evaluation batch (make_batch without rng) and its per-box
  class probabilities probs [B, M, K]: real rows and boxes only, each box
  in the keyframe's own coordinates (before the letterbox)."""
  from vidjax.tasks.detection import ava_io
  rows = []
  valid = batch.get("valid", np.ones(len(batch["index"]), bool))
  m = batch["box_mask"].shape[1]
  for row, i in enumerate(batch["index"]):
    kf = kset.keyframes[int(i)]
    order = np.argsort(-kf.scores, kind="stable")[:m]   # as make_batch
    if valid[row] and len(order):
      rows += ava_io.detections_to_rows(
          kf.video_id, kf.timestamp, kf.boxes[order], probs[row, :len(order)],
          class_ids, batch["box_mask"][row, :len(order)])
  return rows


# ------------------------------------------------------------------ datasets
class _Records:
  """synthetic_ava records as a frame reader (video_id -> record)."""

  def __init__(self, builder, split: str):
    self.source = builder.as_data_source(split)
    self.num = builder.builder_config.video_frames
    from vidjax.data.synthetic_ava import video_id
    self.by_id = {video_id(split, i): i for i in range(len(self.source))}

  def num_frames(self, video_id: str) -> int:
    return self.num

  def frames(self, video_id: str, indices) -> np.ndarray:
    return np.asarray(self.source[self.by_id[video_id]]["video"])[indices]


def _keyframes(groups, fps_to_frame) -> list:
  return [Keyframe(v, t, fps_to_frame(t), b, l, s)
          for v, t, b, l, s in groups]


def load(dataset_config) -> dict:
  """{"train", "test": KeyframeSet, "class_ids", "class_names", "max_boxes",
  "files": {"test_csv", "label_map", "test_excluded", ...}} of
  `synthetic_ava` (fields of SyntheticAvaConfig in config.dataset override
  the build's, e.g. train_videos) or `ava` (vidjax/data/ava_public.py).
  Train keyframes carry GT boxes; test ones GT or detector boxes
  (config.dataset.eval_boxes)."""
  d = dataset_config
  name = d.get("name", "")
  eval_boxes = d.get("eval_boxes", "gt")
  if eval_boxes not in ("gt", "detector"):
    raise VidjaxError(f"config.dataset.eval_boxes={eval_boxes!r}: must be "
                      "'gt' or 'detector'")
  thresh = d.get("detection_score_thresh", 0.8)
  if not 0.0 <= thresh <= 1.0:
    raise VidjaxError(f"config.dataset.detection_score_thresh={thresh}: "
                      "must be in [0, 1]")
  if name == "ava":
    from vidjax.data import ava_public as ap
    got = ap.load(d)
    sets = {s: KeyframeSet(_keyframes(got[s][0], ap.frame_index), got[s][1])
            for s in ("train", "test")}
    files, class_ids, names = got["files"], got["class_ids"], \
        got["class_names"]
  elif name == "synthetic_ava":
    sets, files, class_ids, names = _synthetic(d, eval_boxes)
  else:
    raise VidjaxError(f"config.dataset.name={name!r}: detection datasets are "
                      "synthetic_ava and ava")
  most = max([len(k.boxes) for s in sets.values() for k in s.keyframes] +
             [1])
  return {**sets, "class_ids": class_ids, "class_names": names,
          "max_boxes": most, "files": files}


def _synthetic(d, eval_boxes: str):
  import dataclasses as dc
  from vidjax.data import ava_public as ap
  from vidjax.data import ava_render
  from vidjax.data import synthetic_ava as sa
  fields = {f.name for f in dc.fields(sa.SyntheticAvaConfig)} - {
      "name", "version", "release_notes", "supported_versions",
      "description", "tags"}
  base = sa.make_config()
  overrides = {k: type(getattr(base, k))(d[k]) for k in fields
               if k in d and d[k] is not None and d[k] != getattr(base, k)}
  builder = sa.load_builder(d.get("data_dir") or None, **overrides)
  every = builder.builder_config.keyframe_every
  label_map = ap.read_label_map(sa.label_map_path(builder))
  class_ids = sorted(label_map)
  sets = {}
  for split in sa.SPLITS:
    gt = ap.read_boxes(sa.csv_path(builder, split))
    if split == "test" and eval_boxes == "detector":
      det = ap.read_boxes(sa.csv_path(builder, split, "detector"),
                          d.get("detection_score_thresh", 0.8))
      rows, is_gt = {k: det.get(k, []) for k in gt}, False
    else:
      rows, is_gt = gt, True
    groups = ap.group_keyframes(rows, class_ids, gt=is_gt)
    sets[split] = KeyframeSet(_keyframes(groups, lambda t: int(t) * every),
                              _Records(builder, split),
                              ava_render.FLIP_PERMUTATION)
  files = {"label_map": sa.label_map_path(builder)}
  for split in sa.SPLITS:
    files[f"{split}_csv"] = sa.csv_path(builder, split)
    files[f"{split}_excluded"] = sa.csv_path(builder, split, "excluded")
    files[f"{split}_detector_csv"] = sa.csv_path(builder, split, "detector")
  return sets, files, class_ids, [label_map[c] for c in class_ids]
