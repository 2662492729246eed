"""Untrimmed-video classification by clip sampling, and what it costs.

Given, for V test videos of n candidate clips each, the classifier's class
probabilities of every clip [V, n, C], the sampler's scores [V, n], each
clip's usefulness [V, n] (at least half inside the action) and the video
labels [V], `strategies` evaluates (SCSampler, Korbar et al. ICCV 2019,
Sec. 4 compares the same ones):

  dense            every clip, probabilities averaged (multi-view testing)
  uniform<k>       k evenly spaced clips        (samplers.uniform)
  random<k>        k seeded random clips        (samplers.random_k)
  scsampler<k>     the sampler's top k          (samplers.top_k)
  oracle           the useful clips             (samplers.oracle)

Per strategy: video accuracy (top-1 of the mean probabilities), the clips
the expensive classifier runs (total, per video, and as a fraction of
dense's V n) and the multiply-adds: classifier clips x its G multiply-adds
per clip (vidjax.costs.kernel_gmacs), plus, for scsampler, all n clips of
each video x the sampler's (saliency.feature_macs + its MLP). The oracle is
charged its classifier clips only (it reads the ground truth). The
sampler's clip-saliency ROC-AUC over all test clips (vidjax.audio.metrics.
roc_auc, Mann-Whitney) is reported with them.
"""
from __future__ import annotations

import numpy as np

from vidjax.audio.metrics import roc_auc
from vidjax.tasks.long_video import samplers

USEFUL_OVERLAP = 0.5  # a clip is useful when >= half of it is the action


def strategies(probs, labels, scores, overlap, ks=(2,), seed: int = 0,
               classifier_gmacs: float = 0.0,
               sampler_gmacs: float = 0.0) -> list:
  """Rows (dicts) of every strategy (module docstring), dense first."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels, np.int64)
  scores = np.asarray(scores, np.float64)
  overlap = np.asarray(overlap, np.float64)
  v, n = probs.shape[:2]
  useful = overlap >= USEFUL_OVERLAP
  plans = [("dense", None, lambda i: samplers.dense(n), False)]
  for k in ks:
    plans += [(f"uniform{k}", k, lambda i, k=k: samplers.uniform(n, k), False),
              (f"random{k}", k,
               lambda i, k=k: samplers.random_k(n, k, seed, i), False),
              (f"scsampler{k}", k,
               lambda i, k=k: samplers.top_k(scores[i], k), True)]
  plans.append(("oracle", None,
                lambda i: samplers.oracle(useful[i], overlap[i]), False))
  rows = []
  for name, k, choose, uses_sampler in plans:
    correct, clips = 0, 0
    for i in range(v):
      chosen = choose(i)
      clips += len(chosen)
      p = samplers.video_probabilities(probs[i], chosen)
      correct += int(np.argmax(p) == labels[i])
    gmacs = clips * classifier_gmacs + (v * n * sampler_gmacs
                                        if uses_sampler else 0.0)
    rows.append({"strategy": name, "k": k, "accuracy": correct / v,
                 "classifier_clips": clips, "clips_per_video": clips / v,
                 "clip_fraction": clips / (v * n), "gmacs": gmacs,
                 "gmacs_per_video": gmacs / v})
  return rows


def sampler_auc(scores, overlap) -> float:
  """ROC-AUC of the sampler's scores for the useful clips (all videos)."""
  useful = np.asarray(overlap).reshape(-1) >= USEFUL_OVERLAP
  return roc_auc(useful, np.asarray(scores).reshape(-1))


def metrics(rows: list, auc: float, num_videos: int, n: int) -> dict:
  """The flat eval/ metrics of `strategies` rows."""
  out = {"eval/sampler_auc": float(auc), "eval/num_videos": float(num_videos),
         "eval/num_candidates": float(n)}
  for r in rows:
    for key in ("accuracy", "clip_fraction", "gmacs_per_video"):
      out[f"eval/{r['strategy']}/{key}"] = float(r[key])
  return out


def format_table(rows: list, auc: float, classifier_gmacs: float,
                 sampler_gmacs: float, num_videos: int, n: int) -> str:
  """The printed table (one line per strategy)."""
  lines = [f"long videos: {num_videos} test videos x {n} candidate clips; "
           f"classifier {classifier_gmacs * 1e3:.3f} M multiply-adds per "
           f"clip, sampler {sampler_gmacs * 1e6:.1f} K; sampler clip-saliency "
           f"ROC-AUC {auc:.3f}",
           f"{'strategy':<13}{'video acc':>10}{'classifier clips':>22}"
           f"{'fraction':>10}{'GMACs/video':>13}"]
  for r in rows:
    clips = f"{r['classifier_clips']} ({r['clips_per_video']:.1f}/video)"
    lines.append(f"{r['strategy']:<13}{r['accuracy']:>10.3f}{clips:>22}"
                 f"{r['clip_fraction']:>10.3f}{r['gmacs_per_video']:>13.4f}")
  return "\n".join(lines)
