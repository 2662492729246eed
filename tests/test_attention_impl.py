"""attention_impl=auto|einsum|cudnn|splash: the platform choice and the kernels
that can be checked on CPU (issue #16)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.layers import attention
from vidjax.layers.attention import resolve_impl
from vidjax.models.vivit import ViViTSpatioTemporal

# Tiny models run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 16 -> 11 CPU-s), same tolerances.
pytestmark = pytest.mark.fast_compile

BF16, F32 = jnp.bfloat16, jnp.float32


@pytest.mark.parametrize("platform, dtype, head_dim, expected", [
    ("cpu", BF16, 64, "einsum"),
    ("cpu", F32, 64, "einsum"),
    ("gpu", BF16, 64, "cudnn"),
    ("cuda", jnp.float16, 256, "cudnn"),
    ("gpu", F32, 64, "einsum"),        # cuDNN needs bf16/fp16
    ("gpu", BF16, 60, "einsum"),       # not a multiple of 8
    ("gpu", BF16, 264, "einsum"),      # > 256
    ("rocm", BF16, 64, "einsum"),      # no cuDNN on ROCm
    ("tpu", F32, 64, "splash"),
    ("tpu", BF16, 80, "splash"),
])
def test_auto_resolves_by_platform(platform, dtype, head_dim, expected):
  assert resolve_impl("auto", platform, dtype, head_dim) == expected


def test_explicit_choices_and_one_line_errors():
  assert resolve_impl("einsum", "tpu", F32, 64) == "einsum"
  assert resolve_impl("cudnn", "gpu", BF16, 128) == "cudnn"
  assert resolve_impl("splash", "tpu", BF16, 64) == "splash"
  for args, words in [(("cudnn", "gpu", F32, 64), "bfloat16"),
                      (("cudnn", "gpu", BF16, 72 + 1), "multiple of 8"),
                      (("cudnn", "cpu", BF16, 64), "CUDA GPU"),
                      (("splash", "gpu", BF16, 64), "TPU"),
                      (("flash", "gpu", BF16, 64), "expected one of")]:
    with pytest.raises(VidjaxError, match=words) as e:
      resolve_impl(*args)
    assert "config.model.attention_impl" in str(e.value)
    assert "\n" not in str(e.value)


def test_auto_is_einsum_on_cpu_bit_identical():
  assert jax.default_backend() == "cpu"
  kw = dict(num_classes=5, patch_size=(2, 8, 8), hidden_size=32, num_heads=4,
            mlp_dim=64, num_layers=2)
  x = jax.random.normal(jax.random.key(0), (2, 4, 16, 16, 3))
  auto = ViViTSpatioTemporal(attention_impl="auto", **kw)
  einsum = ViViTSpatioTemporal(attention_impl="einsum", **kw)
  variables = auto.init(jax.random.key(1), x)
  out_auto = jax.jit(auto.apply)(variables, x)
  out_einsum = jax.jit(einsum.apply)(variables, x)
  np.testing.assert_array_equal(np.asarray(out_auto), np.asarray(out_einsum))
  # Same program, not just the same numbers.
  hlo = lambda m: jax.jit(m.apply).lower(variables, x).as_text()
  assert hlo(auto) == hlo(einsum)


def test_splash_padding_masks_the_pad():
  padded, seg = attention.splash_padding(197, 128)
  assert padded == 256 and seg.shape == (256,)
  assert seg[:197].sum() == 0 and (seg[197:] == 1).all()
  padded, seg = attention.splash_padding(256, 128)
  assert padded == 256 and seg.sum() == 0  # no pad when N fits the blocks


def _qkv(n, heads=2, head_dim=64, lead=(2,)):
  keys = jax.random.split(jax.random.key(3), 3)
  return [jax.random.normal(k, lead + (n, heads, head_dim), F32) for k in keys]


def test_splash_matches_einsum_in_interpret_mode():
  # N = 200 pads to 256: two 128-blocks, the second partly pad.
  q, k, v = _qkv(200)
  want = attention.einsum_attention(q, k, v)
  got = jax.jit(lambda q, k, v: attention.splash_attention(
      q, k, v, interpret=True))(q, k, v)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), np.asarray(want),
                             rtol=2e-5, atol=2e-5)


def test_xla_fused_matches_einsum():
  q, k, v = _qkv(50, lead=(2, 3))
  np.testing.assert_allclose(
      np.asarray(attention.attend(q, k, v, "xla_fused")),
      np.asarray(attention.einsum_attention(q, k, v)), rtol=1e-5, atol=1e-5)
