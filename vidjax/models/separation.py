"""Visually guided source separation: a mix-and-separate spectrogram U-Net
conditioned on one object's visual features.

Zhao et al., ECCV 2018, "The Sound of Pixels" (SoP): the log-magnitude
spectrogram of a mixture, warped to log-spaced frequencies, goes through a
U-Net (Ronneberger et al. 2015) that predicts a mask of the mixture per
visual source; the estimate is the masked mixture magnitude with the
mixture's phase, inverted by an iSTFT. Their `unet7`: 7 down levels of
4x4 stride-2 convolutions (LeakyReLU 0.2, BatchNorm, widths 64..512) and 7
up levels (ReLU, x2 bilinear upsampling, 3x3 conv, BatchNorm) with skip
concatenations. Gao & Grauman, ICCV 2019, "Co-Separating Sounds of Visual
Objects": the condition is a detected *object*, not a whole frame, and it
enters at the U-Net's bottleneck; VisualVoice (Gao & Grauman, CVPR 2021)
also concatenates its visual vector at the bottleneck.

Here (`separation_unet`):

* Audio: STFT of the mixture (vidjax/audio/frontend.py, `stft_config`),
  magnitude, warped to `freq_bins` log-spaced bins (SoP's `warpgrid`:
  positions logspace(0, log10(F - 1)) in linear-bin units, linear
  interpolation; `log_freq=False`: linear bins resampled), log(mag + 1e-4)
  with an input BatchNorm. Frames are padded to a multiple of 2^levels and
  the output cropped back.
* Vision (the object's embedding): `visual_frames` frames evenly spaced in
  the clip through a small 2D ResNet (vidjax/models/single_frame.py's
  `resnet2d_features`), then RoIAlign (vidjax/layers/roi_align.py) of the
  object's box in each frame on the stride-2 feature map, spatial max,
  temporal mean, a Dense layer. RoIAlign rather than box crops through a
  second CNN: one backbone pass per clip serves every object of the clip,
  on device, with the box's exact (sub-pixel) extent, and the crop is
  differentiable; the box crop of Co-Separation costs one CNN pass per
  object and a host-side resize.
* Conditioning at the bottleneck (`conditioning`): "film" (Perez et al.,
  AAAI 2018: features x (1 + gamma(v)) + beta(v)) or "concat" (v tiled over
  the bottleneck, concatenated, 1x1 conv: VisualVoice). The encoder runs
  once per mixture; the decoder once per (mixture, object).
* Mask (`mask`): "ratio" (sigmoid; target |S_k| / |X| clipped to [0, 1])
  or "binary" (SoP's default: target |S_k| > 0.5 |X|; the unwarped
  sigmoid thresholded at 0.5 at test). Predicted on the warped grid, mapped back to the linear STFT
  grid by the inverse interpolation (`unwarp_matrix`).

`separate` is the whole inference path: waveform in, one waveform per
object out (mask x mixture STFT, i.e. masked magnitude with the mixture's
phase, then `frontend.istft`).
"""
from __future__ import annotations

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vidjax.audio import frontend
from vidjax.errors import VidjaxError
from vidjax.layers.roi_align import roi_align
from vidjax.models.single_frame import resnet2d_features
from vidjax.registry import register_model

MASKS = ("ratio", "binary")
CONDITIONINGS = ("film", "concat")
LOG_EPS = 1e-4


def stft_config(model) -> frontend.LogMelConfig:
  """The model's STFT as a front-end config (magnitude, librosa framing)."""
  return frontend.LogMelConfig(
      name="separation", sample_rate=int(model.sample_rate),
      n_fft=int(model.n_fft), win_length=int(model.win_length),
      hop_length=int(model.hop_length), pad_mode=model.pad_mode, power=1.0)


def _tent(positions: np.ndarray, size: int) -> np.ndarray:
  """[len(positions), size] linear-interpolation weights at fractional
  indices (clamped to [0, size - 1])."""
  p = np.clip(np.asarray(positions, np.float64), 0, size - 1)
  return np.maximum(0.0, 1.0 - np.abs(p[:, None] - np.arange(size)[None]))


def warp_positions(n_freqs: int, freq_bins: int, log_freq: bool):
  """Linear-bin index of each warped bin (SoP warpgrid: log-spaced from 1)."""
  if log_freq:
    return np.logspace(0.0, np.log10(n_freqs - 1), freq_bins)
  return np.linspace(0.0, n_freqs - 1, freq_bins)


def warp_matrix(n_freqs: int, freq_bins: int, log_freq: bool = True):
  """[n_freqs, freq_bins]: mag_warped = mag @ W."""
  return _tent(warp_positions(n_freqs, freq_bins, log_freq), n_freqs).T


def unwarp_matrix(n_freqs: int, freq_bins: int, log_freq: bool = True):
  """[freq_bins, n_freqs]: a warped-grid mask -> the linear STFT grid (each
  linear bin reads the warped grid at its own fractional position)."""
  pos = warp_positions(n_freqs, freq_bins, log_freq)
  where = np.interp(np.arange(n_freqs), pos, np.arange(freq_bins))
  return _tent(where, freq_bins).T


def spectra(model, waves):
  """waveforms [..., N] -> (complex STFT [..., T, F], warped magnitude
  [..., T, freq_bins]) in float32, jnp."""
  c = stft_config(model)
  x = frontend.stft(jnp.asarray(waves, jnp.float32), c)
  w = jnp.asarray(warp_matrix(c.n_freqs, model.freq_bins, model.log_freq),
                  jnp.float32)
  return x, jnp.abs(x) @ w


def mask_targets(model, mix_warped, stems_warped):
  """(targets [..., M, T, F'], weights [..., T, F']): SoP's ground-truth
  masks and loss weights clamp(log1p(|X|), 1e-3, 10)."""
  mix = mix_warped[..., None, :, :]
  if model.mask == "binary":
    target = (stems_warped > 0.5 * mix).astype(jnp.float32)
  else:
    target = jnp.clip(stems_warped / jnp.maximum(mix, 1e-8), 0.0, 1.0)
  return target, jnp.clip(jnp.log1p(mix_warped), 1e-3, 10.0)


def masks_from_logits(model, logits):
  """Mask logits on the warped grid [..., T, F'] -> masks on the linear
  STFT grid [..., T, F] (sigmoid, unwarped; binary masks then thresholded
  at 0.5, as SoP's evaluation thresholds the unwarped mask)."""
  n_freqs = model.n_fft // 2 + 1
  u = jnp.asarray(unwarp_matrix(n_freqs, model.freq_bins, model.log_freq),
                  jnp.float32)
  m = jax.nn.sigmoid(logits.astype(jnp.float32)) @ u
  if model.mask == "binary":  # thresholded on the linear grid, as SoP
    m = (m > 0.5).astype(jnp.float32)
  return m


def apply_masks(model, mix_stft, masks, length: int):
  """Masks [B, M, T, F] x mixture STFT [B, T, F] (the masked magnitude with
  the mixture's phase) -> waveforms [B, M, length] by the iSTFT."""
  return frontend.istft(masks * mix_stft[:, None], stft_config(model),
                        length=length)


def separate(model, variables, mixture, video, boxes):
  """The inference path: mixture [B, N], normalised video [B, T, H, W, 3],
  boxes [B, M, T, 4] -> estimates [B, M, N] float32."""
  x, warped = spectra(model, mixture)
  logits = model.apply(variables, jnp.log(warped + LOG_EPS), video, boxes,
                       train=False)
  return apply_masks(model, x, masks_from_logits(model, logits),
                     mixture.shape[-1])


def _act_conv(x, features, kernel, stride, name, dtype, act):
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding="SAME", dtype=dtype, name=name)(act(x))


@register_model("separation_unet")
class SeparationUNet(nn.Module):
  """(log warped mixture magnitude [B, T, F'], video [B, Tv, H, W, 3],
  boxes [B, M, Tv, 4] normalised x1 y1 x2 y2) -> mask logits
  [B, M, T, F'] float32 (module docstring).

  Attributes:
    num_classes: unused (the registry's interface); a mask per object.
    sample_rate, n_fft, win_length, hop_length, pad_mode: the STFT
      (recorded with the model; `stft_config`).
    freq_bins: warped frequency bins the U-Net sees; log_freq: SoP's warp.
    widths: channels of the down levels (len = levels; SoP: 7 levels,
      64, 128, 256, 512, 512, 512, 512).
    mask: "ratio" | "binary".
    conditioning: "film" | "concat", at the bottleneck.
    visual_widths: the frame CNN's stage widths (stride 2 per later stage);
    visual_stem_stride: its stem's stride; visual_frames: frames of the
    clip it sees (evenly spaced); roi_size: RoIAlign bins per side.
    dtype: compute dtype name; params stay float32.
  """
  num_classes: int = 0
  sample_rate: int = 16000
  n_fft: int = 512
  win_length: int = 400
  hop_length: int = 160
  pad_mode: str = "reflect"
  freq_bins: int = 64
  log_freq: bool = True
  widths: Tuple[int, ...] = (16, 32, 64, 128)
  mask: str = "ratio"
  conditioning: str = "film"
  visual_widths: Tuple[int, ...] = (16, 32)
  visual_frames: int = 4
  visual_stem_stride: int = 1
  roi_size: int = 2
  dtype: str = "float32"

  def check(self):
    if self.mask not in MASKS:
      raise VidjaxError(f"config.model.mask={self.mask!r}: one of {MASKS}")
    if self.conditioning not in CONDITIONINGS:
      raise VidjaxError(f"config.model.conditioning={self.conditioning!r}: "
                        f"one of {CONDITIONINGS}")
    if not self.widths:
      raise VidjaxError("config.model.widths: at least one U-Net level")
    if self.freq_bins % (2 ** len(self.widths)):
      raise VidjaxError(f"config.model.freq_bins={self.freq_bins}: must be "
                        f"a multiple of 2^levels = {2 ** len(self.widths)}")
    stft_config(self)  # one-line errors of the STFT fields (audio.<key>)

  def visual(self, video, boxes, train: bool):
    """[B, Tv, H, W, 3], [B, M, Tv, 4] -> object embeddings [B, M, D]."""
    b, t, h, w, _ = video.shape
    m = boxes.shape[1]
    idx = np.linspace(0, t - 1, min(self.visual_frames, t)).round().astype(
        int)
    frames = video[:, idx].reshape((b * len(idx), h, w, 3))
    fmap = resnet2d_features(frames, widths=self.visual_widths,
                             blocks_per_stage=1,
                             stem_stride=self.visual_stem_stride, train=train,
                             dtype=jnp.dtype(self.dtype))
    scale = fmap.shape[2] / w
    pix = boxes[:, :, idx] * jnp.asarray([w, h, w, h], jnp.float32)
    pix = jnp.moveaxis(pix, 1, 2).reshape((b * len(idx), m, 4))
    rois = roi_align(fmap.astype(jnp.float32), pix, None, self.roi_size,
                     spatial_scale=scale, sampling_ratio=2)
    v = rois.max(axis=(2, 3)).reshape((b, len(idx), m, -1)).mean(axis=1)
    return nn.Dense(self.widths[-1], name="visual_fc")(v)   # [B, M, D]

  @nn.compact
  def __call__(self, log_mag, video, boxes, *, train: bool = False):
    self.check()
    dtype = jnp.dtype(self.dtype)
    b, t, f = log_mag.shape
    m = boxes.shape[1]
    levels = len(self.widths)
    pad = (-t) % (2 ** levels)
    x = jnp.pad(log_mag, ((0, 0), (0, pad), (0, 0)), mode="edge")[..., None]
    bn = lambda name: nn.BatchNorm(  # noqa: E731
        use_running_average=not train, momentum=0.9, dtype=dtype, name=name)
    x = bn("input_bn")(x.astype(dtype))
    leaky = lambda y: nn.leaky_relu(y, 0.2)  # noqa: E731
    skips = []
    for i, width in enumerate(self.widths):  # encoder: once per mixture
      x = _act_conv(x, width, 4, 2, f"down{i}", dtype,
                    (lambda y: y) if i == 0 else leaky)
      if 0 < i < levels - 1:
        x = bn(f"down{i}_bn")(x)
      skips.append(x)
    v = self.visual(video, boxes, train).astype(dtype)        # [B, M, D]
    x = jnp.repeat(nn.relu(x), m, axis=0)                     # [B*M, ...]
    v = v.reshape((b * m, 1, 1, -1))
    if self.conditioning == "film":
      gamma, beta = jnp.split(nn.Dense(2 * x.shape[-1], dtype=dtype,
                                       name="film")(v), 2, axis=-1)
      x = x * (1.0 + gamma) + beta
    else:
      x = jnp.concatenate([x, jnp.broadcast_to(v, x.shape[:-1] + v.shape[-1:])],
                          -1)
      x = nn.Conv(self.widths[-1], (1, 1), dtype=dtype, name="concat")(x)
    for i in reversed(range(levels)):  # decoder: once per (mixture, object)
      if i < levels - 1:
        x = jnp.concatenate([x, jnp.repeat(skips[i], m, axis=0)], -1)
      x = nn.relu(x)
      x = jax.image.resize(x, (x.shape[0], 2 * x.shape[1], 2 * x.shape[2],
                               x.shape[3]), "bilinear")
      out = 1 if i == 0 else self.widths[i - 1]
      x = nn.Conv(out, (3, 3), padding="SAME", dtype=dtype,
                  name=f"up{i}")(x)
      if i > 0:
        x = bn(f"up{i}_bn")(x)
    logits = x[:, :t, :, 0].astype(jnp.float32)
    return logits.reshape((b, m, t, f))
