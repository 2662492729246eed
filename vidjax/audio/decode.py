"""A video file's audio track: PyAV decode, resample, and a clip's window.

Issue #22, item 1 (audio in the data path). `decode_audio` decodes the first
audio stream of a file with PyAV (FFmpeg) and resamples it with
`av.AudioResampler(format="flt", layout="mono", rate=sample_rate)` (PyAV
docs, "Audio": https://pyav.basswood-io.com/docs/stable/api/audio.html): mono
float32 in [-1, 1] (FFmpeg's float sample range), and the presentation time of
its first sample (`frame.pts * frame.time_base` of the first decoded frame).
FFmpeg's MP4 demuxer turns an AAC track's edit list (the encoder's priming
samples, Apple's "AAC priming" / ISO 14496-12 `elst`) into skip-samples side
data the decoder applies, so that first time is the first *audible* sample's;
`tests/test_audio_decode.py` checks it against clicks muxed at known frames.

Alignment is by timestamps: stored frame k of a video shows at `video_t0 +
k / fps` (its first kept frame's pts; constant frame rate, as the pipeline
assumes everywhere) and audio sample n plays at `audio_t0 + n / sr`. A clip
starting at frame k therefore takes the samples from
`round((video_t0 + k / fps - audio_t0) * sr)` on (`window_start`), a fixed
count (`AudioSpec.window_samples`: `round(num_frames * frame_stride /
window_fps * sr)`, the clip's span in seconds), zero-padded where it runs off
either end of the track (`window`).

Config (`config.dataset.audio`, see configs/default.py), checked by
`AudioSpec.from_config` with one-line `VidjaxError`s before any build:
`enabled` (False: nothing changes), `sample_rate`, `missing` ("silence": a
video with no audio track or a corrupt one keeps silence and is named in the
build report; "refuse": the build stops with an error naming the file),
`features` ("waveform": batch["audio"] is float32 [B, samples]; "log_mel":
`vidjax.audio.frontend.log_mel` of it, [B, frames, mels]), `log_mel` (a
front-end preset of `frontend.PRESETS`; its sample rate must be
`sample_rate`) and `window_fps` (0: config.dataset.fps).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from vidjax.errors import VidjaxError

MISSING = ("silence", "refuse")
FEATURES = ("waveform", "log_mel")
INT16_SCALE = 32767.0  # stored as int16: x * 32767, rounded (error <= 1.5e-5)


class NoAudio(Exception):
  """A file with no usable audio track; str(e) is the reason for the report."""


@dataclasses.dataclass(frozen=True)
class AudioSpec:
  """The validated `config.dataset.audio` of a run with audio enabled."""
  sample_rate: int = 16000
  missing: str = "silence"
  features: str = "waveform"
  log_mel: str = "ast_kaldi"
  window_fps: float = 25.0
  clip_frames: int = 16  # num_frames * frame_stride: the clip's span

  @classmethod
  def from_config(cls, dataset_config) -> "AudioSpec | None":
    """None when audio is off (or the key is absent); else the checked spec."""
    a = dataset_config.get("audio", None)
    if a is None or not bool(a.get("enabled", False)):
      return None
    sr = a.get("sample_rate", 16000)
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
      raise VidjaxError("config.dataset.audio.sample_rate must be a positive "
                        f"integer (Hz), got {sr!r}")
    missing, features = a.get("missing", "silence"), a.get("features",
                                                           "waveform")
    if missing not in MISSING:
      raise VidjaxError(f"config.dataset.audio.missing must be one of "
                        f"{MISSING}, got {missing!r}")
    if features not in FEATURES:
      raise VidjaxError(f"config.dataset.audio.features must be one of "
                        f"{FEATURES}, got {features!r}")
    name = a.get("log_mel", "ast_kaldi")
    if features == "log_mel":
      from vidjax.audio import frontend  # noqa: PLC0415
      if name not in frontend.PRESETS:
        raise VidjaxError(f"config.dataset.audio.log_mel={name!r} is not a "
                          "front-end preset (known: "
                          f"{sorted(frontend.PRESETS)})")
      if frontend.PRESETS[name].sample_rate != int(sr):
        raise VidjaxError(
            f"config.dataset.audio.log_mel={name!r} expects "
            f"{frontend.PRESETS[name].sample_rate} Hz but "
            f"config.dataset.audio.sample_rate={sr}")
    fps = float(a.get("window_fps", 0.0) or dataset_config.get("fps", 0.0)
                or 0.0)
    if fps <= 0:
      raise VidjaxError("config.dataset.audio.window_fps (or config.dataset."
                        "fps) must be > 0: it fixes the audio window's length")
    span = int(dataset_config.get("num_frames", 1)) * int(
        dataset_config.get("frame_stride", 1))
    return cls(int(sr), missing, features, name, fps, max(span, 1))

  @property
  def window_samples(self) -> int:
    """Samples per clip: round(num_frames * frame_stride / window_fps * sr)."""
    return int(round(self.clip_frames / self.window_fps * self.sample_rate))

  def log_mel_config(self):
    from vidjax.audio import frontend  # noqa: PLC0415
    return frontend.PRESETS[self.log_mel]

  def features_of(self, waves: np.ndarray) -> np.ndarray:
    """batch["audio"] from stacked windows [B, samples] (float32)."""
    if self.features == "waveform":
      return waves
    from vidjax.audio import frontend  # noqa: PLC0415
    return np.asarray(frontend.log_mel(waves, self.log_mel_config()),
                      np.float32)


def decode_audio(path: str, sample_rate: int) -> tuple[np.ndarray, float]:
  """(mono float32 waveform at `sample_rate`, its first sample's time in s).

  Raises NoAudio: no audio stream, no decoder, a decode error or no sample.
  """
  import av  # noqa: PLC0415 - PyAV only where files are decoded
  try:
    container = av.open(path)
  except Exception as e:  # noqa: BLE001 - reported per file
    raise NoAudio(f"cannot be opened: {' '.join(str(e).split())[:160]}"
                  ) from None
  with container:
    if not container.streams.audio:
      raise NoAudio("no audio track")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
      raise NoAudio("unsupported audio codec: FFmpeg has no decoder for it")
    resampler = av.AudioResampler(format="flt", layout="mono",
                                  rate=int(sample_rate))
    parts, t0 = [], None
    try:
      for frame in container.decode(stream):
        if t0 is None and frame.pts is not None and frame.time_base:
          t0 = float(frame.pts * frame.time_base)
        parts += [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
      parts += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    except Exception as e:  # noqa: BLE001
      raise NoAudio(f"corrupt audio track: {' '.join(str(e).split())[:160]}"
                    ) from None
  wave = (np.concatenate(parts).astype(np.float32, copy=False) if parts
          else np.zeros(0, np.float32))
  if not wave.size:
    raise NoAudio("audio track with no decodable sample")
  return wave, float(t0 or 0.0)


def to_int16(wave: np.ndarray) -> np.ndarray:
  return np.round(np.clip(wave, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def from_int16(samples: np.ndarray) -> np.ndarray:
  return np.asarray(samples, np.float32) / np.float32(INT16_SCALE)


def window_start(first_frame: int, fps: float, video_t0: float,
                 audio_t0: float, sample_rate: int) -> int:
  """Index (in the track, may be < 0) of the sample playing when stored frame
  `first_frame` shows."""
  t = video_t0 + first_frame / fps - audio_t0
  return int(round(t * sample_rate))


def window(samples, start: int, length: int) -> np.ndarray:
  """samples[start:start + length] as float32, zeros outside the track.

  `samples`: a float array, or anything with `len` and `read(lo, hi)`
  returning float32 (a stored track)."""
  out = np.zeros(length, np.float32)
  lo, hi = max(start, 0), min(start + length, len(samples))
  if hi > lo:
    part = (samples.read(lo, hi) if hasattr(samples, "read")
            else np.asarray(samples[lo:hi], np.float32))
    out[lo - start:hi - start] = part
  return out


@dataclasses.dataclass
class AudioTrack:
  """A stored video's audio: `samples` (see `window`), its rate, its first
  sample's time and the video's (first stored frame) time and frame rate."""
  samples: object
  sample_rate: int
  audio_t0: float
  video_t0: float
  fps: float

  def clip(self, first_frame: int, length: int) -> np.ndarray:
    """The `length` samples from the time stored frame `first_frame` shows."""
    if self.fps <= 0:
      raise VidjaxError("config.dataset.audio: a video with an unknown frame "
                        "rate cannot be aligned to its audio")
    return window(self.samples, window_start(
        first_frame, self.fps, self.video_t0, self.audio_t0,
        self.sample_rate), length)
