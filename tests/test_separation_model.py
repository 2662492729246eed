"""The separation U-Net and its spectral path (vidjax/models/separation.py).

Synthetic tones only: the oracle ideal ratio mask must separate them (catches
STFT / iSTFT, phase and alignment bugs), the exact complex ratio mask must
return the source itself through the model's iSTFT path, the U-Net's output
has the mask grid's shape and a mask's range, and the visual condition
changes the output (per-object, swap-equivariant, non-zero gradients).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.audio import frontend, metrics
from vidjax.errors import VidjaxError
from vidjax.models import separation as sep
from vidjax.tasks.separation import data, evaluate as ev

# A tiny U-Net run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 26 -> 13 CPU-s), same bars.
pytestmark = pytest.mark.fast_compile

SR, N = 16000, 8000


def tones(seed=0):
  """Two harmonic tones in separate pitch bands, bursty, + weak noise."""
  d = data.tones_set(1, seed, num_frames=4, size=32, seconds=N / SR)
  return d.mixture[0].astype(np.float64), d.stems[0].astype(np.float64), d


@pytest.fixture(scope="module")
def model():
  return sep.SeparationUNet(widths=(8, 16), visual_widths=(8,),
                            visual_frames=2, freq_bins=32)


def test_oracle_ratio_mask_separates_tones(model):
  mix, stems, _ = tones()
  est = ev.oracle_estimates(sep.stft_config(model), mix, stems)
  for k in range(2):
    assert metrics.sdr(stems[k], est[k]) >= 15.0
    assert metrics.sdr(stems[k], mix) < 8.0     # the mixture alone is not


def test_exact_ratio_mask_returns_the_source(model):
  mix, stems, _ = tones(1)
  x, _ = sep.spectra(model, jnp.asarray(mix[None], jnp.float32))
  s, _ = sep.spectra(model, jnp.asarray(stems[None], jnp.float32))
  ratio = s / jnp.where(jnp.abs(x[:, None]) > 0, x[:, None], 1.0)
  out = np.asarray(sep.apply_masks(model, x, ratio, N))[0]
  assert out.shape == (2, N)
  np.testing.assert_allclose(out, stems, atol=2e-5)
  # the real ratio mask with the mixture phase is close, not exact
  mag = jnp.clip(jnp.abs(ratio), 0, 1)
  approx = np.asarray(sep.apply_masks(model, x, mag, N))[0]
  assert 0 < np.abs(approx - stems).max() and all(
      metrics.si_sdr(stems[k], approx[k]) > 15 for k in range(2))


def test_warp_grids(model):
  f = model.n_fft // 2 + 1
  w = sep.warp_matrix(f, model.freq_bins)
  u = sep.unwarp_matrix(f, model.freq_bins)
  assert w.shape == (f, model.freq_bins) and u.shape == (model.freq_bins, f)
  np.testing.assert_allclose(w.sum(0), 1.0)   # each warped bin interpolates
  np.testing.assert_allclose(u.sum(0), 1.0)   # each linear bin reads one
  pos = sep.warp_positions(f, model.freq_bins, True)
  assert pos[0] == pytest.approx(1.0) and pos[-1] == pytest.approx(f - 1)
  assert np.all(np.diff(np.log(pos)) == pytest.approx(np.log(f - 1) /
                                                      (model.freq_bins - 1)))


def _inputs(model, d, batch=2):
  mix = jnp.asarray(np.repeat(d.mixture[:1], batch, 0))
  video = jnp.asarray(np.repeat(d.video[:1], batch, 0), jnp.float32) / 255.
  boxes = jnp.asarray(np.repeat(d.boxes[:1], batch, 0))
  _, warped = sep.spectra(model, mix)
  return jnp.log(warped + sep.LOG_EPS), video, boxes, mix


def test_unet_shapes_mask_range_and_conditioning(model):
  _, _, d = tones(2)
  x, video, boxes, mix = _inputs(model, d)
  v = jax.jit(model.init)({"params": jax.random.PRNGKey(0)}, x, video, boxes)
  apply = jax.jit(model.apply)
  logits = apply(v, x, video, boxes)
  t = frontend.num_frames(N, sep.stft_config(model))
  assert logits.shape == (2, 2, t, model.freq_bins)
  masks = np.asarray(sep.masks_from_logits(model, logits))
  assert masks.shape == (2, 2, t, model.n_fft // 2 + 1)
  assert masks.min() >= 0.0 and masks.max() <= 1.0
  binary = sep.SeparationUNet(**{**_fields(model), "mask": "binary"})
  bm = np.asarray(sep.masks_from_logits(binary, logits))
  assert set(np.unique(bm)) <= {0.0, 1.0}
  out = jax.jit(lambda *a: sep.separate(model, *a))(v, mix, video, boxes)
  assert out.shape == (2, 2, N)
  # each object's box gives its own mask; swapping the boxes swaps them
  a = np.asarray(logits)
  assert np.abs(a[:, 0] - a[:, 1]).mean() > 1e-4
  swapped = np.asarray(apply(v, x, video, boxes[:, ::-1]))
  np.testing.assert_allclose(swapped, a[:, ::-1], rtol=1e-5, atol=1e-5)

  def loss(params, video):
    return model.apply({**v, "params": params}, x, video, boxes)[:, 0].sum()
  g_params, g_video = jax.jit(jax.grad(loss, argnums=(0, 1)))(v["params"],
                                                               video)
  assert float(jnp.abs(g_params["film"]["kernel"]).sum()) > 0
  assert float(jnp.abs(g_params["visual_fc"]["kernel"]).sum()) > 0
  assert float(jnp.abs(g_video).sum()) > 0


def _fields(model):
  return {k: getattr(model, k) for k in ("widths", "visual_widths",
                                         "visual_frames", "freq_bins")}


@pytest.mark.parametrize("field,value,key", [
    ("mask", "soft", "config.model.mask"),
    ("conditioning", "add", "config.model.conditioning"),
    ("freq_bins", 30, "config.model.freq_bins"),
    ("win_length", 1024, "audio.win_length")])
def test_bad_options_are_one_line_errors(model, field, value, key):
  bad = sep.SeparationUNet(**{**_fields(model), field: value})
  with pytest.raises(VidjaxError, match=key.replace(".", r"\.")):
    bad.check()
