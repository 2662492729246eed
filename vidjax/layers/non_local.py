"""Space-time non-local block (Wang, Girshick, Gupta & He, CVPR 2018,
"Non-local Neural Networks", Sec. 3.2-3.3 and Fig. 2).

For (B, T, H, W, C) features x, with every space-time position i:

    y_i = sum_j f(x_i, x_j) g(x_j) / C(x),     z_i = BN(W_z y_i) + x_i

theta, phi, g and W_z are 1x1x1 convolutions (here `nn.Dense` on the channel
axis, the same thing), theta/phi/g to an inner width of C / 2 (the paper's
bottleneck) and W_z back to C. Pairwise functions (Sec. 3.2):
* "embedded_gaussian": f = exp(theta_i . phi_j), C(x) = sum_j f, i.e. a
  softmax over j (attention weights of each i sum to 1). `scale_logits`
  divides theta . phi by sqrt(C / 2) first, as the authors' released code
  does (the paper's equation has no scale).
* "dot_product": f = theta_i . phi_j, C(x) = N, the number of positions j.
`sub_sample` (Sec. 3.3, "subsampling"): 1x2x2 max pooling of x before phi
and g, so j runs over a quarter of the positions (pairwise cost / 4).
W_z is followed by BatchNorm whose scale starts at zero, so the block starts
as the identity and can be inserted into a pre-trained network (Sec. 3.3).
The convolutions start from N(0, 0.01^2) and have biases, as the released
code. The attention weights are sown as ("intermediates", "attention").
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import batch_norm

NONLOCAL_MODES = ("embedded_gaussian", "dot_product")


def check_nonlocal_mode(value: str):
  if value not in NONLOCAL_MODES:
    raise VidjaxError(f"config.model.nonlocal_mode={value!r}; expected one "
                      f"of {NONLOCAL_MODES}")


class NonLocalBlock(nn.Module):
  """(B, T, H, W, C) -> same shape; the identity at initialisation."""
  inner_features: Optional[int] = None   # default C // 2
  mode: str = "embedded_gaussian"
  sub_sample: bool = True
  scale_logits: bool = True
  bn_scale_init: nn.initializers.Initializer = nn.initializers.zeros
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    check_nonlocal_mode(self.mode)
    b, t, h, w, c = x.shape
    inner = self.inner_features or c // 2
    dense = lambda feats, name: nn.Dense(  # noqa: E731
        feats, dtype=self.dtype, name=name,
        kernel_init=nn.initializers.normal(0.01))
    theta = dense(inner, "theta")(x).reshape(b, t * h * w, inner)
    pooled = x
    if self.sub_sample and h > 1 and w > 1:
      pooled = nn.max_pool(x, (1, 2, 2), strides=(1, 2, 2))
    phi = dense(inner, "phi")(pooled).reshape(b, -1, inner)
    g = dense(inner, "g")(pooled).reshape(b, -1, inner)
    logits = jnp.einsum("bic,bjc->bij", theta, phi).astype(jnp.float32)
    if self.mode == "embedded_gaussian":
      if self.scale_logits:
        logits = logits * inner ** -0.5
      attention = jax.nn.softmax(logits, axis=-1)
    else:
      attention = logits / logits.shape[-1]
    self.sow("intermediates", "attention", attention)
    y = jnp.einsum("bij,bjc->bic", attention.astype(g.dtype), g)
    z = dense(c, "out")(y.reshape(b, t, h, w, inner))
    z = batch_norm(train, "bn", self.dtype, self.bn_scale_init)(z)
    return x + z
