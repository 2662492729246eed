"""RoIAlign speed (issue #21): `python -m tools.benchmark_roi_align`.

2D RoIAlign at AVA head sizes (SlowFast R50: 224 crop, stride 16 -> 14x14,
channels 2048 + 256), 8 clips x 8 padded boxes, 7x7 bins, sampling 2 and
adaptive (cap 4); jit forward and forward + backward (w.r.t. features), CPU,
min of 5 rounds x 10 calls."""
import time

from vidjax import cli  # noqa: F401  (puts the project root on sys.path)
import jax, jax.numpy as jnp, numpy as np
from vidjax.layers.roi_align import roi_align
B, H, W, C, R = 8, 14, 14, 2304, 8
rng = np.random.default_rng(0)
f = jnp.asarray(rng.normal(size=(B, H, W, C)), jnp.float32)
xy = rng.uniform(0, 150, (B, R, 2)); wh = rng.uniform(30, 120, (B, R, 2))
boxes = jnp.asarray(np.concatenate([xy, xy + wh], -1), jnp.float32)
mask = jnp.asarray(rng.uniform(size=(B, R)) < 0.7)
for sr, cap in ((2, None), (0, 4)):
  fwd = jax.jit(lambda x, b, m: roi_align(x, b, m, 7, 1 / 16, sr, True, cap))
  bwd = jax.jit(jax.grad(lambda x, b, m: (roi_align(x, b, m, 7, 1 / 16, sr, True, cap) ** 2).sum()))
  for name, fn in (("forward", fwd), ("forward+backward", bwd)):
    jax.block_until_ready(fn(f, boxes, mask))
    best = 1e9
    for _ in range(5):
      t = time.perf_counter()
      for _ in range(10): o = fn(f, boxes, mask)
      jax.block_until_ready(o); best = min(best, (time.perf_counter() - t) / 10 * 1e3)
    print(f"sampling_ratio={sr} cap={cap}: {name} {best:.2f} ms")
