"""Audio front end: STFT, inverse STFT, mel filterbank and log-mel, in numpy and jnp.

One code path serves both backends: every function picks `jax.numpy` when its
input is a `jax.Array` (tracers included, so it jits and batches over leading
axes) and `numpy` otherwise. Layouts are time-major, `[..., frames, bins]`
(librosa's are `[..., bins, frames]`: transpose to compare).

Conventions (the users' complaint in issue #22 is that nobody can tell which
front end a checkpoint expects, so every choice is a field of `LogMelConfig`,
which `to_dict()` writes into a run's config and `from_dict()` reads back):

* librosa 0.11 (`librosa.stft`, `librosa.istft`, `librosa.filters.mel`,
  `librosa.power_to_db`; McFee et al., "librosa: Audio and Music Signal Analysis
  in Python", SciPy 2015): periodic Hann window of `win_length` centred in an
  `n_fft` frame; `center=True` pads `n_fft // 2` samples on each side with
  `pad_mode` ("constant" zeros is librosa 0.10+'s default; "reflect" was the
  default before 0.10); Slaney mel scale (linear below 1 kHz, logarithmic
  above; Slaney, "Auditory Toolbox", 1998) or HTK's `2595 log10(1 + f/700)`;
  triangles linear in Hz between mel-spaced edges; `norm="slaney"` scales
  each triangle to unit area (2 / bandwidth); dB = `10 log10(max(amin, S)) -
  10 log10(max(amin, ref))`, floored at `max - top_db`.
* Kaldi fbank as AST / CAV-MAE call it (`torchaudio.compliance.kaldi.fbank(
  htk_compat=True, window_type="hanning", num_mel_bins=128, dither=0,
  frame_shift=10)`; Gong et al., "AST: Audio Spectrogram Transformer",
  Interspeech 2021): `framing="kaldi"` takes 25 ms frames from sample 0 with no
  padding (`snip_edges`: `1 + (N - win) // hop` frames), removes each frame's
  mean, applies pre-emphasis `x[t] - 0.97 x[t-1]` (`x[-1] := x[0]`), a
  *symmetric* Hann window, zero-pads on the right to the next power of two
  (512) and takes the power spectrum; `triangles="mel"` builds the triangles
  linear in HTK mel (`1127 ln(1 + f/700)`) from `fmin=20` Hz to Nyquist with no
  area normalisation and a zero weight on the Nyquist bin; `log="ln"` is
  `ln(max(S, float32 eps))`. Not reproduced: dither (AST sets 0), VTLN warping
  (off by default), the energy term (`use_energy=False`), and the integer
  scale of real Kaldi (torchaudio takes floats in [-1, 1]: real Kaldi's int16
  input adds `2 ln 32768` to every log value). AST also subtracts the clip mean
  first, a no-op after the per-frame mean removal.
* VisualVoice (Gao & Grauman, CVPR 2021): 16 kHz, `librosa.stft(n_fft=512,
  hop_length=160, win_length=400)` with the pre-0.10 default `pad_mode="reflect"`;
  the separation network consumes the complex STFT, not the log-mel.
"""
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError

WINDOWS = ("hann", "hann_symmetric", "hamming", "povey")


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
  """Every parameter of the front end; recorded with a model (`to_dict`)."""
  name: str = "custom"
  sample_rate: int = 16000
  n_fft: int = 512
  win_length: int = 400
  hop_length: int = 160
  window: str = "hann"  # hann (periodic) | hann_symmetric | hamming | povey
  framing: str = "librosa"  # librosa (window centred in n_fft) | kaldi
  center: bool = True  # librosa framing only: pad n_fft // 2 each side
  pad_mode: str = "constant"  # constant | reflect
  remove_dc: bool = False  # subtract each frame's mean (kaldi)
  preemphasis: float = 0.0  # kaldi: 0.97
  power: float = 2.0  # 2: power spectrogram, 1: magnitude
  n_mels: int = 128
  fmin: float = 0.0
  fmax: Optional[float] = None  # None: sample_rate / 2
  htk: bool = False  # mel scale: HTK formula, else Slaney
  norm: Optional[str] = "slaney"  # slaney (unit-area triangles) | None
  triangles: str = "hz"  # hz: librosa | mel: kaldi (linear in mel)
  log: str = "db"  # db (power_to_db) | ln (log of max(S, amin)) | none
  amin: float = 1e-10
  ref: float = 1.0  # db only
  top_db: Optional[float] = 80.0  # db only; per example over (frames, mels)

  def __post_init__(self):
    validate(self)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "LogMelConfig":
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in d:
      if key not in fields:
        raise VidjaxError(f"audio.{key}: unknown front-end field (known: {sorted(fields)})")
    return cls(**dict(d))

  @property
  def n_freqs(self) -> int:
    return self.n_fft // 2 + 1


def validate(c: LogMelConfig) -> None:
  """One-line `VidjaxError` naming the field (`audio.<field>`) for bad values."""
  def bad(key, msg):
    raise VidjaxError(f"audio.{key}: {msg} (got {getattr(c, key)!r})")
  for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
    if not isinstance(getattr(c, key), (int, np.integer)) or getattr(c, key) <= 0:
      bad(key, "must be a positive integer")
  if c.win_length > c.n_fft:
    bad("win_length", f"must be <= n_fft ({c.n_fft})")
  if c.window not in WINDOWS:
    bad("window", f"must be one of {WINDOWS}")
  if c.framing not in ("librosa", "kaldi"):
    bad("framing", "must be 'librosa' or 'kaldi'")
  if c.framing == "kaldi" and c.center:
    bad("center", "kaldi framing takes frames from sample 0: set center=False")
  if c.pad_mode not in ("constant", "reflect"):
    bad("pad_mode", "must be 'constant' or 'reflect'")
  if c.power not in (1.0, 2.0):
    bad("power", "must be 1 (magnitude) or 2 (power)")
  nyquist = c.sample_rate / 2
  fmax = nyquist if c.fmax is None else c.fmax
  if not 0 <= c.fmin < fmax:
    bad("fmin", f"must be >= 0 and below fmax ({fmax})")
  if fmax > nyquist:
    bad("fmax", f"must be <= sample_rate / 2 ({nyquist})")
  if c.norm not in (None, "slaney"):
    bad("norm", "must be 'slaney' or None")
  if c.triangles not in ("hz", "mel"):
    bad("triangles", "must be 'hz' (librosa) or 'mel' (kaldi)")
  if c.triangles == "mel" and not c.htk:
    bad("htk", "kaldi triangles (triangles='mel') use the HTK mel scale: set htk=True")
  if c.log not in ("db", "ln", "none"):
    bad("log", "must be 'db', 'ln' or 'none'")
  if c.amin <= 0:
    bad("amin", "must be > 0")
  if c.top_db is not None and c.top_db < 0:
    bad("top_db", "must be >= 0 or None")


PRESETS = {
    "librosa_default": LogMelConfig(
        name="librosa_default", sample_rate=22050, n_fft=2048, win_length=2048,
        hop_length=512, n_mels=128),
    "ast_kaldi": LogMelConfig(
        name="ast_kaldi", sample_rate=16000, n_fft=512, win_length=400,
        hop_length=160, window="hann_symmetric", framing="kaldi", center=False,
        remove_dc=True, preemphasis=0.97, n_mels=128, fmin=20.0, htk=True,
        norm=None, triangles="mel", log="ln",
        amin=float(np.finfo(np.float32).eps), top_db=None),
    "visualvoice": LogMelConfig(
        name="visualvoice", sample_rate=16000, n_fft=512, win_length=400,
        hop_length=160, pad_mode="reflect", n_mels=64),
}


def preset(name: str) -> LogMelConfig:
  if name not in PRESETS:
    raise VidjaxError(f"audio.name: unknown front-end preset {name!r} (known: {sorted(PRESETS)})")
  return PRESETS[name]


def _xp(x):
  return jnp if isinstance(x, jax.Array) else np


def window(c: LogMelConfig) -> np.ndarray:
  """The `win_length` analysis window (float64); periodic Hann/Hamming as
  `scipy.signal.get_window(..., fftbins=True)`, symmetric Hann / Povey as
  Kaldi (`povey` = symmetric Hann ** 0.85)."""
  n = np.arange(c.win_length, dtype=np.float64)
  if c.window in ("hann", "hamming"):
    a = 0.5 if c.window == "hann" else 0.54
    return a - (1 - a) * np.cos(2 * np.pi * n / c.win_length)
  sym = 0.5 - 0.5 * np.cos(2 * np.pi * n / max(c.win_length - 1, 1))
  return sym ** 0.85 if c.window == "povey" else sym


def _offset(c: LogMelConfig) -> int:
  """Where the window starts inside an n_fft frame (librosa centres it)."""
  return (c.n_fft - c.win_length) // 2 if c.framing == "librosa" else 0


def num_frames(n_samples: int, c: LogMelConfig) -> int:
  if c.framing == "kaldi":
    return 1 + (n_samples - c.win_length) // c.hop_length
  padded = n_samples + 2 * (c.n_fft // 2) if c.center else n_samples
  return 1 + (padded - c.n_fft) // c.hop_length


def frames(x, c: LogMelConfig):
  """[..., samples] -> windowed frames [..., frames, win_length] (before the
  window's placement into n_fft)."""
  xp = _xp(x)
  x = x if xp is jnp else np.asarray(x)
  n = x.shape[-1]
  if c.framing == "librosa" and c.center:
    p = c.n_fft // 2
    if c.pad_mode == "reflect" and n <= p:
      raise VidjaxError(f"audio.pad_mode: reflect padding needs more than {p} samples (got {n})")
    x = xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(p, p)], mode=c.pad_mode)
  count = num_frames(n, c)
  if count < 1:
    need = c.win_length if c.framing == "kaldi" else c.n_fft
    raise VidjaxError(f"audio.n_fft: a clip of {n} samples is shorter than one frame ({need})")
  idx = (np.arange(count)[:, None] * c.hop_length + _offset(c)
         + np.arange(c.win_length)[None, :])
  f = x[..., idx]
  if c.remove_dc:
    f = f - f.mean(axis=-1, keepdims=True)
  if c.preemphasis:
    prev = xp.concatenate([f[..., :1], f[..., :-1]], axis=-1)
    f = f - c.preemphasis * prev
  return f * window(c).astype(f.dtype)


def stft(x, c: LogMelConfig):
  """Complex STFT [..., frames, n_fft // 2 + 1] (librosa.stft transposed)."""
  xp = _xp(x)
  f = frames(x, c)
  lo = _offset(c)
  f = xp.pad(f, [(0, 0)] * (f.ndim - 1) + [(lo, c.n_fft - c.win_length - lo)])
  return xp.fft.rfft(f, n=c.n_fft, axis=-1)


def spectrogram(x, c: LogMelConfig):
  """|STFT| ** power; the power case avoids the square root."""
  s = stft(x, c)
  p = s.real ** 2 + s.imag ** 2
  return p if c.power == 2.0 else _xp(x).sqrt(p)


def _hz_to_mel(f, htk: bool):
  f = np.asarray(f, dtype=np.float64)
  if htk:
    return 2595.0 * np.log10(1.0 + f / 700.0)
  f_sp, min_log_hz = 200.0 / 3, 1000.0
  min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
  lin = f / f_sp
  return np.where(f >= min_log_hz,
                  min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, lin)


def _mel_to_hz(m, htk: bool):
  m = np.asarray(m, dtype=np.float64)
  if htk:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
  f_sp, min_log_hz = 200.0 / 3, 1000.0
  min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
  return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(c: LogMelConfig) -> np.ndarray:
  """[n_mels, n_fft // 2 + 1] float64 weights (librosa.filters.mel layout).

  `triangles="hz"`: librosa (edges equally spaced in mel, ramps linear in Hz).
  `triangles="mel"`: Kaldi `MelBanks` (ramps linear in mel, Nyquist bin 0).
  """
  fmax = c.sample_rate / 2 if c.fmax is None else c.fmax
  edges_mel = np.linspace(_hz_to_mel(c.fmin, c.htk), _hz_to_mel(fmax, c.htk), c.n_mels + 2)
  freqs = np.arange(c.n_freqs, dtype=np.float64) * c.sample_rate / c.n_fft
  if c.triangles == "mel":
    pos, edges = _hz_to_mel(freqs, True), edges_mel
  else:
    pos, edges = freqs, _mel_to_hz(edges_mel, c.htk)
  lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  up = (pos[None] - lo) / (mid - lo)
  down = (hi - pos[None]) / (hi - mid)
  w = np.maximum(0.0, np.minimum(up, down))
  if c.triangles == "mel":
    w[:, -1] = 0.0
  if c.norm == "slaney":
    hz = _mel_to_hz(edges_mel, c.htk)
    w *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
  return w


def mel_spectrogram(x, c: LogMelConfig):
  """[..., samples] -> [..., frames, n_mels] mel-weighted (power) spectrogram."""
  s = spectrogram(x, c)
  fb = mel_filterbank(c).T.astype(s.dtype)
  return s @ fb


def power_to_db(s, ref: float = 1.0, amin: float = 1e-10, top_db: Optional[float] = 80.0,
                power: float = 2.0):
  """librosa.power_to_db (power 2) / amplitude_to_db (power 1) with a scalar
  ref; `top_db` floors at the maximum over the last two axes (one example),
  where librosa takes the maximum over the whole array."""
  xp = _xp(s)
  k = 10.0 if power == 2.0 else 20.0
  db = k * xp.log10(xp.maximum(amin, s)) - k * np.log10(max(amin, ref))
  if top_db is not None:
    peak = db.max(axis=(-2, -1), keepdims=True) if db.ndim >= 2 else db.max()
    db = xp.maximum(db, peak - top_db)
  return db


def log_mel(x, c: LogMelConfig):
  """[..., samples] -> [..., frames, n_mels] log-mel as configured."""
  m = mel_spectrogram(x, c)
  if c.log == "db":
    return power_to_db(m, c.ref, c.amin, c.top_db, c.power)
  if c.log == "ln":
    return _xp(x).log(_xp(x).maximum(m, c.amin))
  return m


def _overlap_add(f, hop: int):
  """[..., F, n] frames -> [..., n + hop (F - 1)] sum, with pads and adds only
  (no scatter): each frame is cut into R = ceil(n / hop) hop-long chunks and
  chunk r of frame k lands in output block k + r."""
  xp = _xp(f)
  n_frames, n = f.shape[-2], f.shape[-1]
  r_count = -(-n // hop)
  lead = [(0, 0)] * (f.ndim - 2)
  f = xp.pad(f, lead + [(0, 0), (0, r_count * hop - n)])
  f = f.reshape(f.shape[:-1] + (r_count, hop))
  out = 0
  for r in range(r_count):
    out = out + xp.pad(f[..., r, :], lead + [(r, r_count - 1 - r), (0, 0)])
  out = out.reshape(out.shape[:-2] + ((n_frames + r_count - 1) * hop,))
  return out[..., :n + hop * (n_frames - 1)]


def istft(s, c: LogMelConfig, length: Optional[int] = None):
  """Inverse of `stft` with librosa.istft semantics: inverse rFFT of each frame,
  synthesis window, overlap-add, division by the summed squared window where it
  exceeds the dtype's tiny; `center` trims n_fft // 2 at the start; `length`
  zero-pads or clips the output (Griffin & Lim, IEEE TASSP 1984, eq. 6)."""
  if c.framing != "librosa":
    raise VidjaxError("audio.framing: istft needs librosa framing "
                      "(kaldi frames are not invertible)")
  xp = _xp(s)
  n_frames = s.shape[-2]
  if length:
    padded = length + 2 * (c.n_fft // 2) if c.center else length
    n_frames = min(n_frames, int(np.ceil(padded / c.hop_length)))
  f = xp.fft.irfft(s[..., :n_frames, :], n=c.n_fft, axis=-1)
  lo = _offset(c)
  win = np.zeros(c.n_fft)
  win[lo:lo + c.win_length] = window(c)
  y = _overlap_add(f * win.astype(f.dtype), c.hop_length)
  wss = _overlap_add(np.broadcast_to(win ** 2, (n_frames, c.n_fft)), c.hop_length)
  tiny = np.finfo(np.dtype(f.dtype)).tiny
  scale = np.where(wss > tiny, 1.0 / np.where(wss > tiny, wss, 1.0), 1.0)
  y = y * scale.astype(f.dtype)
  start = c.n_fft // 2 if c.center else 0
  total = y.shape[-1] - 2 * start if length is None else length
  y = y[..., start:start + total]
  short = total - y.shape[-1]
  if short > 0:
    y = xp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, short)])
  return y
