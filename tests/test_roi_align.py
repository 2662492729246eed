"""RoIAlign (vidjax.layers.roi_align) against a direct numpy rendering of the
torchvision / detectron2 kernel rule, hand-computed values and gradients."""
import math

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.layers import roi_align as ra

_STATIC = ("output_size", "spatial_scale", "sampling_ratio", "aligned",
           "adaptive_cap")
roi_align = jax.jit(ra.roi_align, static_argnames=_STATIC)
roi_align_1d = jax.jit(ra.roi_align_1d,
                       static_argnames=_STATIC + ("zero_outside",))


def _bilinear(fmap, y, x):
  """The reference kernel's bilinear read of fmap [H, W, C] at (y, x)."""
  h, w = fmap.shape[:2]
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return np.zeros(fmap.shape[-1])
  y, x = max(y, 0.0), max(x, 0.0)
  y_lo, x_lo = int(y), int(x)
  if y_lo >= h - 1:
    y_lo = y_hi = h - 1
    y = float(y_lo)
  else:
    y_hi = y_lo + 1
  if x_lo >= w - 1:
    x_lo = x_hi = w - 1
    x = float(x_lo)
  else:
    x_hi = x_lo + 1
  ly, lx = y - y_lo, x - x_lo
  hy, hx = 1.0 - ly, 1.0 - lx
  return (hy * hx * fmap[y_lo, x_lo] + hy * lx * fmap[y_lo, x_hi] +
          ly * hx * fmap[y_hi, x_lo] + ly * lx * fmap[y_hi, x_hi])


def reference_roi_align(fmap, box, out_h, out_w, scale, sampling, aligned):
  """One box, loops over bins and points, as the reference CPU kernel."""
  off = 0.5 if aligned else 0.0
  x1, y1, x2, y2 = [v * scale - off for v in box]
  rw, rh = x2 - x1, y2 - y1
  if not aligned:
    rw, rh = max(rw, 1.0), max(rh, 1.0)
  bh, bw = rh / out_h, rw / out_w
  gh = sampling if sampling > 0 else math.ceil(rh / out_h)
  gw = sampling if sampling > 0 else math.ceil(rw / out_w)
  count = max(gh * gw, 1)
  out = np.zeros((out_h, out_w, fmap.shape[-1]))
  for ph in range(out_h):
    for pw in range(out_w):
      acc = np.zeros(fmap.shape[-1])
      for iy in range(max(gh, 0)):
        y = y1 + ph * bh + (iy + 0.5) * bh / gh
        for ix in range(max(gw, 0)):
          x = x1 + pw * bw + (ix + 0.5) * bw / gw
          acc += _bilinear(fmap, y, x)
      out[ph, pw] = acc / count
  return out


def _random_boxes(rng, n, h, w, scale):
  """Random boxes in input pixels, including border, outside, tiny ones."""
  hi = np.array([w, h, w, h]) / scale
  a = rng.uniform(-0.3, 1.2, (n, 2)) * hi[:2]
  size = rng.uniform(0.02, 0.9, (n, 2)) * hi[:2]
  boxes = np.concatenate([a, a + size], 1)
  special = np.array([
      [-3.0, -3.0, 2.0, 2.0],                       # partly outside, top-left
      [w - 1, h - 1, w + 2, h + 3],                 # the last pixel and beyond
      [w - 0.6, h - 0.6, w - 0.4, h - 0.4],         # tiny, on the last pixel
      [2.0, 2.0, 2.01, 2.02],                       # tiny inside
      [-10.0, -8.0, -5.0, -6.0],                    # wholly outside
      [0.0, 0.0, w, h],                             # the whole map
  ]) / scale
  return np.concatenate([boxes, special], 0)


@pytest.mark.parametrize("scale,sampling,aligned,out", [
    (1.0, 2, True, (3, 4)), (0.5, 1, True, (2, 2)), (0.25, 3, False, (3, 2)),
    (0.5, 0, True, (2, 3)), (1.0, 0, False, (4, 3))])
def test_matches_reference_rule(scale, sampling, aligned, out):
  rng = np.random.default_rng(7)
  h, w, c = 9, 11, 3
  fmap = rng.normal(size=(2, h, w, c))
  boxes = np.stack([_random_boxes(rng, 8, h, w, scale) for _ in range(2)])
  cap = 8 if sampling <= 0 else None
  got = jax.jit(lambda f, b: ra.roi_align(
      f, b, None, out, scale, sampling, aligned, adaptive_cap=cap))(
          jnp.asarray(fmap, jnp.float32), jnp.asarray(boxes, jnp.float32))
  want = np.stack([np.stack([reference_roi_align(
      fmap[i], box, *out, scale, sampling, aligned) for box in boxes[i]])
                   for i in range(2)])
  assert got.shape == (2, boxes.shape[1]) + out + (c,)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)
  # the border boxes really touch the border: some points read zero there
  assert np.abs(want).sum(axis=(2, 3, 4)).min() == 0.0   # wholly outside


def test_adaptive_cap_and_bad_arguments():
  f = jnp.ones((1, 8, 8, 1))
  box = jnp.array([[[0.0, 0.0, 8.0, 8.0]]])
  with pytest.raises(VidjaxError, match="adaptive_cap"):
    ra.roi_align(f, box, sampling_ratio=0)
  with pytest.raises(VidjaxError, match="output_size"):
    ra.roi_align(f, box, output_size=(2, 0))
  with pytest.raises(VidjaxError, match="output_size"):
    ra.roi_align(f, box, output_size=0)
  with pytest.raises(VidjaxError, match="output_size"):
    ra.roi_align_1d(f[:, 0], box[..., :2], output_size=0)
  with pytest.raises(VidjaxError, match=r"\[B, R, 4\]"):
    ra.roi_align(f, box[0])


def test_hand_values():
  # a constant map -> constant output for boxes inside [-1, H] x [-1, W]
  const = jnp.full((1, 5, 6, 2), 3.5)
  boxes = jnp.array([[[0.0, 0.0, 6.0, 5.0], [1.3, 0.2, 2.9, 4.4],
                      [5.5, 4.5, 6.0, 5.0]]])
  got = roi_align(const, boxes, output_size=2, sampling_ratio=2)
  np.testing.assert_allclose(got, 3.5, rtol=1e-6)
  # a ramp f(y, x) = 10 x + y, box well inside: bilinear is exact on a
  # linear map, so a bin is its points' mean = the ramp at the bin centre.
  yy, xx = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
  ramp = jnp.asarray((10 * xx + yy)[None, :, :, None], jnp.float32)
  box = jnp.array([[[1.5, 2.5, 5.5, 4.5]]])     # aligned: x in [1, 5], y [2, 4]
  got = roi_align(ramp, box, output_size=(2, 4), sampling_ratio=3)
  cy = 2.0 + (np.arange(2) + 0.5) * 1.0          # bin height 1
  cx = 1.0 + (np.arange(4) + 0.5) * 1.0          # bin width 1
  want = 10 * cx[None, :] + cy[:, None]
  np.testing.assert_allclose(got[0, 0, :, :, 0], want, rtol=1e-6)
  # a 2x2 map [[1, 2], [3, 4]], one point at (y, x) = (0.25, 0.5) (aligned
  # box [0.5, 0.5] + 0.5 ... [1.5, 1.0] + 0.5 = centre (0.25, 0.5)):
  # (1 - .25)(1 - .5) 1 + (1 - .25)(.5) 2 + .25 (.5) 3 + .25 (.5) 4 = 2.0
  m = jnp.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
  one = roi_align(m, jnp.array([[[0.5, 0.25, 1.5, 1.25]]]), output_size=1,
                     sampling_ratio=1)
  assert np.isclose(float(one[0, 0, 0, 0, 0]), 2.0)
  # beyond the last pixel (y in (H-1, H]) reads row H-1; past H reads zero
  edge = roi_align(m, jnp.array([[[1.5, 2.0, 1.5, 2.4]]]), output_size=1,
                      sampling_ratio=1)            # y = 1.7, x = 1.0
  assert np.isclose(float(edge[0, 0, 0, 0, 0]), 4.0)
  out = roi_align(m, jnp.array([[[1.5, 2.8, 1.5, 3.0]]]), output_size=1,
                     sampling_ratio=1)             # y = 2.4 > H = 2
  assert float(out[0, 0, 0, 0, 0]) == 0.0


def test_mask_zeroes_padding_and_its_gradient():
  rng = np.random.default_rng(0)
  f = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
  boxes = jnp.asarray(rng.uniform(0, 6, (2, 3, 4)), jnp.float32)
  boxes = jnp.concatenate([jnp.minimum(boxes[..., :2], boxes[..., 2:]),
                           jnp.maximum(boxes[..., :2], boxes[..., 2:])], -1)
  boxes = boxes.at[1, 2].set(jnp.nan)                  # garbage padding
  mask = jnp.array([[True, True, False], [True, False, False]])
  got = roi_align(f, boxes, mask, output_size=2)
  assert np.all(np.isfinite(got))
  np.testing.assert_array_equal(got[~np.asarray(mask)], 0.0)
  alone = roi_align(f[:1], boxes[:1, :2], output_size=2)
  np.testing.assert_allclose(got[0, :2], alone[0], rtol=1e-6)
  g = jax.jit(jax.grad(lambda x: roi_align(x, boxes, mask, 2)[1].sum()))(f)
  g_one = jax.jit(jax.grad(lambda x: roi_align(
      x[1:], boxes[1:, :1], None, 2).sum()))(f)
  np.testing.assert_allclose(g, g_one, rtol=1e-6)


def test_gradient_check():
  rng = np.random.default_rng(3)
  f = jnp.asarray(rng.normal(size=(1, 5, 7, 2)), jnp.float64 if
                  jax.config.jax_enable_x64 else jnp.float32)
  boxes = jnp.array([[[0.3, 0.7, 4.1, 3.9], [-1.0, 2.0, 7.5, 5.6]]])
  fn = jax.jit(lambda x: roi_align(x, boxes, output_size=(2, 3),
                                      sampling_ratio=2))
  jax.test_util.check_grads(fn, (f,), order=1, modes=("rev", "fwd"),
                            atol=1e-2, rtol=1e-2, eps=1e-2)
  # linear in the features: the VJP is the transposed weights, i.e.
  # d sum(out) / d f[y, x] = sum over bins of the point weights there.
  g = jax.grad(lambda x: fn(x).sum())(f)
  probe = np.zeros((1, 5, 7, 2), np.float32)
  fd = np.zeros_like(probe)
  base = float(fn(f).sum())
  for y in range(5):
    for x in range(7):
      probe[:] = 0
      probe[0, y, x, 0] = 1.0
      fd[0, y, x, 0] = float(fn(f + probe).sum()) - base
  np.testing.assert_allclose(g[..., 0], fd[..., 0], atol=2e-4)


def test_1d_matches_2d_on_a_row_and_reference():
  rng = np.random.default_rng(5)
  f = rng.normal(size=(2, 10, 3)).astype(np.float32)
  rois = rng.uniform(-2, 11, (2, 5, 2)).astype(np.float32)
  rois.sort(-1)
  got = roi_align_1d(jnp.asarray(f), jnp.asarray(rois), output_size=4,
                        spatial_scale=1.0, sampling_ratio=3)
  # a [1, L] map with boxes spanning its one row (y1 = 0, y2 = 1 in pixels)
  boxes = np.concatenate([rois[..., :1], np.zeros_like(rois[..., :1]),
                          rois[..., 1:], np.ones_like(rois[..., :1])], -1)
  two = roi_align(jnp.asarray(f)[:, None], jnp.asarray(boxes),
                     output_size=(1, 4), sampling_ratio=3)
  np.testing.assert_allclose(got, two[:, :, 0], atol=1e-6)
  # valid_length: the border rule uses each sequence's real length
  short = roi_align_1d(jnp.asarray(f), jnp.asarray(rois), output_size=4,
                          sampling_ratio=3, valid_length=jnp.array([6, 10]))
  want = np.stack([reference_roi_align(f[0, None, :6], b, 1, 4, 1.0, 3, True)
                   for b in boxes[0]])[:, 0]
  np.testing.assert_allclose(short[0], want, atol=1e-5)
  # adaptive sampling and the gradient (a gather here, an einsum in 2D)
  mask = jnp.array([[True] * 4 + [False], [True] * 5])
  loss1 = lambda x: (roi_align_1d(x, jnp.asarray(rois), mask, 4,
                                  sampling_ratio=0, adaptive_cap=6) ** 2).sum()
  loss2 = lambda x: (roi_align(x[:, None], jnp.asarray(boxes), mask, (1, 4),
                               sampling_ratio=0, adaptive_cap=6) ** 2).sum()
  v1, g1 = jax.jit(jax.value_and_grad(loss1))(jnp.asarray(f))
  v2, g2 = jax.jit(jax.value_and_grad(loss2))(jnp.asarray(f))
  np.testing.assert_allclose(v1, v2, rtol=1e-5)
  np.testing.assert_allclose(g1, g2, atol=1e-5)
  assert np.abs(g1).sum() > 0 and np.isfinite(v1)
  # an empty RoI in adaptive mode has no point: zeros, not NaN (0 / 0)
  empty = roi_align(jnp.ones((1, 4, 4, 1)), jnp.array([[[1.0, 1.0, 1.0, 3.0]]]),
                    None, 2, sampling_ratio=0, adaptive_cap=4)
  np.testing.assert_array_equal(empty, 0.0)


def test_optional_torchvision_parity():
  tv = pytest.importorskip("torchvision")
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(11)
  fmap = rng.normal(size=(2, 9, 11, 4)).astype(np.float32)
  boxes = np.stack([_random_boxes(rng, 6, 9, 11, 0.5) for _ in range(2)])
  boxes = boxes.astype(np.float32)
  for sampling, aligned in ((2, True), (0, True), (1, False)):
    got = ra.roi_align(jnp.asarray(fmap), jnp.asarray(boxes), None, (3, 3),
                       0.5, sampling, aligned, adaptive_cap=16)
    want = tv.ops.roi_align(
        torch.from_numpy(fmap).permute(0, 3, 1, 2),
        [torch.from_numpy(b) for b in boxes], (3, 3), 0.5, sampling, aligned)
    want = want.permute(0, 2, 3, 1).numpy().reshape(got.shape)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
