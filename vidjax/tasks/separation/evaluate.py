"""Separation metrics per source and their means (numpy, on the host).

For each (mixture, object k) with stem s_k, mixture x and estimate e_k:

* SDR: BSS-Eval v3 (Vincent et al., IEEE TASLP 2006; 512-tap distortion
  filter, as `mir_eval.separation.bss_eval_sources`; vidjax/audio/metrics.py,
  checked against mir_eval there). SDR of source k depends only on its own
  reference, so each source is scored alone.
* SI-SDR: Le Roux et al., ICASSP 2019.
* Improvements over the mixture (Sound of Pixels' NSDR, `main.py::
  calc_metrics`): SDRi = SDR(s_k, e_k) - SDR(s_k, x); SI-SDRi likewise.
* The oracle: the ideal ratio mask min(|S_k| / |X|, 1) on the linear STFT
  grid with the mixture's phase (the ratio-mask target the model learns,
  before its warped-grid resolution), inverted by the model's iSTFT. It
  bounds what a ratio mask with the mixture's phase can do and catches
  STFT / iSTFT / alignment bugs (bar: >= 15 dB).
* The control "condition on the OTHER object's visual features": object k's
  target scored against the estimate conditioned on object k+1 (mod M),
  which is that object's own estimate: swap_sdri = SDR(s_k, e_{k+1}) -
  SDR(s_k, x). A model that uses its visual condition scores <= 0 dB here.

A source whose stem is all zeros (silent object) has no SDR and is skipped
(counted in `num_silent`).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from vidjax.audio import frontend, metrics

FIELDS = ("sdr", "si_sdr", "mixture_sdr", "mixture_si_sdr", "oracle_sdr",
          "oracle_si_sdr", "swap_sdr", "swap_si_sdr")


def oracle_estimates(stft_config, mixture, stems) -> np.ndarray:
  """Ideal-ratio-mask estimates [M, N] of stems [M, N] from mixture [N]."""
  x = frontend.stft(np.asarray(mixture, np.float64), stft_config)
  s = frontend.stft(np.asarray(stems, np.float64), stft_config)
  mask = np.minimum(np.abs(s) / np.maximum(np.abs(x), 1e-12), 1.0)
  return frontend.istft(mask * x, stft_config, length=len(mixture))


def sdr_many(reference, estimates, taps: int = metrics.FILTER_LEN):
  """BSS-Eval v3 SDR (dB) of each of estimates [K, N] against one
  reference [N]: `metrics.sdr` with its least-squares system (the
  reference's delayed copies' Gram matrix, Toeplitz from one FFT
  autocorrelation) built and factored once for the K right-hand sides."""
  ref = np.asarray(reference, np.float64)
  est = np.atleast_2d(np.asarray(estimates, np.float64))
  n = ref.shape[-1]
  size = int(2 ** np.ceil(np.log2(n + taps - 1)))
  spec = np.fft.rfft(ref, n=size)
  corr = np.fft.irfft(np.conj(spec) * spec, n=size)
  lags = np.arange(taps)
  gram = scipy.linalg.toeplitz(corr[lags])          # symmetric, PSD
  rhs = np.fft.irfft(np.conj(spec)[None] * np.fft.rfft(est, n=size, axis=1),
                     n=size, axis=1)[:, :taps]
  try:
    coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram), rhs.T).T
  except np.linalg.LinAlgError:
    coef = np.linalg.lstsq(gram, rhs.T, rcond=None)[0].T
  target = np.fft.irfft(np.fft.rfft(coef, n=size, axis=1) * spec[None],
                        n=size, axis=1)[:, :n + taps - 1]
  err = -target
  err[:, :n] += est
  num, den = np.sum(target ** 2, 1), np.sum(err ** 2, 1)
  with np.errstate(divide="ignore"):
    return np.where(den == 0, np.inf, 10 * np.log10(num / np.where(
        den == 0, 1.0, den)))


def scores(stem, candidates: dict) -> dict:
  """{prefix + "sdr": SDR, prefix + "si_sdr": SI-SDR} of each named
  candidate waveform against one stem."""
  names = list(candidates)
  x = np.stack([np.asarray(candidates[k], np.float64) for k in names])
  sdrs = sdr_many(stem, x)
  si = metrics.si_sdr(np.broadcast_to(np.asarray(stem, np.float64), x.shape),
                      x)
  out = {}
  for j, name in enumerate(names):
    out[f"{name}sdr"], out[f"{name}si_sdr"] = float(sdrs[j]), float(si[j])
  return out


def reference_rows(stems, mixture, oracle=None) -> list:
  """The model-independent fields of one example's sources (mixture and
  oracle scores; the task computes them once per test example)."""
  stems = np.asarray(stems, np.float64)
  rows = []
  for k in range(len(stems)):
    if not np.any(stems[k]):
      rows.append({"source": k, "silent": True})
      continue
    cands = {"mixture_": mixture}
    if oracle is not None:
      cands["oracle_"] = oracle[k]
    rows.append({"source": k, "silent": False, **scores(stems[k], cands)})
  return rows


def source_rows(stems, mixture, estimates, oracle=None,
                reference=None) -> list:
  """One dict per source of one example (module docstring): `reference`
  (reference_rows' output), else it is computed from mixture and oracle
  ([M, N] estimates or None: no oracle fields)."""
  stems = np.asarray(stems, np.float64)
  est = np.asarray(estimates, np.float64)
  m = len(stems)
  if reference is None:
    reference = reference_rows(stems, mixture, oracle)
  rows = []
  for k in range(m):
    row = dict(reference[k])
    if not row["silent"]:
      row.update(scores(stems[k], {"": est[k],
                                   "swap_": est[(k + 1) % m]}))
    rows.append(row)
  return rows


def summarize(rows) -> dict:
  """Means over the audible sources: eval/sdr, eval/sdri, eval/si_sdr,
  eval/si_sdri, eval/mixture_sdr, eval/oracle_sdr(i), eval/swap_sdri,
  eval/swap_si_sdri, eval/num_sources, eval/num_silent."""
  live = [r for r in rows if not r["silent"]]
  out = {"eval/num_sources": float(len(live)),
         "eval/num_silent": float(len(rows) - len(live))}
  if not live:
    return out
  mean = lambda key: float(np.mean([r[key] for r in live]))  # noqa: E731
  for key in FIELDS:
    if key in live[0]:
      out[f"eval/{key}"] = mean(key)
  out["eval/sdri"] = out["eval/sdr"] - out["eval/mixture_sdr"]
  out["eval/si_sdri"] = out["eval/si_sdr"] - out["eval/mixture_si_sdr"]
  out["eval/swap_sdri"] = out["eval/swap_sdr"] - out["eval/mixture_sdr"]
  out["eval/swap_si_sdri"] = (out["eval/swap_si_sdr"] -
                              out["eval/mixture_si_sdr"])
  if "eval/oracle_sdr" in out:
    out["eval/oracle_sdri"] = out["eval/oracle_sdr"] - out["eval/mixture_sdr"]
  return out
