"""synthetic_av (issue #22): the mixture is the stems plus noise at the stated
SNR, sound onsets start at the rendered flashes, voices follow the looks,
the fusion label needs both modalities, and the tiny build and the loader's
batches (sync shifts, eval pairs, process slices) are what they claim."""
import ml_collections
import numpy as np
import pytest

from vidjax.audio import frontend
from vidjax.data import av_render as ar
from vidjax.errors import VidjaxError

SR, FPS, T = 16000, 8.0, 16
PER_FRAME = int(SR / FPS)


def _flash_frames(video, p, k):
  """Frames where object k's core (a disc of radius 0.6 x its size around
  its centre) is far brighter than its median frame."""
  o = p["objects"][k]
  yy, xx = np.mgrid[0:32, 0:32] + 0.5
  bright = []
  for t in range(len(video)):
    core = (xx - o["cx"][t]) ** 2 + (yy - o["cy"][t]) ** 2 <= (
        0.6 * o["size"]) ** 2
    bright.append(video[t][core].astype(np.float32).mean())
  bright = np.array(bright)
  return np.flatnonzero(bright > np.median(bright) + 30)


def _audio_onsets(stem):
  """Start samples of the nonzero runs of a stem (runs >= 1000 zeros apart)."""
  nz = np.flatnonzero(stem)
  if not len(nz):
    return np.zeros(0, int)
  return nz[np.concatenate([[True], np.diff(nz) > 1000])]


def test_render_is_deterministic_in_the_seed():
  for kind in ar.KINDS:
    v1, m1, s1, _ = ar.render(0, "train", 5, kind=kind)
    v2, m2, s2, _ = ar.render(0, "train", 5, kind=kind)
    v3, m3, _, _ = ar.render(1, "train", 5, kind=kind)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(s1, s2)
    assert not np.array_equal(v1, v3) and not np.array_equal(m1, m3)
    assert v1.shape == (T, 32, 32, 3) and v1.dtype == np.uint8
    assert m1.shape == (32000,) and m1.dtype == np.int16
    assert s1.shape == (2, 32000) and s1.dtype == np.int16


def test_mixture_is_stems_plus_noise_at_the_stated_snr():
  for i in range(12):
    kind = ar.KINDS[i % 3]
    _, mix, stems, p = ar.render(0, "test", i, kind=kind)
    noise = mix.astype(np.int64) - stems.astype(np.int64).sum(0)
    src = stems.astype(np.float64).sum(0)
    snr = 10 * np.log10(np.mean(src ** 2) / np.mean(noise.astype(float) ** 2))
    assert abs(snr - p["snr_db"]) < 0.05, (i, snr, p["snr_db"])
    assert 10.0 <= p["snr_db"] <= 20.0
    # the noise is independent of the sources and white
    corr = np.corrcoef(noise, src)[0, 1]
    assert abs(corr) < 0.05
    spec = np.abs(np.fft.rfft(noise)) ** 2
    lo, hi = spec[1:len(spec) // 2].mean(), spec[len(spec) // 2:].mean()
    assert 0.9 < lo / hi < 1.1
    assert 0.3 * 32767 - 2 <= np.abs(mix).max() <= 0.6 * 32767 + 2
    for k, o in enumerate(p["objects"]):
      assert np.any(stems[k]) == o["sounding"]


def test_sound_onsets_start_at_the_visual_flashes():
  for i in range(9):
    kind = ar.KINDS[i % 3]
    video, _, stems, p = ar.render(2, "train", i, kind=kind)
    everything = []
    for k, o in enumerate(p["objects"]):
      flashes = _flash_frames(video, p, k)
      np.testing.assert_array_equal(flashes, o["onsets"])   # from pixels
      assert len(flashes) >= 3
      everything += list(flashes)
      if o["sounding"]:
        onsets = _audio_onsets(stems[k])
        assert len(onsets) == len(flashes)
        hop = frontend.PRESETS["ast_kaldi"].hop_length
        assert np.all(np.abs(onsets - flashes * PER_FRAME) < hop), (
            onsets, flashes)
        for a in onsets:     # each burst lasts at most 150 ms
          assert not np.any(stems[k][a + int(0.15 * SR) + 1:
                                     a + int(0.25 * SR)])
    gaps = np.diff(np.sort(everything))
    assert gaps.min() >= ar.MIN_GAP and min(everything) >= 1
    assert max(everything) <= T - 3


def _harmonics(stem, f0):
  spec = np.abs(np.fft.rfft(stem.astype(np.float64)))
  freqs = np.fft.rfftfreq(len(stem), 1 / SR)
  peak = freqs[np.argmax(spec)]
  amp = lambda f: spec[np.abs(freqs - f) < 3].max()  # noqa: E731
  found = tuple(h for h in range(1, 9) if h * f0 < 0.45 * SR
                and amp(h * f0) > 0.1 * amp(f0))
  return peak, found


def test_voices_follow_the_looks_and_test_pitches_are_held_out():
  for i in range(12):
    split = ("train", "test")[i % 2]
    video, _, stems, p = ar.render(1, split, i, kind="separation")
    for k, o in enumerate(p["objects"]):
      peak, found = _harmonics(stems[k], o["f0"])
      lo, hi = ar.F0_BANDS[o["colour"]]
      assert lo <= peak <= hi and abs(peak - o["f0"]) < 0.02 * o["f0"] + 5
      assert found == tuple(h for h in ar.HARMONICS[o["shape"]]
                            if h * o["f0"] < 0.45 * SR)
      t = int(np.flatnonzero(~o["flash"])[0])        # an unlit frame
      pix = video[t, int(o["cy"][t]), int(o["cx"][t])].astype(float)
      assert np.argmin(np.linalg.norm(ar.COLOURS - pix, axis=1)) == \
          o["colour"]
      u = np.log(o["f0"] / lo) / np.log(hi / lo) * ar.F0_BINS
      assert (int(u) in ar.HELD_OUT_BINS) == (split == "test")
    c, s = [o["colour"] for o in p["objects"]], [o["shape"] for o in
                                                 p["objects"]]
    assert c[0] != c[1] and s[0] != s[1]             # distinct voices


def _band_energies(kind, split, n, seed):
  """Per clip: log energy in 40 log-spaced bands 100 Hz - 8 kHz of the whole
  mixture, level-normalised (a time-pooled spectrum)."""
  edges = np.geomspace(100, 8000, 41)
  freqs = np.fft.rfftfreq(32000, 1 / SR)
  band = np.searchsorted(edges, freqs) - 1
  feats, labels = [], []
  for i in range(n):
    p = ar.plan(seed, split, i, kind=kind)
    power = np.abs(np.fft.rfft(ar.render_audio(p, seed, split, i)[0])) ** 2
    e = np.log(np.bincount(band[band >= 0] % 40,
                           power[band >= 0], 40) + 1e-9)
    feats.append(e - e.mean())
    labels.append(p["label"])
  return np.array(feats), np.array(labels)


def _nearest_centroid(kind, seed):
  xtr, ytr = _band_energies(kind, "train", 160, seed)
  xte, yte = _band_energies(kind, "test", 80, seed)
  mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
  cent = np.stack([((xtr - mu) / sd)[ytr == c].mean(0) for c in range(4)])
  d = (((xte - mu) / sd)[:, None] - cent[None]) ** 2
  return yte, d.sum(-1).argmin(1)


def test_fusion_label_is_not_in_the_audio_alone():
  y, pred = _nearest_centroid("fusion", 0)
  assert np.mean(pred == y) <= 0.40                  # chance 0.25
  # control: the same classifier hears the factorised config's pitch, and
  # not its direction
  y, pred = _nearest_centroid("factorised", 2)
  assert np.mean(pred % 2 == y % 2) >= 0.95
  assert np.mean(pred // 2 == y // 2) <= 0.65


def test_fusion_label_is_not_in_the_video_alone():
  n = 800
  first, stats = [], {True: [], False: []}
  labels = np.zeros(4)
  for i in range(n):
    p = ar.plan(0, "train", i, kind="fusion")
    a, b = p["objects"]
    assert a["colour"] == b["colour"] and a["shape"] == b["shape"]
    np.testing.assert_array_equal(a["rgb"], b["rgb"])   # twins
    assert a["direction"] != b["direction"] and a["sounding"] != b["sounding"]
    snd = a if a["sounding"] else b
    assert p["label"] == snd["direction"]
    labels[p["label"]] += 1
    first.append(p["label"] == a["direction"])
    for o in (a, b):
      stats[o["sounding"]].append((o["onsets"].mean(), o["size"],
                                   o["cx"].mean() > 16, o["flash"].sum()))
  np.testing.assert_array_equal(labels, n // 4)
  # a video-only guess (either object's direction) is right half the time
  assert abs(np.mean(first) - 0.5) < 0.06
  # the sounding twin looks like the silent one (same per-object marginals)
  on, off = np.array(stats[True]), np.array(stats[False])
  for j in range(on.shape[1]):
    sd = max(off[:, j].std(), 1e-6)
    assert abs(on[:, j].mean() - off[:, j].mean()) < 0.15 * sd + 1e-9


def _half(video, half):
  """(flash frames, direction) of the object in one half, from pixels
  only: frames whose brightest pixels jump, and the centroid's motion."""
  part = video[:, :, 16 * half:16 * half + 16].astype(np.float32).sum(-1)
  bright = np.sort(part.reshape(len(video), -1), 1)[:, -6:].mean(1)
  flashes = set(np.flatnonzero(bright > np.median(bright) + 60).tolist())
  w = np.clip(part - np.median(part, axis=(1, 2), keepdims=True) - 100, 0,
              None)
  ys, xs = np.mgrid[0:32, 0:16]
  c = np.stack([(w * xs).sum((1, 2)), (w * ys).sum((1, 2))], 1) / w.sum(
      (1, 2))[:, None]
  dx, dy = c[-1] - c[0]
  return flashes, ((0 if dx > 0 else 1) if abs(dx) > abs(dy) else
                   (3 if dy > 0 else 2))


def _timing_rule(video, mix):
  """The direction of the half whose flashes match the 3 loudest frames."""
  energy = (mix.astype(np.float64).reshape(T, -1) ** 2).sum(1)
  loud = set(np.argsort(energy)[-3:].tolist())
  half = max((0, 1), key=lambda h: len(loud & _half(video, h)[0]))
  return _half(video, half)[1]


def test_fusion_label_is_in_both_modalities_together():
  """Flash-onset timing solves it; the same rule with another clip's audio
  is at chance among the two visible directions."""
  n = 48
  clips = [ar.render(0, "test", i, kind="fusion") for i in range(n)]
  right = [_timing_rule(v, m) == p["label"] for v, m, _, p in clips]
  other = [_timing_rule(v, clips[(i + 1) % n][1]) == p["label"]
           for i, (v, _, _, p) in enumerate(clips)]
  assert np.mean(right) >= 0.97
  assert 0.3 <= np.mean(other) <= 0.7


def test_a_sync_shift_moves_the_onsets_off_the_flashes():
  """Aligned iff the loudest frames are flash frames: a timing rule tells
  aligned from shifted pairs (the loader's shifts; the misses in fusion are
  shifts that land on the silent twin's flashes)."""
  from vidjax.data import av_loader
  spec = av_loader.AVSpec(sync=True)
  for kind, seed, bar in (("fusion", 0, 0.9), ("separation", 1, 0.97)):
    right = []
    for i in range(40):
      v, m, _, p = ar.render(seed, "test", i, kind=kind)
      shift = av_loader.draw_shift(np.random.default_rng([3, 4, i]),
                                   (len(m), T, 2, T - 2))
      k = 3 * sum(o["sounding"] for o in p["objects"])
      flashes = _half(v, 0)[0] | _half(v, 1)[0]
      for mix, aligned in ((m, True), (np.roll(m, shift), False)):
        energy = (mix.astype(np.float64).reshape(T, -1) ** 2).sum(1)
        loud = set(np.argsort(energy)[-k:].tolist())
        right.append((loud <= flashes) == aligned)
    assert np.mean(right) >= bar, (kind, np.mean(right))


def test_factorised_labels_are_motion_times_pitch():
  for i in range(40):
    p = ar.plan(2, "train", i, kind="factorised")
    a, b = p["objects"]
    snd = a if a["sounding"] else b
    assert a["direction"] == b["direction"] == p["label"] // 2
    assert snd["colour"] // 2 == p["label"] % 2
    assert a["sounding"] != b["sounding"]


def _cfg(tmp_path, **kw):
  d = dict(name="synthetic_av", config="fusion", data_dir=str(tmp_path),
           train_examples=8, test_examples=5)
  return ml_collections.ConfigDict({**d, **kw})


def test_tiny_build_reads_back_the_rendered_examples(tmp_path):
  from vidjax.data import av_loader
  from vidjax.data import synthetic_av as sa
  data = av_loader.load(_cfg(tmp_path))
  assert (len(data.train), len(data.test)) == (8, 5)
  assert data.class_names == list(ar.DIRECTION_NAMES)
  ex = sa.render_example(data.builder.builder_config, "test", 3)
  for key in ("video", "audio", "stems", "boxes", "flash", "onset_samples"):
    np.testing.assert_array_equal(data.test[key][3], ex[key])
  np.testing.assert_array_equal(data.test["onset_samples"],
                                data.test["onset_frames"] * PER_FRAME)
  assert data.test["label"].tolist() == [0, 1, 2, 3, 0]


def test_loader_batches_sync_shifts_and_process_slices(tmp_path):
  from vidjax.data import av_loader
  data = av_loader.load(_cfg(tmp_path))
  spec = av_loader.AVSpec.from_config(_cfg(tmp_path, sync=True))
  plain = av_loader.AVSpec()
  loader = av_loader.TrainLoader(data.train, spec, seed=3, global_batch=16)
  b, again = loader.batch(7), loader.batch(7)
  for k in b:
    np.testing.assert_array_equal(b[k], again[k])
  assert b["audio"].shape == (16, 32000) and b["audio"].dtype == np.float32
  ref = av_loader.make_batch(data.train, b["index"], plain)
  lo = int(0.25 * SR)
  assert 0 < b["aligned"].sum() < 16
  for r in range(16):
    s = int(b["shift"][r])
    assert (s == 0) == bool(b["aligned"][r])
    if s:
      assert lo <= s <= 32000 - lo                  # >= 0.25 s either way
    np.testing.assert_array_equal(b["audio"][r], np.roll(ref["audio"][r], s))
    np.testing.assert_array_equal(b["stems"][r],
                                  np.roll(ref["stems"][r], s, axis=-1))
    np.testing.assert_allclose(b["audio"][r], b["stems"][r].sum(0), atol=0.2)
  halves = [av_loader.TrainLoader(data.train, spec, 3, 16, p, 2).batch(7)
            for p in (0, 1)]
  for k in b:
    np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]),
                                  b[k])
  # evaluation: every example aligned, then shifted; the last batch padded
  ev = av_loader.EvalLoader(data.test, spec, batch_size=4, seed=3)
  rows = list(ev.iterate())
  assert len(rows) == 3 and [int(x["valid"].sum()) for x in rows] == [4, 4, 2]
  idx = np.concatenate([x["index"][x["valid"]] for x in rows])
  aligned = np.concatenate([x["aligned"][x["valid"]] for x in rows])
  assert idx.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
  assert aligned.tolist() == [1, 0] * 5
  assert [int(x) for x in ev.batch(1)["shift"]] == [
      int(x) for x in rows[1]["shift"]]


def _circular_onsets(stem):
  """Sorted start samples of a rolled stem's nonzero runs, the clip read as
  a circle (>= 1000 zeros before each, counting across the seam)."""
  nz = np.flatnonzero(stem)
  if not len(nz):
    return np.zeros(0, int)
  gaps = np.diff(np.concatenate([[nz[-1] - len(stem)], nz]))
  return nz[gaps > 1000]


def test_sync_shifts_are_whole_frames_so_onsets_stay_on_the_frame_grid(
    tmp_path):
  """The leak of #22: shifts of whole samples moved a shifted track's onsets
  off the 0.125 s frame grid every aligned onset sits on, so audio alone
  told aligned from shifted. Shifts are whole frames (>= 2 at 0.25 s, all
  of 2..T-2 drawn), and each shifted stem's onsets sit at the same phase
  of the grid as the aligned stem's (stored onsets: exactly on it)."""
  import types
  from vidjax.data import av_loader
  data = av_loader.load(_cfg(tmp_path))
  spec = av_loader.AVSpec.from_config(_cfg(tmp_path, sync=True))
  assert av_loader.shift_frames(data.train, spec) == (32000, T, 2, T - 2)
  loader = av_loader.TrainLoader(data.train, spec, seed=3, global_batch=16)
  ev = av_loader.EvalLoader(data.test, spec, batch_size=4, seed=3)
  batches = [(data.train, loader.batch(s)) for s in range(12)]
  batches += [(data.test, b) for b in ev.iterate()]
  ks, checked = set(), 0
  for split, b in batches:
    for r in np.flatnonzero(b["aligned"] == 0):
      s, i = int(b["shift"][r]), int(b["index"][r])
      assert s % PER_FRAME == 0 and 2 <= s // PER_FRAME <= T - 2, s
      ks.add(s // PER_FRAME)
      moved = (split["onset_samples"][i] + s) % 32000
      assert np.all(moved % PER_FRAME == 0), (s, moved)
      for k in range(2):     # circular runs: a burst may wrap the seam
        got = _circular_onsets(b["stems"][r][k])
        ref = _audio_onsets(split["stems"][i][k])
        np.testing.assert_array_equal(np.sort(got % PER_FRAME),
                                      np.sort(ref % PER_FRAME))
        np.testing.assert_array_equal(got, np.sort((ref + s) % 32000))
        checked += len(got)
  assert checked >= 100 and ks == set(range(2, T - 1)), (checked, ks)
  odd = types.SimpleNamespace(num_samples=40000, num_frames=10)  # 4 fps
  assert av_loader.shift_frames(odd, av_loader.AVSpec(min_shift=0.3)) == (
      40000, 10, 2, 8)                      # 0.3 s -> 1.2 frames -> 2
  with pytest.raises(VidjaxError, match="config.dataset.sync_min_shift"):
    av_loader.shift_frames(types.SimpleNamespace(num_samples=32000,
                                                 num_frames=5),
                           av_loader.AVSpec(min_shift=1.0))


def test_log_mel_features_and_bad_settings(tmp_path):
  from vidjax.data import av_loader
  from vidjax.data import synthetic_av as sa
  data = av_loader.load(_cfg(tmp_path))
  spec = av_loader.AVSpec.from_config(_cfg(
      tmp_path, audio=dict(features="log_mel", log_mel="ast_kaldi")))
  b = av_loader.EvalLoader(data.test, spec, 5, 0).batch(0)
  c = frontend.PRESETS["ast_kaldi"]
  assert b["audio"].shape == (5, frontend.num_frames(32000, c), c.n_mels)
  np.testing.assert_allclose(
      b["audio"][2], frontend.log_mel(data.test["audio"][2] / 32767.0, c),
      rtol=1e-5, atol=1e-4)
  for kw, key in ((dict(num_frames=12), "num_frames"),
                  (dict(train_examples=0), "train_examples"),
                  (dict(fps=7.0), "sample_rate")):
    with pytest.raises(VidjaxError, match=f"config.dataset.{key}"):
      sa.make_config("fusion", **kw)
  with pytest.raises(VidjaxError, match="config.dataset.config"):
    sa.make_config("duet")
  assert av_loader.builder_overrides(_cfg(tmp_path, fps=0.0)) == {
      "train_examples": 8, "test_examples": 5}
  with pytest.raises(VidjaxError, match="config.dataset.num_frames=8"):
    av_loader.load(_cfg(tmp_path, num_frames=8))
  from vidjax.data import datasets    # not a clip-classification dataset
  with pytest.raises(VidjaxError, match="config.dataset.name='synthetic_av'"
                     ".*audio-visual"):
    datasets.class_names(_cfg(tmp_path))
  with pytest.raises(VidjaxError, match="sync_min_shift"):
    av_loader.AVSpec.from_config(_cfg(tmp_path, sync_min_shift=1.5))
  with pytest.raises(VidjaxError, match="audio.log_mel"):
    av_loader.AVSpec.from_config(_cfg(
        tmp_path, audio=dict(features="log_mel", log_mel="librosa_default")))


def test_prepare_data_builds_the_config(tmp_path, capsys):
  from tools import prepare_data
  assert prepare_data.prepare(_cfg(tmp_path, config="separation")) is None
  assert "synthetic_av/separation: 8 train, 5 test examples" in (
      capsys.readouterr().out)
