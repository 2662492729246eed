"""The separation evaluator on hand cases, and the task's config errors.

Hand case: two sinusoids with whole periods in the clip (orthogonal, equal
energy); mixture = their sum, so the mixture's SI-SDR for either is exactly
0 dB; the estimate s_k + 0.1 s_other has SI-SDR exactly 20 dB; conditioning
on the other object returns s_other + 0.1 s_k: SI-SDR -20 dB. BSS-Eval SDR
(512-tap filters) agrees within 0.3 dB: no filter turns a sinusoid into
one at another frequency (only the clip edges' transients let it fit a
little more).
"""
import numpy as np
import pytest

from configs import sound_of_pixels
from vidjax import sharding
from vidjax.errors import VidjaxError
from vidjax.tasks.separation import data, evaluate as ev, task

N = 8000


def _sines():
  t = np.arange(N)
  return np.stack([np.sin(2 * np.pi * 50 * t / N),
                   np.sin(2 * np.pi * 173 * t / N + 0.4)])


def test_evaluator_sdri_hand_case():
  s = _sines()
  mix = s.sum(0)
  est = np.stack([s[0] + 0.1 * s[1], s[1] + 0.1 * s[0]])
  rows = ev.source_rows(s, mix, est, oracle=s)
  assert [r["source"] for r in rows] == [0, 1]
  for r in rows:
    assert r["si_sdr"] == pytest.approx(20.0, abs=1e-6)
    assert r["mixture_si_sdr"] == pytest.approx(0.0, abs=1e-6)
    assert r["swap_si_sdr"] == pytest.approx(-20.0, abs=1e-6)
    # SDR's 512-tap filter may also fit the clip edges' transients of the
    # other sinusoid: at least the SI-SDR, by at most 0.3 dB here
    assert 20.0 - 1e-6 <= r["sdr"] <= 20.3
    assert -1e-6 <= r["mixture_sdr"] <= 0.3
    assert r["oracle_sdr"] > 100      # the references themselves
  m = ev.summarize(rows)
  assert m["eval/si_sdri"] == pytest.approx(20.0, abs=1e-6)
  assert m["eval/sdri"] == pytest.approx(20.0, abs=0.3)
  assert m["eval/swap_si_sdri"] == pytest.approx(-20.0, abs=1e-6)
  # at -20 dB the filter's edge fit weighs more: BSS SDR reads ~-14 dB
  assert -20.0 - 1e-6 <= m["eval/swap_sdri"] <= -10.0
  assert m["eval/num_sources"] == 2 and m["eval/num_silent"] == 0


def test_sdr_many_equals_bss_eval_sdr():
  from vidjax.audio import metrics
  rng = np.random.default_rng(0)
  ref = rng.standard_normal(N)
  ests = np.stack([ref + 0.3 * rng.standard_normal(N), rng.standard_normal(N),
                   0.5 * np.roll(ref, 3) - 0.1 * ref])
  got = ev.sdr_many(ref, ests)
  want = [metrics.sdr(ref, e) for e in ests]
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_silent_source_is_skipped_and_counted():
  s = _sines()
  other = s[1].copy()
  s[1] = 0
  noise = 0.01 * np.random.default_rng(0).standard_normal(s.shape)
  rows = ev.source_rows(s, s[0] + 0.3 * other, s + noise, oracle=s + noise)
  assert rows[1] == {"source": 1, "silent": True}
  m = ev.summarize(rows)
  assert m["eval/num_sources"] == 1 and m["eval/num_silent"] == 1
  assert m["eval/sdri"] == pytest.approx(rows[0]["sdr"] -
                                         rows[0]["mixture_sdr"])
  assert np.isfinite(m["eval/sdri"]) and m["eval/sdri"] > 20


def test_oracle_of_the_reference_mixture_is_exact():
  s = _sines()
  from vidjax.models import separation as sep
  cfg = sep.stft_config(sep.SeparationUNet())
  est = ev.oracle_estimates(cfg, s[0], s[:1])   # one source = the mixture
  np.testing.assert_allclose(est[0], s[0], atol=1e-9)


def test_batches_are_a_function_of_seed_and_step():
  d = data.tones_set(12, 0, num_frames=4, seconds=0.5)
  a = data.TrainLoader(d, 3, 8, remix_gain=0.5)
  b = data.TrainLoader(d, 3, 8, remix_gain=0.5)
  for step in (0, 5):
    x, y = a.batch(step), b.batch(step)
    for k in data.TRAIN_KEYS:
      np.testing.assert_array_equal(x[k], y[k])
  x = a.batch(1)
  # a remix keeps mixture - sum(stems) (the noise) and rescales each stem
  rows = d.rows(a.indices(1))
  np.testing.assert_allclose(x["mixture"] - x["stems"].sum(1),
                             rows["mixture"] - rows["stems"].sum(1),
                             atol=1e-5)
  gain = x["stems"].max(-1) / rows["stems"].max(-1)
  assert np.all((gain > 1 / 1.5 - 1e-6) & (gain < 1.5 + 1e-6))
  ev_loader = data.EvalLoader(d, 8)
  got = list(ev_loader.iterate())
  assert [int(b["valid"].sum()) for b in got] == [8, 4]
  assert list(np.concatenate([b["index"][b["valid"]] for b in got])) == list(
      range(12))


@pytest.mark.parametrize("key,value,match", [
    ("separation.loss", "mse", r"config\.separation\.loss"),
    ("separation.remix_gain", -1.0, r"config\.separation\.remix_gain"),
    ("separation.num_sources", 1, r"config\.separation\.num_sources"),
    ("dataset.name", "ucf101", r"config\.dataset\.name"),
    ("model.mask", "soft", r"config\.model\.mask"),
    ("model.freq_bins", 30, r"config\.model\.freq_bins"),
    ("batch_size", 12, r"batch_size"),
])
def test_preflight_one_line_errors(key, value, match):
  config = sound_of_pixels.get_config("tiny")
  node = config
  *path, last = key.split(".")
  for p in path:
    node = node[p]
  node[last] = value
  with pytest.raises(VidjaxError, match=match) as e:
    task.preflight(config, sharding.make_mesh())
  assert "\n" not in str(e.value)


def test_music_variant_preflight_and_data_refusal(tmp_path):
  config = sound_of_pixels.get_config("music")
  with pytest.raises(VidjaxError, match=r"config\.dataset\.path"):
    task.preflight(config, sharding.make_mesh())
  config.dataset.path = str(tmp_path)
  pre = task.preflight(config, sharding.make_mesh())   # paper-size U-Net
  down = pre.abstract_params["down6"]["kernel"]
  assert down.shape == (4, 4, 512, 512)
  with pytest.raises(VidjaxError, match="music"):
    task.Separation().load_data(config, str(tmp_path))


def test_check_tool_bar_table():
  from tools import separation_check as sc
  rows = sc.bar_rows({"eval/sdri": 6.5, "eval/si_sdri": 3.0,
                      "eval/swap_sdri": 0.2, "eval/oracle_sdr": 15.0})
  assert [ok for *_, ok in rows] == [True, None, False, True]
  text = sc.table(rows)
  assert "SDRi, other object's condition (dB)" in text and "NO" in text
  assert len(text.splitlines()) == 5
