"""vidjax.audio.metrics: BSS-Eval SDR against mir_eval 0.8.2 (within 0.01 dB, the
issue's bar), mAP / AUC against scikit-learn 1.9.1 (test-only oracles), and
SI-SDR / AP closed-form values."""
import warnings

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from vidjax.audio import metrics as am
from vidjax.errors import VidjaxError


def _mir_eval():
  return pytest.importorskip("mir_eval.separation",
                             reason="mir_eval (test-only oracle) is not installed")


def _sklearn():
  return pytest.importorskip("sklearn.metrics",
                             reason="scikit-learn (test-only oracle) is not installed")


def _oracle_bss(separation, ref, est, perm):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # deprecated in 0.8, same numbers
    return separation.bss_eval_sources(ref, est, compute_permutation=perm)


def _pair(rng, n=3000):
  """A reference and an estimate: filtered copy (the 512-tap filter's job),
  delayed copy, and additive noise, at random strengths."""
  ref = rng.standard_normal(n) * np.hanning(n) + 0.3 * np.sin(np.arange(n) * rng.uniform(0.01, 0.3))
  fir = np.r_[1.0, 0.5 * rng.standard_normal(rng.integers(0, 30))]
  est = scipy.signal.lfilter(fir, [1.0], ref)
  est = rng.uniform(0.2, 2.0) * est + rng.uniform(0.05, 2.0) * rng.standard_normal(n)
  return ref, est


def test_sdr_matches_mir_eval_single_source():
  separation = _mir_eval()
  rng = np.random.default_rng(0)
  for _ in range(4):
    ref, est = _pair(rng, 2000)
    want = _oracle_bss(separation, ref[None], est[None], False)[0][0]
    got = am.sdr(ref, est)
    assert abs(got - want) <= 0.01, (got, want)
    assert abs(got - want) <= 1e-6  # in fact the same decomposition to rounding


def test_bss_eval_sources_two_sources_with_permutation_matches_mir_eval():
  separation = _mir_eval()
  rng = np.random.default_rng(1)
  refs = np.stack([_pair(rng, 1500)[0], rng.standard_normal(1500)])
  mix_leak = np.stack([refs[0] + 0.3 * refs[1], refs[1] + 0.2 * refs[0]])
  ests = mix_leak[::-1] + 0.1 * rng.standard_normal(refs.shape)  # swapped order
  want = _oracle_bss(separation, refs, ests, True)
  got = am.bss_eval_sources(refs, ests, compute_permutation=True)
  assert list(got[3]) == list(want[3]) == [1, 0]
  for g, w in zip(got[:3], want[:3]):
    np.testing.assert_allclose(g, w, atol=0.01)
    np.testing.assert_allclose(g, w, atol=1e-6)


def test_sdr_hand_values():
  rng = np.random.default_rng(2)
  s = rng.standard_normal(4000)
  assert am.sdr(s, 0.5 * s) > 100.0  # a scaled copy is all target
  delayed = np.r_[np.zeros(7), s[:-7]]
  assert am.sdr(s, delayed) > 25.0  # the 512-tap filter absorbs a delay (up to the cut tail)
  assert am.si_sdr(s, delayed) < 0.0  # SI-SDR does not


def test_si_sdr_closed_form():
  rng = np.random.default_rng(3)
  s = rng.standard_normal((3, 5000))
  s -= s.mean(axis=-1, keepdims=True)
  noise = rng.standard_normal((3, 5000))
  noise -= noise.mean(axis=-1, keepdims=True)
  noise -= np.sum(noise * s, axis=-1, keepdims=True) / np.sum(s * s, axis=-1, keepdims=True) * s
  snr = np.array([-5.0, 0.0, 12.5])  # noise orthogonal to s, at a known power
  scale = np.sqrt(np.sum(s * s, -1) / np.sum(noise * noise, -1) / 10 ** (snr / 10))
  est = s + scale[:, None] * noise
  np.testing.assert_allclose(am.si_sdr(s, est), snr, atol=1e-9)
  np.testing.assert_allclose(am.si_sdr(s, 7.0 * est), snr, atol=1e-9)  # scale invariant
  np.testing.assert_allclose(am.si_sdr(s + 3.0, est - 1.0), snr, atol=1e-9)  # zero-mean first
  assert np.all(am.si_sdr(s, -0.25 * s) > 200.0)  # scaled copy: +inf up to rounding


def test_average_precision_hand_value():
  assert am.average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)
  # a tie between a positive and a negative counts as one threshold
  ap = am.average_precision([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
  assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_map_and_auc_match_sklearn():
  skm = _sklearn()
  rng = np.random.default_rng(4)
  for trial in range(5):
    y = rng.random((60, 9)) < rng.uniform(0.05, 0.5)
    scores = rng.random((60, 9)) + 0.5 * y
    if trial % 2:
      scores = np.round(scores, 1)  # ties
    y[:, 3] = False  # a class with no positives is left out of the mean
    y[0, 5] = True
    m, per_class = am.mean_average_precision(y, scores, return_per_class=True)
    keep = y.any(axis=0)
    want = [skm.average_precision_score(y[:, k], scores[:, k]) for k in np.nonzero(keep)[0]]
    np.testing.assert_allclose(per_class[keep], want, atol=1e-12)
    assert np.isnan(per_class[3])
    assert m == pytest.approx(np.mean(want), abs=1e-12)
    full = keep & (~y).any(axis=0)
    np.testing.assert_allclose(
        skm.average_precision_score(y[:, full], scores[:, full], average="macro"),
        am.mean_average_precision(y[:, full], scores[:, full]), atol=1e-12)
    aucs = [am.roc_auc(y[:, k], scores[:, k]) for k in np.nonzero(full)[0]]
    np.testing.assert_allclose(aucs, skm.roc_auc_score(y[:, full], scores[:, full], average=None),
                               atol=1e-12)
    assert am.d_prime(y, scores) == pytest.approx(
        np.sqrt(2) * scipy.stats.norm.ppf(np.mean(aucs)), abs=1e-12)


def test_d_prime_values():
  assert am.d_prime(None, None, auc=0.5) == 0.0
  assert am.d_prime(None, None, auc=scipy.stats.norm.cdf(1.0)) == pytest.approx(np.sqrt(2))
  y = np.array([[1], [1], [0], [0]])
  assert am.roc_auc(y[:, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
  assert am.roc_auc(y[:, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_bad_inputs_raise_one_line_errors():
  with pytest.raises(VidjaxError, match="estimate"):
    am.sdr(np.ones(100), np.ones(90))
  with pytest.raises(VidjaxError, match="reference"):
    am.sdr(np.zeros(100), np.ones(100))
  with pytest.raises(VidjaxError, match="labels"):
    am.mean_average_precision(np.zeros((4, 2)), np.ones((4, 2)))
  with pytest.raises(VidjaxError, match="scores"):
    am.mean_average_precision(np.ones((4, 2)), np.ones((4, 3)))
