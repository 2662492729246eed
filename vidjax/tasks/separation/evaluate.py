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

from vidjax.audio import frontend, metrics

FIELDS = ("sdr", "si_sdr", "mixture_sdr", "mixture_si_sdr", "oracle_sdr",
          "oracle_si_sdr", "swap_sdr", "swap_si_sdr")


def oracle_estimates(stft_config, mixture, stems) -> np.ndarray:
  """Ideal-ratio-mask estimates [M, N] of stems [M, N] from mixture [N]."""
  x = frontend.stft(np.asarray(mixture, np.float64), stft_config)
  s = frontend.stft(np.asarray(stems, np.float64), stft_config)
  mask = np.minimum(np.abs(s) / np.maximum(np.abs(x), 1e-12), 1.0)
  return frontend.istft(mask * x, stft_config, length=len(mixture))


def reference_rows(stems, mixture, oracle=None) -> list:
  """The model-independent fields of one example's sources (mixture and
  oracle scores; computed once per test set): one dict per source."""
  stems = np.asarray(stems, np.float64)
  mix = np.asarray(mixture, np.float64)
  rows = []
  for k in range(len(stems)):
    if not np.any(stems[k]):
      rows.append({"source": k, "silent": True})
      continue
    row = {"source": k, "silent": False,
           "mixture_sdr": metrics.sdr(stems[k], mix),
           "mixture_si_sdr": float(metrics.si_sdr(stems[k], mix))}
    if oracle is not None:
      row["oracle_sdr"] = metrics.sdr(stems[k], oracle[k])
      row["oracle_si_sdr"] = float(metrics.si_sdr(stems[k], oracle[k]))
    rows.append(row)
  return rows


def source_rows(stems, mixture, estimates, oracle=None,
                reference=None) -> list:
  """One dict per source of one example (module docstring): `reference`
  (reference_rows' output) or else it computed from mixture and oracle
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
      other = est[(k + 1) % m] if m > 1 else est[k]
      row.update(sdr=metrics.sdr(stems[k], est[k]),
                 swap_sdr=metrics.sdr(stems[k], other),
                 si_sdr=float(metrics.si_sdr(stems[k], est[k])),
                 swap_si_sdr=float(metrics.si_sdr(stems[k], other)))
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
