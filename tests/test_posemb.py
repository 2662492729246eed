"""Position embeddings: sinusoidal tables and resizing of learned ones."""
import math

import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.layers import posemb


def _reference_table(num_positions, dim):
  """Vaswani et al. 2017 / VideoMAE, written out one entry at a time."""
  table = np.zeros((num_positions, dim))
  for pos in range(num_positions):
    for j in range(dim):
      angle = pos / 10000 ** (2 * (j // 2) / dim)
      table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
  return table


@pytest.mark.parametrize("num_positions,dim", [(1, 2), (7, 6), (50, 64),
                                               (9, 33)])
def test_sinusoidal_1d_matches_independent_formula(num_positions, dim):
  table = posemb.sinusoidal_1d(num_positions, dim)
  assert table.shape == (num_positions, dim) and table.dtype == np.float32
  np.testing.assert_allclose(table, _reference_table(num_positions, dim),
                             atol=1e-6, rtol=0)
  # Interleaved layout: column 1 is cos(pos), column 0 sin(pos).
  if dim >= 2:
    np.testing.assert_allclose(table[:, 1], np.cos(np.arange(num_positions)),
                               atol=1e-6)


def test_sinusoidal_3d_is_separable_with_documented_split():
  grid, dim = (3, 4, 5), 20
  d_t, d_h, d_w = posemb.sinusoidal_3d_split(dim)
  assert (d_t, d_h, d_w) == (8, 6, 6) and posemb.sinusoidal_3d_split(768) == (
      256, 256, 256)
  table = posemb.sinusoidal_3d(grid, dim).reshape(grid + (dim,))
  t, h, w = 2, 1, 3
  np.testing.assert_allclose(table[t, h, w, :d_t],
                             _reference_table(3, d_t)[t], atol=1e-6)
  np.testing.assert_allclose(table[t, h, w, d_t:d_t + d_h],
                             _reference_table(4, d_h)[h], atol=1e-6)
  np.testing.assert_allclose(table[t, h, w, d_t + d_h:],
                             _reference_table(5, d_w)[w], atol=1e-6)
  assert len({table[i, j, k].tobytes() for i in range(3) for j in range(4)
              for k in range(5)}) == 60  # every token distinct


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
@pytest.mark.parametrize("cls", [0, 1])
def test_resize_to_the_same_grid_is_identity(method, cls):
  rng = np.random.default_rng(0)
  pos = rng.normal(size=(1, cls + 2 * 3 * 4, 8)).astype(np.float32)
  out = posemb.resize_posemb(pos, (2, 3, 4), (2, 3, 4), src_cls=cls,
                             dst_cls=cls, method=method)
  np.testing.assert_array_equal(out, pos)


def _ramp(grid, coeffs):
  """Embedding whose channel d is a linear function of (t, h, w) in [0, 1]."""
  steps, rows, cols = grid
  t, h, w = np.meshgrid(np.linspace(0, 1, steps) if steps > 1 else [0.0],
                        np.linspace(0, 1, rows), np.linspace(0, 1, cols),
                        indexing="ij")
  out = coeffs[:, 0] + t[..., None] * coeffs[:, 1] + h[..., None] * coeffs[
      :, 2] + w[..., None] * coeffs[:, 3]
  return out.reshape(-1, coeffs.shape[0])


def test_bilinear_resize_reproduces_linear_functions_exactly():
  coeffs = np.random.default_rng(1).normal(size=(5, 4))
  src, dst = (3, 4, 4), (5, 7, 3)
  cls = np.full((1, 5), 9.0)
  pos = np.concatenate([cls, _ramp(src, coeffs)])[None]
  out = posemb.resize_posemb(pos, src, dst, src_cls=1, dst_cls=1)
  assert out.shape == (1, 1 + 5 * 7 * 3, 5)
  np.testing.assert_allclose(out[0, 0], cls[0])
  np.testing.assert_allclose(out[0, 1:], _ramp(dst, coeffs), atol=1e-5)
  # Bicubic is exact on a linear ramp too away from the borders it clamps,
  # but not at them: the two methods differ.
  cubic = posemb.resize_posemb(pos, src, dst, src_cls=1, dst_cls=1,
                               method="bicubic")
  assert np.abs(cubic - out).max() > 1e-3


def test_image_embedding_is_tiled_over_time_and_cls_handling():
  rng = np.random.default_rng(2)
  pos = rng.normal(size=(1, 1 + 9, 4))
  out = posemb.resize_posemb(pos, (3, 3), (4, 3, 3), src_cls=1, dst_cls=0)
  assert out.shape == (1, 36, 4)
  for t in range(4):
    np.testing.assert_allclose(out[0, 9 * t:9 * (t + 1)], pos[0, 1:],
                               atol=1e-6)
  zero_cls = posemb.resize_posemb(pos[:, 1:], (3, 3), (3, 3), src_cls=0,
                                  dst_cls=1)
  np.testing.assert_array_equal(zero_cls[0, 0], np.zeros(4))
  tiled = posemb.resize_posemb(out, (4, 3, 3), (8, 3, 3), src_cls=0,
                               dst_cls=0, temporal="tile")
  np.testing.assert_allclose(tiled[0, :36], tiled[0, 36:])


def test_resize_rejects_a_shape_that_does_not_fit_the_grid():
  with pytest.raises(VidjaxError, match="pos_embedding"):
    posemb.resize_posemb(np.zeros((1, 10, 4)), (1, 3, 3), (1, 4, 4),
                         src_cls=0, dst_cls=0)
  with pytest.raises(VidjaxError, match="square"):
    posemb.square_grid(10)
