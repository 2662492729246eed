"""`video_flow`: the optical-flow view of any dataset, computed once and cached.

A TFDS builder (array_record, random access, like `synthetic_motion`) whose
config names a BASE dataset (its name, config, a hash of its identifying
settings, its split sizes), the flow algorithm and the quantisation bound.
Building it reads the base's train/test sources (`len` / `source[i]` ->
{"video", "label"}; `video` a uint8 [T, H, W, 3] array or a lazy video with
`.frames(indices)`, `.shape`, `len`), computes the flow of every video with
`optical_flow.video_flow` and stores per video, in the base's index order:

  flow   one zlib blob per frame of the uint8 [T, H, W, 2] quantised flow
  shape  (T, H, W, 2)
  label  the base's label; index, path: the base's index and "path" ("" if
         none), checked on every read against the base source

Sizes (zlib per frame): synthetic_motion/motion at 32x32, ~120 B per frame
(raw: 2 KB; mostly zero flow around one moving object); real video (bikes.mp4
at 340x144) ~10x smaller than raw, about a PNG's size (see optical_flow.py).
Build cost (CPU time, busy 2-core machine): Farneback ~5 ms per 32-frame
32x32 video (the default synthetic_motion/motion, 5600 videos: ~30 CPU-s of
flow), ~10 ms per frame pair at 340x144; TV-L1 ~25-40 ms per 32x32 pair
(that build: 1-2 CPU-hours) and ~0.35 s at 340x144. Videos are processed in a
thread pool (OpenCV releases the GIL).

`modality_view(dataset, dataset_config)` returns the dataset whose sources give
`video` = flow (modality "flow", 2 channels) or RGB then flow (modality
"rgb+flow", 5 channels) per frame; `datasets.load` calls it.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from vidjax.data import optical_flow  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

# dataset_config fields that decide which videos a base holds and how they are
# stored (synthetic_motion; video_folder and the public datasets). They, the
# split sizes and the videos' paths (sources with `.paths`) name the cache;
# clip sampling and augmentation fields do not, so changing them never
# recomputes flow. Each record also keeps its base path, checked on reads.
IDENTITY_FIELDS = (
    "name", "config", "train_per_class", "test_per_class", "path",
    "train_list", "test_list", "csv", "test_fraction", "manual_dir", "split",
    "resize_short", "fps", "jpeg_quality")
_CHUNK = 64  # frames of a lazy video decoded at a time while computing flow


@dataclasses.dataclass(eq=False)
class VideoFlowConfig(tfds.core.BuilderConfig):
  """The base dataset a `video_flow` build is the flow of, and how."""

  base_name: str = ""
  base_config: str = ""
  base_settings: str = ""  # the base's identifying settings (name's hash)
  algorithm: str = "farneback"
  bound: float = optical_flow.DEFAULT_BOUND
  class_names: tuple = ()


class VideoFlow(tfds.core.GeneratorBasedBuilder):
  """Quantised dense optical flow of every video of a base dataset."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = []

  def __init__(self, *, base=None, **kwargs):
    self._base = base  # the base Dataset; only needed to build
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    names = list(cfg.class_names)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "flow": tfds.features.Tensor(shape=(None,), dtype=np.object_),
            "shape": tfds.features.Tensor(shape=(4,), dtype=np.int32),
            "label": tfds.features.ClassLabel(names=names),
            "index": tfds.features.Scalar(dtype=np.int64),
            "path": tfds.features.Text(),
        }),
        disable_shuffling=True,  # record i is the flow of base video i
        description=__doc__.split("\n\n")[0],
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    if self._base is None:
      raise VidjaxError(f"video_flow/{self.builder_config.name} is not built "
                        "and no base dataset was given to build it from")
    return {"train": self._generate_examples(self._base.train),
            "test": self._generate_examples(self._base.test)}

  def _generate_examples(self, source):
    cfg = self.builder_config
    workers = max(os.cpu_count() or 1, 1)

    def example(i):
      ex = source[i]
      q = optical_flow.quantize(flow_of(ex["video"], cfg.algorithm), cfg.bound)
      return {"flow": optical_flow.encode_frames(q),
              "shape": np.array(q.shape, np.int32),
              "label": int(ex["label"]), "index": i,
              "path": str(ex.get("path", ""))}

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      n = len(source)
      for lo in range(0, n, 4 * workers):  # bounded window, in index order
        window = range(lo, min(n, lo + 4 * workers))
        for i, ex in zip(window, pool.map(example, window)):
          yield i, ex


def flow_of(video, method: str) -> np.ndarray:
  """float32 [T, H, W, 2] flow of a stored video (array or `.frames` lazy)."""
  if not hasattr(video, "frames"):
    return optical_flow.video_flow(np.asarray(video), method)
  t = len(video)
  if t <= _CHUNK:
    return optical_flow.video_flow(video.frames(np.arange(t)), method)
  parts, prev = [], None
  for lo in range(0, t, _CHUNK):  # decode in chunks; pairs across chunks too
    idx = np.arange(lo, min(t, lo + _CHUNK))
    gray = optical_flow.to_gray(video.frames(idx))
    if prev is not None:
      gray = np.concatenate([prev[None], gray])
    parts += [optical_flow.pair_flow(a, b, method)
              for a, b in zip(gray[:-1], gray[1:])]
    prev = gray[-1]
  parts.append(parts[-1])  # the last frame repeats the previous flow
  return np.stack(parts)


def _slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_") or "x"


def make_config(base_name: str, base_config: str, settings: dict,
                class_names, algorithm: str = "farneback",
                bound: float = optical_flow.DEFAULT_BOUND) -> VideoFlowConfig:
  """The `video_flow` config of a base; its name is stable and unique to it."""
  if algorithm not in optical_flow.ALGORITHMS:
    raise VidjaxError(f"config.dataset.flow_algorithm={algorithm!r} must be "
                      f"one of {optical_flow.ALGORITHMS}")
  text = repr(sorted((str(k), repr(v)) for k, v in settings.items()))
  digest = hashlib.sha1(
      f"{text}|{list(class_names)}|{float(bound)!r}".encode()).hexdigest()[:10]
  base = "_".join(_slug(p) for p in (base_name, base_config) if p)
  name = f"{base}_{algorithm}_b{_slug(f'{float(bound):g}')}_{digest}"
  return VideoFlowConfig(
      name=name, base_name=base_name, base_config=base_config,
      base_settings=text, algorithm=algorithm, bound=float(bound),
      class_names=tuple(class_names), description=f"{algorithm} flow of "
      f"{base_name}{'/' + base_config if base_config else ''}")


def load_builder(base, config: VideoFlowConfig, data_dir=None) -> VideoFlow:
  """The prepared flow build of `base` (a Dataset), built on first use."""
  builder = VideoFlow(config=config, data_dir=data_dir or None, base=base)
  builder.download_and_prepare(file_format="array_record")
  return builder


def base_settings(dataset, dataset_config) -> dict:
  """What identifies the base's stored videos (hashed into the cache name)."""
  settings = {k: dataset_config[k] for k in IDENTITY_FIELDS
              if k in dataset_config}
  for split in ("train", "test"):
    source = getattr(dataset, split)
    settings[f"_{split}_size"] = len(source)
    if getattr(source, "paths", None) is not None:
      settings[f"_{split}_paths"] = hashlib.sha1(
          "\n".join(map(str, source.paths)).encode()).hexdigest()
  return settings


def modality_view(dataset, dataset_config):
  """`dataset` with sources for config.dataset.modality (rgb: unchanged)."""
  mode = optical_flow.modality(dataset_config)
  if mode == "rgb":
    return dataset
  name = dataset_config.name  # `config` only names synthetic_motion's data
  config = make_config(
      name, dataset_config.get("config", "") if name == "synthetic_motion"
      else "",
      base_settings(dataset, dataset_config), dataset.class_names,
      optical_flow.algorithm(dataset_config),
      optical_flow.bound(dataset_config))
  builder = load_builder(dataset, config, dataset_config.get("data_dir", ""))
  views = {}
  for split in ("train", "test"):
    base = getattr(dataset, split)
    flow = FlowSource(builder.as_data_source(split=split),
                      getattr(base, "paths", None))
    if len(flow) != len(base):
      raise VidjaxError(f"{builder.data_dir}: the cached flow has {len(flow)} "
                        f"{split} videos, the dataset {len(base)}; delete it")
    views[split] = ModalitySource(base, flow, mode)
  return dataclasses.replace(dataset, **views)


class LazyFlow:
  """Quantised flow [T, H, W, 2] of one video; decodes only requested frames."""

  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, blobs, shape):
    self.blobs, self.shape = blobs, tuple(int(s) for s in shape)

  def __len__(self):
    return self.shape[0]

  def frames(self, indices) -> np.ndarray:
    return optical_flow.decode_frames(self.blobs, self.shape,
                                      np.asarray(indices).reshape(-1))

  def __array__(self, dtype=None, copy=None):
    out = self.frames(np.arange(len(self)))
    return out if dtype is None else out.astype(dtype)

  def __getitem__(self, key):
    return _index(self, key)


class LazyConcat:
  """RGB then flow channels of one video, decoded per requested frame."""

  dtype = np.dtype(np.uint8)
  ndim = 4

  def __init__(self, rgb, flow: LazyFlow):
    self.rgb, self.flow = rgb, flow
    self.shape = tuple(rgb.shape[:3]) + (rgb.shape[3] + 2,)

  def __len__(self):
    return self.shape[0]

  def frames(self, indices) -> np.ndarray:
    idx = np.asarray(indices).reshape(-1)
    rgb = self.rgb.frames(idx) if hasattr(self.rgb, "frames") else np.asarray(
        self.rgb)[idx]
    return np.concatenate([np.asarray(rgb, np.uint8), self.flow.frames(idx)],
                          -1)

  def __array__(self, dtype=None, copy=None):
    out = self.frames(np.arange(len(self)))
    return out if dtype is None else out.astype(dtype)

  def __getitem__(self, key):
    return _index(self, key)


def _index(video, key):
  """numpy indexing of a lazy video: decode the selected frames, then index."""
  key = key if isinstance(key, tuple) else (key,)
  first, rest = key[0], key[1:]
  if isinstance(first, (int, np.integer)):
    return video.frames([first])[0][rest]
  if isinstance(first, slice):
    first = np.arange(len(video))[first]
  return video.frames(np.asarray(first))[(slice(None),) + rest]


class FlowSource:
  """A `video_flow` split as a source: {"video": LazyFlow, "label"}."""

  def __init__(self, data_source, paths=None):
    self.data_source, self.paths = data_source, paths

  def __len__(self):
    return len(self.data_source)

  def _wrap(self, i: int, rec: dict) -> dict:
    if int(rec["index"]) != i:
      raise VidjaxError(f"video_flow record {i} holds base video "
                        f"{int(rec['index'])}: the cache is corrupt; delete it")
    path = rec["path"].decode() if isinstance(rec["path"], bytes) else str(
        rec["path"])
    if self.paths is not None and path != str(self.paths[i]):
      raise VidjaxError(f"video_flow record {i} is the flow of {path}, the "
                        f"dataset's video {i} is {self.paths[i]}: delete the "
                        "stale video_flow build")
    return {"video": LazyFlow(rec["flow"], rec["shape"]),
            "label": int(rec["label"])}

  def __getitem__(self, i):
    return self._wrap(int(i), self.data_source[int(i)])

  def __getitems__(self, indices):
    indices = [int(i) for i in indices]
    recs = (self.data_source.__getitems__(indices)
            if hasattr(self.data_source, "__getitems__")
            else [self.data_source[i] for i in indices])
    return [self._wrap(i, r) for i, r in zip(indices, recs)]


class ModalitySource:
  """Base video source + flow source -> the modality's `video` per example.

  "flow": {"video": LazyFlow, "label"} (the base is not read). "rgb+flow":
  RGB then flow channels, a uint8 [T, H, W, 5] array when the base stores
  arrays, else a LazyConcat; the base example's other keys (e.g. "path") pass
  through. Attributes (e.g. `paths`, `labels`) are the base's.
  """

  def __init__(self, base, flow: FlowSource, mode: str):
    self.base, self.flow, self.mode = base, flow, mode

  def __len__(self):
    return len(self.flow)

  def __getattr__(self, name):  # the base's per-video lists (paths, labels)
    if name in ("base", "flow", "mode"):
      raise AttributeError(name)
    return getattr(self.base, name)

  def _combine(self, ex: dict, fl: dict) -> dict:
    out = dict(ex)
    video, flow = ex["video"], fl["video"]
    if tuple(video.shape[:3]) != flow.shape[:3]:
      raise VidjaxError(f"the cached flow has shape {flow.shape[:3]}, the "
                        f"video {tuple(video.shape[:3])}: delete the stale "
                        "video_flow build")
    if isinstance(video, np.ndarray):
      out["video"] = np.concatenate([video, np.asarray(flow)], -1)
    else:
      out["video"] = LazyConcat(video, flow)
    return out

  def __getitem__(self, i):
    if self.mode == "flow":
      return self.flow[i]
    return self._combine(self.base[int(i)], self.flow[i])

  def __getitems__(self, indices):
    flows = self.flow.__getitems__(indices)
    if self.mode == "flow":
      return flows
    if hasattr(self.base, "__getitems__"):
      bases = self.base.__getitems__([int(i) for i in indices])
    else:
      bases = [self.base[int(i)] for i in indices]
    return [self._combine(b, f) for b, f in zip(bases, flows)]
