"""Window features of untrimmed videos from a trained vidjax video model.

The detector of this task trains on a time series of clip features, as
ActionFormer (Zhang et al. 2022, Sec. 4) and BMN (Lin et al. 2019, Sec. 4.1)
do: a backbone reads a clip window of `frames` frames (`frame_stride` apart)
every `stride` stored frames, and its pre-logits activation
(tools/extract_features.pre_logits: the input of the classifier layer) is
the feature of that step. Where each step sits in time is timing.py's
`FeatureTiming.windows` (span = (frames - 1) * frame_stride + 1, centre at
the half window), written beside the cache as `timing.json` so the features
can be regenerated and read back (issue #20: the releases leave window,
stride and fps undocumented).

`FeatureExtractor(run_dir)` is the backbone (a vidjax classification run
folder: its checkpoint, config, normalisation, frames and frame stride);
`extract(extractor, seq, stride)` maps one frame `data.Sequence` (one step
per frame) to its [N, D] features; `cached_split_features` computes and
caches a whole split as one .npz (`features_<split>.npz`). Used by the
localization task (vidjax/tasks/localization/task.py), tools.localize and
tools.localization_check.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks.localization import data
from vidjax.tasks.localization.timing import FeatureTiming

PAD_MULTIPLE = 32  # windows per call padded to a multiple: few compiled shapes
TIMING_FILE = "timing.json"


class FeatureExtractor:
  """A classification run's backbone as a jitted clips -> features map."""

  def __init__(self, run_dir: str):
    import jax  # noqa: PLC0415
    from vidjax import steps as steps_lib  # noqa: PLC0415
    from vidjax.viz.run import load_run  # noqa: PLC0415
    from tools.extract_features import pre_logits  # noqa: PLC0415
    self.run_dir = os.path.abspath(run_dir)
    run = load_run(run_dir, unscan=False, flag="config.dataset.backbone_run")
    d = run.config.dataset
    self.frames, self.frame_stride = int(d.num_frames), int(d.frame_stride)
    self.dataset_config = d
    mean, std = tuple(d.mean), tuple(d.std)
    self._fn = jax.jit(lambda x: pre_logits(
        run.model, run.variables, steps_lib.normalize(x, mean, std))[0])

  def __call__(self, clips: np.ndarray) -> np.ndarray:
    """[N, frames, H, W, C] uint8 -> [N, D] float32."""
    clips = np.asarray(clips)
    pad = (-len(clips)) % PAD_MULTIPLE
    padded = np.concatenate([clips, np.zeros((pad,) + clips.shape[1:],
                                             clips.dtype)])
    return np.asarray(self._fn(padded))[:len(clips)]

  def timing(self, fps: float, stride: int) -> FeatureTiming:
    return FeatureTiming.windows(fps, self.frames, self.frame_stride, stride)


def extract(extractor: FeatureExtractor, seq: data.Sequence,
            stride: int) -> np.ndarray:
  """[N, D] window features of a frame Sequence (one step per frame)."""
  windows = data.to_windows(seq, extractor.frames, extractor.frame_stride,
                            stride)
  return extractor(windows.inputs)


def timing_record(extractor: FeatureExtractor, fps: float, stride: int,
                  **extra) -> dict:
  """What `timing.json` holds: the window geometry and its time model."""
  t = extractor.timing(fps, stride)
  return {"backbone_run": extractor.run_dir, "fps": float(fps),
          "window_frames": extractor.frames,
          "frame_stride": extractor.frame_stride, "span": int(t.span),
          "stride": int(t.stride), "offset": int(t.offset),
          "centre_time": "(offset + i * stride + span / 2) / fps "
                         "(vidjax/tasks/localization/timing.py)", **extra}


def read_timing(cache_dir: str) -> dict:
  path = os.path.join(cache_dir, TIMING_FILE)
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def cached_split_features(extractor_fn, seqs, path: str, log=print) -> dict:
  """{video_id: [N, D]} of every Sequence in `seqs` (frames), read from the
  .npz at `path`, or computed (`extractor_fn(seq)`) and written there."""
  if not os.path.exists(path):
    t0, arrays = time.time(), {}
    for i in range(len(seqs)):
      seq = seqs[i]
      arrays[seq.video_id] = extractor_fn(seq)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # a stopped job leaves no half-written cache
    log(f"features: {len(arrays)} videos ({time.time() - t0:.0f} s) -> "
        f"{path}")
  cached = np.load(path)
  return {k: cached[k] for k in cached.files}


def feature_sequences(ds: dict, extractor: FeatureExtractor, stride: int,
                      cache_dir: str, log=print, **timing_extra) -> dict:
  """ds (data.load of synthetic_untrimmed frames) with its "train"/"test"
  sources replaced by lists of [N, D] feature Sequences (cached in
  cache_dir, with timing.json; a cache of another backbone or geometry is an
  error naming the folder)."""
  os.makedirs(cache_dir, exist_ok=True)
  fps = float(ds["train"].fps)
  record = timing_record(extractor, fps, stride, **timing_extra)
  old = read_timing(cache_dir)
  if old and old != record:
    raise VidjaxError(f"{cache_dir} holds features of another backbone or "
                      "window geometry (its timing.json differs): remove it "
                      "or use another workdir")
  with open(os.path.join(cache_dir, TIMING_FILE), "w") as f:
    json.dump(record, f, indent=1)
  timing = extractor.timing(fps, stride)
  index = {c: i for i, c in enumerate(ds["class_names"])}
  out = dict(ds)
  for split in ("train", "test"):
    seqs = ds[split]
    arrays = cached_split_features(
        lambda s: extract(extractor, s, stride), seqs,
        os.path.join(cache_dir, f"features_{split}.npz"), log)
    out[split] = [data.from_annotation(v, arrays[v], timing,
                                       ds["database"][v], index)
                  for v in seqs.video_ids]
  return out
