"""Audio metrics in numpy: BSS-Eval v3 SDR/SIR/SAR, SI-SDR, AudioSet mAP and d'.

* SDR / SIR / SAR: Vincent, Gribonval & Fevotte, "Performance measurement in
  blind audio source separation", IEEE TASLP 2006, with the time-invariant
  distortion filter of BSS Eval v3 (512 taps) as `mir_eval.separation.
  bss_eval_sources` computes it (what Sound of Pixels and VisualVoice report).
  The estimate is projected by least squares onto the span of the reference
  sources delayed by 0..511 samples: `s_target` = projection onto source j's
  delays, `e_interf` = the rest of the projection onto all sources,
  `e_artif` = the residual. SDR = 10 log10(|s_target|^2 / |e_interf +
  e_artif|^2), SIR = 10 log10(|s_target|^2 / |e_interf|^2), SAR = 10 log10(
  |s_target + e_interf|^2 / |e_artif|^2). (So SDR depends only on reference j.)
* SI-SDR: Le Roux, Wisdom, Erdogan & Hershey, "SDR - half-baked or well
  done?", ICASSP 2019, eq. (5): zero-mean both, alpha = <s_hat, s> / |s|^2,
  SI-SDR = 10 log10(|alpha s|^2 / |alpha s - s_hat|^2).
* mAP: AudioSet's metric as AST / CAV-MAE compute it (per class
  `sklearn.metrics.average_precision_score`: non-interpolated AP, the sum over
  distinct score thresholds of (R_n - R_{n-1}) P_n), averaged over the
  classes that have at least one positive. d' = sqrt(2) Phi^-1(AUC) per class
  (Gemmeke et al., ICASSP 2017; AUC = Mann-Whitney U with mid-ranks for ties).
"""
import itertools
from typing import Optional

import numpy as np
import scipy.linalg
import scipy.signal
import scipy.stats

from vidjax.errors import VidjaxError

FILTER_LEN = 512


def _as_sources(x, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim == 1:
    x = x[None]
  if x.ndim != 2 or x.shape[1] == 0:
    raise VidjaxError(f"{name}: expected [sources, samples] audio (got shape {x.shape})")
  return x


def _db(num: float, den: float) -> float:
  return float("inf") if den == 0 else float(10 * np.log10(num / den))


def _projection(refs: np.ndarray, est: np.ndarray, taps: int) -> np.ndarray:
  """Least-squares projection of `est` onto {refs[i] delayed by 0..taps-1};
  length samples + taps - 1. Gram matrix from FFT correlations (no wrap:
  the FFT is at least samples + taps - 1 long)."""
  n_src, n = refs.shape
  size = int(2 ** np.ceil(np.log2(n + taps - 1)))
  spec = np.fft.rfft(refs, n=size, axis=1)
  spec_est = np.fft.rfft(est, n=size)
  lags = np.r_[0:taps]
  gram = np.zeros((n_src * taps, n_src * taps))
  for i in range(n_src):
    for j in range(i, n_src):
      # corr[d] = sum_m refs[i][m] refs[j][m + d]; block[t, u] = corr[t - u]
      corr = np.fft.irfft(np.conj(spec[i]) * spec[j], n=size)
      block = scipy.linalg.toeplitz(corr[(-lags) % size], corr[lags])
      gram[i * taps:(i + 1) * taps, j * taps:(j + 1) * taps] = block.T
      gram[j * taps:(j + 1) * taps, i * taps:(i + 1) * taps] = block
  rhs = np.concatenate([
      np.fft.irfft(np.conj(spec[i]) * spec_est, n=size)[:taps] for i in range(n_src)])
  try:
    coef = np.linalg.solve(gram, rhs)
  except np.linalg.LinAlgError:
    coef = np.linalg.lstsq(gram, rhs, rcond=None)[0]
  out = np.zeros(n + taps - 1)
  for i in range(n_src):
    out += scipy.signal.fftconvolve(coef[i * taps:(i + 1) * taps], refs[i])
  return out


def _criteria(refs: np.ndarray, est: np.ndarray, j: int, taps: int):
  n = est.shape[0]
  target = _projection(refs[j:j + 1], est, taps)
  full = _projection(refs, est, taps) if refs.shape[0] > 1 else target
  interf = full - target
  artif = -full
  artif[:n] += est
  sdr = _db(np.sum(target ** 2), np.sum((interf + artif) ** 2))
  sir = _db(np.sum(target ** 2), np.sum(interf ** 2))
  sar = _db(np.sum(full ** 2), np.sum(artif ** 2))
  return sdr, sir, sar


def bss_eval_sources(reference, estimate, compute_permutation: bool = False,
                     taps: int = FILTER_LEN):
  """(sdr, sir, sar, perm), each [sources]; `perm[j]` is the estimate matched
  to reference j (best mean SIR over permutations when asked, as mir_eval)."""
  refs = _as_sources(reference, "reference")
  ests = _as_sources(estimate, "estimate")
  if refs.shape != ests.shape:
    raise VidjaxError(f"estimate: shape {ests.shape} differs from reference {refs.shape}")
  if np.any(np.all(refs == 0, axis=1)):
    raise VidjaxError("reference: a reference source is all zeros (SDR is undefined)")
  n_src = refs.shape[0]
  pairs = (list(itertools.product(range(n_src), range(n_src))) if compute_permutation
           else [(j, j) for j in range(n_src)])
  crit = {(e, r): _criteria(refs, ests[e], r, taps) for e, r in pairs}
  if compute_permutation:
    perms = list(itertools.permutations(range(n_src)))
    perm = max(perms, key=lambda p: np.mean([crit[(p[r], r)][1] for r in range(n_src)]))
  else:
    perm = tuple(range(n_src))
  vals = np.array([crit[(perm[r], r)] for r in range(n_src)])
  return vals[:, 0], vals[:, 1], vals[:, 2], np.asarray(perm)


def sdr(reference, estimate, taps: int = FILTER_LEN) -> float:
  """BSS-Eval v3 SDR of one estimate against one reference (dB)."""
  return float(bss_eval_sources(reference, estimate, taps=taps)[0][0])


def si_sdr(reference, estimate, zero_mean: bool = True) -> np.ndarray:
  """SI-SDR in dB over the last axis (batched); +inf for a perfect scaled copy."""
  s = np.asarray(reference, dtype=np.float64)
  s_hat = np.asarray(estimate, dtype=np.float64)
  if s.shape != s_hat.shape:
    raise VidjaxError(f"estimate: shape {s_hat.shape} differs from reference {s.shape}")
  if zero_mean:
    s = s - s.mean(axis=-1, keepdims=True)
    s_hat = s_hat - s_hat.mean(axis=-1, keepdims=True)
  energy = np.sum(s * s, axis=-1, keepdims=True)
  if np.any(energy == 0):
    raise VidjaxError("reference: a reference signal is constant (SI-SDR is undefined)")
  target = np.sum(s_hat * s, axis=-1, keepdims=True) / energy * s
  noise = np.sum((s_hat - target) ** 2, axis=-1)
  with np.errstate(divide="ignore"):
    return 10 * np.log10(np.sum(target ** 2, axis=-1)) - 10 * np.log10(noise)


def average_precision(labels, scores) -> float:
  """Non-interpolated AP of one class (sklearn.metrics.average_precision_score)."""
  y = np.asarray(labels).astype(bool)
  s = np.asarray(scores, dtype=np.float64)
  order = np.argsort(-s, kind="mergesort")
  y, s = y[order], s[order]
  last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each tie group
  tp = np.cumsum(y)[last]
  if tp[-1] == 0:
    raise VidjaxError("labels: a class with no positive example has no AP")
  precision = tp / (last + 1)
  recall = tp / tp[-1]
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _check_multilabel(labels, scores):
  y = np.asarray(labels)
  s = np.asarray(scores, dtype=np.float64)
  if y.ndim != 2 or y.shape != s.shape:
    raise VidjaxError(f"scores: expected [examples, classes] matching labels "
                      f"(labels {y.shape}, scores {s.shape})")
  return y.astype(bool), s


def mean_average_precision(labels, scores, return_per_class: bool = False):
  """AudioSet mAP: mean AP over classes with at least one positive.

  labels, scores: [examples, classes]. With `return_per_class`, also the
  per-class APs (NaN for classes with no positive)."""
  y, s = _check_multilabel(labels, scores)
  has_pos = y.any(axis=0)
  if not has_pos.any():
    raise VidjaxError("labels: no class has a positive example (mAP is undefined)")
  ap = np.full(y.shape[1], np.nan)
  for k in np.nonzero(has_pos)[0]:
    ap[k] = average_precision(y[:, k], s[:, k])
  m = float(np.nanmean(ap))
  return (m, ap) if return_per_class else m


def roc_auc(labels, scores) -> float:
  """Area under the ROC curve of one class (Mann-Whitney U, mid-ranks)."""
  y = np.asarray(labels).astype(bool)
  n_pos, n_neg = int(y.sum()), int((~y).sum())
  if n_pos == 0 or n_neg == 0:
    raise VidjaxError("labels: AUC needs both positive and negative examples in a class")
  ranks = scipy.stats.rankdata(np.asarray(scores, dtype=np.float64))
  return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def d_prime(labels, scores, auc: Optional[float] = None) -> float:
  """AudioSet d' = sqrt(2) * Phi^-1(mean AUC over classes with both kinds)."""
  if auc is None:
    y, s = _check_multilabel(labels, scores)
    ok = y.any(axis=0) & (~y).any(axis=0)
    auc = float(np.mean([roc_auc(y[:, k], s[:, k]) for k in np.nonzero(ok)[0]]))
  return float(np.sqrt(2.0) * scipy.stats.norm.ppf(auc))
