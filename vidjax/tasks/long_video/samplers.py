"""Clip samplers of an untrimmed video (issue #23 item 4).

A long video is classified from a few of its `n` candidate clips: the
expensive clip classifier runs only on the chosen ones and the video's class
is the argmax of their mean class probabilities. SCSampler (Korbar, Tran and
Torresani, "SCSampler: Sampling Salient Clips from Video for Efficient Action
Recognition", ICCV 2019, Sec. 3) ranks every clip with a cheap saliency model
and keeps the top k; its baselines are dense evaluation (all clips averaged,
the usual multi-view test), uniform and random k. The oracle (the clips that
show the action, from the ground truth) is the reference a perfect sampler
reaches.

Every sampler maps one video's clips to the sorted indices it evaluates:

  dense(n)                 all n clips
  uniform(n, k)            k clips evenly spaced: centres of k equal parts
  random_k(n, k, seed, i)  k distinct clips, a function of (seed, video i)
  top_k(scores, k)         the k highest scores; ties go to the earlier clip
  oracle(useful, overlap)  the useful clips (or the best-overlapping one)

`candidate_starts` places the n candidate clips of a video, `action_overlap`
says how much of each lies inside the annotated action.
"""
from __future__ import annotations

import numpy as np

from vidjax.errors import VidjaxError


def check_k(k: int, n: int, key: str = "config.long_video.ks") -> int:
  """k as an int in [1, n] (a one-line VidjaxError naming `key`)."""
  if int(k) != k or not 1 <= k <= n:
    raise VidjaxError(f"{key}: k={k} must be an integer in [1, {n}] (the "
                      "candidate clips per video, "
                      "config.long_video.num_candidates)")
  return int(k)


def candidate_starts(num_frames: int, span: int, n: int) -> np.ndarray:
  """First frames of n clips of `span` frames spread evenly over the video
  (the first starts at 0, the last ends at its last frame)."""
  if num_frames < span:
    raise VidjaxError(f"a video of {num_frames} frames is shorter than one "
                      f"clip ({span} frames)")
  return np.round(np.linspace(0, num_frames - span, n)).astype(np.int64)


def action_overlap(starts, span: int, segments) -> np.ndarray:
  """[n] fraction of each clip's frames [s, s + span) inside any segment
  (int [m, 2] frames [start, end), non-overlapping)."""
  starts = np.asarray(starts, np.int64)
  inside = np.zeros(len(starts))
  for a, b in np.asarray(segments, np.int64).reshape(-1, 2):
    inside += np.clip(np.minimum(starts + span, b) - np.maximum(starts, a),
                      0, None)
  return inside / span


def dense(n: int) -> np.ndarray:
  return np.arange(int(n))


def uniform(n: int, k: int) -> np.ndarray:
  """The clips at the centres of k equal parts of [0, n): floor((i + 1/2)
  n / k), e.g. n=24, k=2 -> [6, 18]; k=n -> every clip."""
  k = check_k(k, n)
  return np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)


def random_k(n: int, k: int, seed: int, video: int = 0) -> np.ndarray:
  """k distinct clips drawn without replacement, a function of (seed, video)."""
  k = check_k(k, n)
  rng = np.random.default_rng([int(seed), 2323, int(video)])
  return np.sort(rng.choice(n, k, replace=False))


def top_k(scores, k: int) -> np.ndarray:
  """The k highest-scoring clips (ties: the earlier clip first), sorted."""
  scores = np.asarray(scores, np.float64)
  k = check_k(k, len(scores))
  return np.sort(np.argsort(-scores, kind="stable")[:k])


def oracle(useful, overlap=None) -> np.ndarray:
  """The useful clips; a video with none falls back to its clip of largest
  `overlap` (the first of them on ties)."""
  useful = np.asarray(useful, bool)
  if useful.any():
    return np.nonzero(useful)[0]
  if overlap is None:
    raise VidjaxError("oracle: a video has no useful clip and no overlap")
  return np.array([int(np.argmax(overlap))])


def video_probabilities(clip_probs, chosen) -> np.ndarray:
  """[C] mean of the chosen clips' class probabilities ([n, C])."""
  chosen = np.asarray(chosen, np.int64)
  if chosen.size == 0:
    raise VidjaxError("a sampler chose no clip")
  return np.asarray(clip_probs, np.float64)[chosen].mean(0)
