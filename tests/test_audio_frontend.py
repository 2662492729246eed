"""vidjax.audio.frontend against librosa 0.11 (test-only oracle) and hand-written
Kaldi-fbank frames, on synthesized tones, chirps and noise (nothing downloaded).

Tolerances: STFT and mel filterbank to 1e-10 relative (float64); log-mel to
1e-4 dB *absolute* on the dB values (the issue's bar; that is 2.3e-5 relative on
power) for the numpy path and for the jnp path under x64 (measured: 2e-9 dB);
float32 jnp within 2e-3 dB of the float64 path on bins within 80 dB of the
example's peak (float32 rounding).
"""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from vidjax.audio import frontend as fe
from vidjax.errors import VidjaxError

SETTINGS = {
    "librosa_default": fe.preset("librosa_default"),
    "visualvoice_reflect": fe.preset("visualvoice"),
    "htk_nonorm_uncentred": fe.LogMelConfig(
        sample_rate=16000, n_fft=400, win_length=400, hop_length=160, center=False,
        n_mels=40, fmin=50.0, fmax=7000.0, htk=True, norm=None, top_db=None),
}


def _signal(kind: str, sr: int, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
  t = np.arange(int(sr * seconds)) / sr
  if kind == "tone":
    return 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.25 * np.sin(2 * np.pi * 1250.0 * t)
  if kind == "chirp":
    return 0.8 * scipy.signal.chirp(t, f0=100.0, t1=t[-1], f1=0.45 * sr, method="logarithmic")
  return 0.3 * np.random.default_rng(seed).standard_normal(t.size)


def _librosa():
  return pytest.importorskip("librosa", reason="librosa (test-only oracle) is not installed")


def _lib_kwargs(c):
  return dict(n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
              center=c.center, window="hann")


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("kind", ["tone", "chirp", "noise"])
def test_stft_and_log_mel_match_librosa(setting, kind):
  librosa = _librosa()
  c = SETTINGS[setting]
  x = _signal(kind, c.sample_rate)
  ref = librosa.stft(x, pad_mode=c.pad_mode, **_lib_kwargs(c)).T
  got = fe.stft(x, c)
  assert got.shape == ref.shape == (fe.num_frames(x.size, c), c.n_freqs)
  assert np.max(np.abs(got - ref)) <= 1e-10 * np.max(np.abs(ref))

  mel_ref = librosa.feature.melspectrogram(
      y=x, sr=c.sample_rate, pad_mode=c.pad_mode, n_mels=c.n_mels, fmin=c.fmin,
      fmax=c.fmax, htk=c.htk, norm=c.norm, dtype=np.float64, **_lib_kwargs(c)).T
  db_ref = librosa.power_to_db(mel_ref, ref=c.ref, amin=c.amin, top_db=c.top_db)
  mel = fe.mel_spectrogram(x, c)
  live = mel_ref > 1e-8 * mel_ref.max()
  assert np.max(np.abs(mel - mel_ref)[live] / mel_ref[live]) <= 1e-8
  assert np.max(np.abs(fe.log_mel(x, c) - db_ref)) <= 1e-4
  with jax.enable_x64(True):
    db_jnp = jax.jit(lambda a: fe.log_mel(a, c))(jnp.asarray(x, jnp.float64))
    assert db_jnp.dtype == jnp.float64
    assert np.max(np.abs(np.asarray(db_jnp) - db_ref)) <= 1e-4


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_mel_filterbank_equals_librosa(setting):
  librosa = _librosa()
  c = SETTINGS[setting]
  ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin,
                            fmax=c.fmax, htk=c.htk, norm=c.norm, dtype=np.float64)
  got = fe.mel_filterbank(c)
  assert got.shape == ref.shape == (c.n_mels, c.n_freqs)
  np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * ref.max())


@pytest.mark.parametrize("setting", ["librosa_default", "visualvoice_reflect"])
def test_istft_matches_librosa_and_reconstructs(setting):
  librosa = _librosa()
  c = SETTINGS[setting]
  x = _signal("noise", c.sample_rate, seed=3) + _signal("chirp", c.sample_rate)
  spec = fe.stft(x, c)
  for length in (None, x.size, x.size - 100, x.size + 300):
    ref = librosa.istft(spec.T, length=length, **_lib_kwargs(c))
    got = fe.istft(spec, c, length=length)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= 1e-10
  y = fe.istft(spec, c, length=x.size)
  assert np.max(np.abs(y - x)) <= 1e-10  # perfect reconstruction (Hann, hop <= n_fft / 4)
  batch = np.stack([x, -0.5 * x, _signal("tone", c.sample_rate)])
  y32 = jax.jit(lambda s: fe.istft(s, c, length=x.size))(
      fe.stft(jnp.asarray(batch, jnp.float32), c))
  assert y32.shape == batch.shape and y32.dtype == jnp.float32
  assert np.max(np.abs(np.asarray(y32) - batch)) <= 1e-5


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_jnp_float32_batched_matches_numpy_float64(setting):
  """float32 (the training dtype) holds 2e-3 dB on bins within 80 dB of the
  example's peak; further down the float32 FFT's rounding floor dominates
  (0.9 dB at -150 dB without top_db: use x64 for parity there)."""
  c = SETTINGS[setting]
  batch = np.stack([_signal(k, c.sample_rate, seed=i) for i, k in
                    enumerate(["tone", "chirp", "noise", "noise"])])
  want = np.stack([fe.log_mel(b, c) for b in batch])  # numpy float64, one at a time
  fn = jax.jit(lambda a: fe.log_mel(a, c))
  got = fn(jnp.asarray(batch, jnp.float32))
  assert got.shape == (4, fe.num_frames(batch.shape[1], c), c.n_mels)
  assert got.dtype == jnp.float32
  live = want > want.max(axis=(1, 2), keepdims=True) - 80.0
  assert np.max(np.abs(np.asarray(got) - want)[live]) <= 2e-3
  spec32 = np.asarray(jax.jit(lambda a: fe.spectrogram(a, c))(jnp.asarray(batch, jnp.float32)))
  spec64 = fe.spectrogram(batch, c)
  assert np.max(np.abs(spec32 - spec64)) <= 1e-5 * spec64.max()


def test_windows_match_scipy():
  for n in (400, 512):
    c = fe.LogMelConfig(n_fft=512, win_length=n)
    np.testing.assert_allclose(fe.window(c), scipy.signal.get_window("hann", n), atol=1e-15)
    c = dataclasses.replace(c, window="hamming")
    np.testing.assert_allclose(fe.window(c), scipy.signal.get_window("hamming", n), atol=1e-15)
    c = dataclasses.replace(c, window="hann_symmetric")
    np.testing.assert_allclose(fe.window(c), np.hanning(n), atol=1e-15)
    c = dataclasses.replace(c, window="povey")
    np.testing.assert_allclose(fe.window(c), np.hanning(n) ** 0.85, atol=1e-15)


def _kaldi_by_hand(x: np.ndarray, n_mels: int = 128) -> np.ndarray:
  """Kaldi fbank steps written out frame by frame (torchaudio.compliance.kaldi
  .fbank's order), with Kaldi's MelBanks bin weights in a plain loop."""
  sr, win, hop, n_fft = 16000, 400, 160, 512
  mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
  lo, hi = mel(20.0), mel(8000.0)
  delta = (hi - lo) / (n_mels + 1)
  bank = np.zeros((n_mels, n_fft // 2 + 1))
  for m in range(n_mels):
    left, centre, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
    for k in range(n_fft // 2):  # Kaldi's bank stops below Nyquist
      f = mel(k * sr / n_fft)
      if left < f < right:
        bank[m, k] = (f - left) / (centre - left) if f <= centre else (right - f) / (right - centre)
  out = []
  for start in range(0, x.size - win + 1, hop):
    fr = x[start:start + win].copy()
    fr -= fr.mean()
    fr = fr - 0.97 * np.r_[fr[0], fr[:-1]]
    fr *= np.hanning(win)
    power = np.abs(np.fft.rfft(fr, n=n_fft)) ** 2
    out.append(np.log(np.maximum(bank @ power, np.finfo(np.float32).eps)))
  return np.array(out)


def test_ast_kaldi_preset_matches_kaldi_steps():
  c = fe.preset("ast_kaldi")
  x = _signal("chirp", 16000, 0.3) + _signal("noise", 16000, 0.3) + 0.2  # DC offset
  want = _kaldi_by_hand(x)
  got = fe.log_mel(x, c)
  assert got.shape == want.shape == (1 + (x.size - 400) // 160, 128)
  assert np.max(np.abs(got - want)) <= 1e-9
  np.testing.assert_allclose(fe.log_mel(x - 0.2, c), got, atol=1e-9)  # DC removed per frame
  with jax.enable_x64(True):
    got_jnp = jax.jit(lambda a: fe.log_mel(a, c))(jnp.asarray(x[None]))
    assert np.max(np.abs(np.asarray(got_jnp)[0] - want)) <= 1e-9


def test_tone_peaks_in_its_mel_bin():
  for c in (fe.preset("ast_kaldi"), fe.preset("visualvoice"), SETTINGS["htk_nonorm_uncentred"]):
    t = np.arange(8000) / c.sample_rate
    m = fe.mel_spectrogram(np.sin(2 * np.pi * 1000.0 * t), c).mean(axis=0)
    bank = fe.mel_filterbank(c)
    k = int(round(1000.0 * c.n_fft / c.sample_rate))
    assert np.argmax(m) == np.argmax(bank[:, k]), c.name


def test_config_round_trip_and_presets():
  for name in ("librosa_default", "ast_kaldi", "visualvoice"):
    c = fe.preset(name)
    assert fe.LogMelConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
  vv = fe.preset("visualvoice")
  assert (vv.sample_rate, vv.n_fft, vv.win_length, vv.hop_length) == (16000, 512, 400, 160)
  ast = fe.preset("ast_kaldi")
  assert (ast.win_length, ast.hop_length, ast.n_fft) == (400, 160, 512)
  assert (ast.n_mels, ast.fmin, ast.preemphasis, ast.window) == (128, 20.0, 0.97, "hann_symmetric")
  assert fe.num_frames(160000, ast) == 998  # AST pads 10 s AudioSet clips to 1024 frames
  assert fe.num_frames(16000, vv) == 101


@pytest.mark.parametrize("change, key", [
    (dict(win_length=600), "audio.win_length"),
    (dict(framing="kaldi"), "audio.center"),
    (dict(fmax=9000.0), "audio.fmax"),
    (dict(norm="l2"), "audio.norm"),
    (dict(triangles="mel"), "audio.htk"),
    (dict(hop_length=0), "audio.hop_length"),
    (dict(window="blackman"), "audio.window"),
])
def test_bad_config_names_the_key(change, key):
  with pytest.raises(VidjaxError, match=key):
    dataclasses.replace(fe.preset("visualvoice"), **change)


def test_bad_inputs_raise_one_line_errors():
  with pytest.raises(VidjaxError, match="audio.bogus"):
    fe.LogMelConfig.from_dict({**fe.preset("visualvoice").to_dict(), "bogus": 1})
  with pytest.raises(VidjaxError, match="audio.name"):
    fe.preset("kaldi_real")
  with pytest.raises(VidjaxError, match="shorter than one frame"):
    fe.log_mel(np.zeros(100), fe.preset("ast_kaldi"))
  with pytest.raises(VidjaxError, match="audio.framing"):
    fe.istft(np.zeros((3, 257), complex), fe.preset("ast_kaldi"))
