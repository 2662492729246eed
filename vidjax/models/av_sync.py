"""Early-fusion audio-visual network of Owens & Efros (ECCV 2018, "Audio-
Visual Scene Analysis with Self-Supervised Multisensory Features", Sec. 3.2
and Fig. 3), registered as `av_sync` (issue #22).

The paper's point is WHERE the streams meet: audio features are strided
down to the video's frame rate and fused with the video feature map early,
at matching times, so every later 3D convolution sees "what is heard now"
next to "what is seen now". Alignment is a local comparison in time, which
a network that only meets the streams after pooling (late fusion) or
through a few global tokens (MBT) must first learn to index.

Here, at toy scale (`synthetic_av`: 16 frames of 32^2, 2 s of 16 kHz audio):

* video [B, T, H, W, 3] (normalised): a 1x3x3 conv stem of width C/2 and
  stride 1x2x2, a 3x3x3 conv of stride `temporal_stride` x 2 x 2 and a 1x3x3
  conv of stride 1x2x2 -> [B, T', H/8, W/8, C], T' = T / temporal_stride
  (the fused part runs at 4 x 4: a CPU budget);
* audio [B, frames, mels] (the normalised log-mel of the task's front end;
  the paper takes the raw waveform into 1D convs): a 1D conv over time
  (kernel 5, the mels as channels), then a strided conv of kernel = stride
  = frames // T' (the audio "strided to the video rate": one feature per
  video step, keeping where in its window an onset falls) -> [B, T', C];
  leftover trailing frames (201 = 8 x 25 + 1) are dropped;
* fusion: the audio feature of step t is tiled over the H/8 x W/8 map of
  step t and concatenated on channels (the paper's fusion), then
  `fused_blocks` residual 3x3x3 conv blocks of width 2C, global average
  pooling and a linear head.

The 3D convolutions are vidjax.layers.conv3d's (zero padding (k-1)/2, run
as 2D convolutions on a CPU). GroupNorm (no running statistics) after
every video and fused conv and once on the audio path, after the strided
conv: there it normalises the clip's 8 step features together, so a step
keeps its loudness relative to the clip (per-step LayerNorm erased it:
sync stayed at chance; no norm: 0.88 where this reaches 0.96 at 1000
steps). Before it, a step's feature depends on its own window alone. (No
running statistics: the audio-visual task's state has no batch_stats.)
`AVSync(video, audio)` -> logits
[B, num_classes]: 2 for synchronisation (aligned / shifted) or the
dataset's classes.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.conv3d import conv3d
from vidjax.models.vivit import compute_dtype
from vidjax.registry import register_model


def _norm_act(x, name: str):
  groups = min(8, x.shape[-1])
  x = nn.GroupNorm(num_groups=groups, dtype=x.dtype, name=name)(x)
  return nn.relu(x)


@register_model("av_sync")
class AVSync(nn.Module):
  """Owens & Efros' early fusion (module docstring)."""
  num_classes: int
  width: int = 32
  temporal_stride: int = 2
  fused_blocks: int = 2
  dtype: str = "float32"

  def check_options(self):
    if self.width < 8 or self.temporal_stride < 1 or self.fused_blocks < 0:
      raise VidjaxError(f"config.model: av_sync needs width >= 8 (got "
                        f"{self.width}), temporal_stride >= 1 (got "
                        f"{self.temporal_stride}) and fused_blocks >= 0 "
                        f"(got {self.fused_blocks})")

  @nn.compact
  def __call__(self, video, audio, *, train: bool = False):
    self.check_options()
    dtype = compute_dtype(self.dtype)
    c = self.width
    steps = video.shape[1] // self.temporal_stride
    window = audio.shape[1] // max(steps, 1)
    if steps < 1 or window < 1:
      raise VidjaxError(f"config.model.temporal_stride="
                        f"{self.temporal_stride}: {video.shape[1]} frames "
                        f"and {audio.shape[1]} audio frames give no video "
                        "step with audio")
    v = conv3d(video.astype(dtype), c // 2, (1, 3, 3), (1, 2, 2),
               name="video_stem", use_bias=True, dtype=dtype)
    v = _norm_act(v, "video_stem_norm")
    v = conv3d(v, c, (3, 3, 3), (self.temporal_stride, 2, 2),
               name="video_conv", use_bias=True, dtype=dtype)
    v = _norm_act(v, "video_conv_norm")
    v = conv3d(v, c, (1, 3, 3), (1, 2, 2), name="video_conv_2",
               use_bias=True, dtype=dtype)
    v = _norm_act(v, "video_conv_2_norm")[:, :steps]
    a = nn.Conv(c, (5,), padding="SAME", dtype=dtype,
                name="audio_conv")(audio.astype(dtype))
    a = nn.relu(a)
    a = nn.Conv(c, (window,), (window,), padding="VALID", dtype=dtype,
                name="audio_to_video_rate")(a[:, :steps * window])
    self.sow("intermediates", "audio_steps", a)          # [B, steps, C]
    a = _norm_act(a, "audio_rate_norm")   # over the clip: loudness relative
    tiled = jnp.broadcast_to(a[:, :, None, None, :],
                             v.shape[:-1] + (a.shape[-1],))
    x = jnp.concatenate([v, tiled], axis=-1)            # early fusion
    self.sow("intermediates", "fused", x)
    for i in range(self.fused_blocks):
      y = conv3d(x, 2 * c, (3, 3, 3), name=f"fused_{i}_a", use_bias=True,
                 dtype=dtype)
      y = _norm_act(y, f"fused_{i}_a_norm")
      y = conv3d(y, 2 * c, (3, 3, 3), name=f"fused_{i}_b", use_bias=True,
                 dtype=dtype)
      y = nn.GroupNorm(num_groups=8, dtype=dtype, name=f"fused_{i}_b_norm")(y)
      x = nn.relu(x + y)
    pooled = x.mean(axis=(1, 2, 3)).astype(jnp.float32)
    return nn.Dense(self.num_classes, name="head")(pooled)
