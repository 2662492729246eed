"""The candidate clips of every long video, scored once and cached.

For each video of a split: the `n` candidate clips (samplers.
candidate_starts; each is the classifier's clip: `frames` frames
`frame_stride` apart, a span of (frames - 1) frame_stride + 1 frames), the
fraction of each inside the annotated action (samplers.action_overlap), the
video's label, the sampler's cheap features (saliency.video_features) and, on
the test split, the expensive classifier's class probabilities of EVERY
candidate. Computing all of them once is what lets one evaluation report
every strategy; each strategy is charged only for the clips it would have
run (evaluate.py counts them). Cached as WORKDIR/clips/<split>.npz beside a
meta.json naming the classifier and the geometry (a cache of another
classifier or geometry is an error naming the folder, as the localization
feature cache).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks.long_video import saliency, samplers

PAD_MULTIPLE = 32  # clips per classifier call padded: few compiled shapes


class Classifier:
  """A vidjax classification run as a jitted clips -> probabilities map,
  with its clip geometry and multiply-adds per clip (vidjax.costs)."""

  def __init__(self, run_dir: str, flag: str = "config.classifier_run"):
    import jax  # noqa: PLC0415
    from vidjax import costs, steps  # noqa: PLC0415
    from vidjax.viz.run import load_run  # noqa: PLC0415
    self.run_dir = os.path.abspath(run_dir)
    run = load_run(run_dir, unscan=False, flag=flag)
    d = run.config.dataset
    self.frames, self.frame_stride = int(d.num_frames), int(d.frame_stride)
    self.span = (self.frames - 1) * self.frame_stride + 1
    self.shape = steps.input_shape(run.config)
    self.class_names = tuple(run.class_names)
    self.gmacs = float(costs.kernel_gmacs(run.model, self.shape))
    mean, std = tuple(d.mean), tuple(d.std)
    self._fn = jax.jit(lambda x: jax.nn.softmax(run.model.apply(
        run.variables, steps.normalize(x, mean, std), train=False), -1))

  def __call__(self, clips: np.ndarray) -> np.ndarray:
    """[N, frames, H, W, C] uint8 -> [N, classes] float32 probabilities."""
    clips = np.asarray(clips)
    if clips.shape[1:] != tuple(self.shape):
      raise VidjaxError(f"clips of shape {clips.shape[1:]} do not fit the "
                        f"classifier {self.run_dir} (input {self.shape}): "
                        "config.dataset.synthetic.resolution must be its crop")
    pad = (-len(clips)) % PAD_MULTIPLE
    padded = np.concatenate([clips, np.zeros((pad,) + clips.shape[1:],
                                             clips.dtype)])
    return np.asarray(self._fn(padded))[:len(clips)]


def video_clips(video: np.ndarray, starts, frames: int, frame_stride: int
                ) -> np.ndarray:
  """[n, frames, H, W, C] clips starting at `starts`."""
  idx = np.asarray(starts)[:, None] + np.arange(frames)[None] * frame_stride
  return np.asarray(video)[idx]


def frame_segments(seq) -> np.ndarray:
  """A localization data.Sequence's segments (seconds) in frames [s, e)."""
  fps = seq.timing.fps
  return np.round(np.asarray(seq.segments, np.float64).reshape(-1, 2) *
                  fps).astype(np.int64)


def video_label(seq) -> int:
  """The one class of a video (every instance has it)."""
  labels = np.unique(np.asarray(seq.labels))
  if len(labels) != 1:
    raise VidjaxError(f"video {seq.video_id}: {len(labels)} action classes; "
                      "the long_video task needs one label per video (a "
                      "synthetic build with max_instances=1)")
  return int(labels[0])


def split_arrays(seqs, classifier: Classifier, num_candidates: int,
                 sampler_res: int, with_probs: bool, log=print) -> dict:
  """The arrays of one split (module docstring), computed."""
  t0, out = time.time(), {k: [] for k in (
      "video_ids", "labels", "starts", "overlap", "features", "probs")}
  for i in range(len(seqs)):
    seq = seqs[i]
    video = np.asarray(seq.inputs)
    starts = samplers.candidate_starts(len(video), classifier.span,
                                       num_candidates)
    clips = video_clips(video, starts, classifier.frames,
                        classifier.frame_stride)
    out["video_ids"].append(seq.video_id)
    out["labels"].append(video_label(seq))
    out["starts"].append(starts)
    out["overlap"].append(samplers.action_overlap(
        starts, classifier.span, frame_segments(seq)))
    out["features"].append(saliency.video_features(clips, sampler_res))
    if with_probs:
      out["probs"].append(classifier(clips))
  if not with_probs:
    del out["probs"]
  arrays = {k: np.asarray(v) for k, v in out.items()}
  log(f"clips: {len(seqs)} videos x {num_candidates} candidates "
      f"({'classifier + ' if with_probs else ''}sampler inputs, "
      f"{time.time() - t0:.0f} s)")
  return arrays


def cached(ds: dict, classifier: Classifier, num_candidates: int,
           sampler_res: int, cache_dir: str, log=print, **record_extra
           ) -> dict:
  """{"train": arrays, "test": arrays} read from cache_dir or computed and
  written there (train: no classifier probabilities, it is not evaluated
  there)."""
  os.makedirs(cache_dir, exist_ok=True)
  record = {"classifier_run": classifier.run_dir,
            "frames": classifier.frames,
            "frame_stride": classifier.frame_stride,
            "num_candidates": int(num_candidates),
            "sampler_res": int(sampler_res), **record_extra}
  meta = os.path.join(cache_dir, "meta.json")
  if os.path.exists(meta):
    with open(meta) as f:
      if json.load(f) != json.loads(json.dumps(record)):
        raise VidjaxError(f"{cache_dir} holds clips of another classifier, "
                          "geometry or dataset (its meta.json differs): "
                          "remove it or use another workdir")
  with open(meta, "w") as f:
    json.dump(record, f, indent=1)
  out = {}
  for split in ("train", "test"):
    path = os.path.join(cache_dir, f"{split}.npz")
    if not os.path.exists(path):
      arrays = split_arrays(ds[split], classifier, num_candidates,
                            sampler_res, split == "test", log)
      tmp = path + ".tmp.npz"
      np.savez(tmp, **arrays)
      os.replace(tmp, path)  # a stopped job leaves no half-written cache
    z = np.load(path)
    out[split] = {k: z[k] for k in z.files}
  return out
