"""Audio and audio-visual transformers: AST and MBT (issue #22).

* `ast` (`AST`): the Audio Spectrogram Transformer (Gong et al., "AST: Audio
  Spectrogram Transformer", Interspeech 2021): a ViT over 16x16 patches of a
  log-mel spectrogram [B, frames, mels], optionally overlapping (AST's
  `fstride = tstride = 10`: `audio_patch_stride=(10, 10)`), a CLS token,
  learned position embeddings -- one per (time, frequency) patch
  (`audio_posemb="learned"`, AST's) or a time embedding plus a frequency
  embedding (`"separable"`) -- and the vidjax `Encoder`.
  The front end it expects (a `vidjax.audio.frontend.LogMelConfig`) is
  `config.audio_frontend` of its run (configs/ast.py), recorded in
  config.json and the checkpoint's meta.
* `mbt` (`MBT`): Multimodal Bottleneck Transformer (Nagrani et al.,
  "Attention Bottlenecks for Multimodal Fusion", NeurIPS 2021). A video
  stream (ViViT tubelets, `TubeletEmbedding`) and an audio stream (AST
  patches), each with its own CLS token, position embeddings and blocks
  (`video_block_i`, `audio_block_i`: vidjax's `EncoderBlock`). Layers below
  `fusion_layer` see their own modality only. From `fusion_layer` on,
  `fusion` picks how the streams meet:
  - "bottleneck" (MBT, Sec. 3.2, eq. 8-9): each modality's block runs on
    [own tokens, `num_bottlenecks` shared tokens]; the new bottleneck is the
    mean of the two blocks' bottleneck outputs;
  - "early" (the paper's "vanilla cross-attention", Sec. 3.2 "fusion via
    vanilla self-attention" applied from `fusion_layer`): each modality's
    block runs on the concatenation of both streams' tokens and keeps its
    own slice (scenic's MBT without bottlenecks, separate weights);
  - "late": no exchange in any layer (the paper's late fusion: two
    independent streams whose logits are averaged);
  - "video_only" / "audio_only": one stream.
  A shared final LayerNorm and linear head; `classifier="token"` averages
  the head's logits over the modalities' CLS tokens (the paper's and
  scenic's `token` classifier), "gap" mean-pools every token of both
  streams. `zero_bottlenecks=True` (an evaluation option) feeds zeros as
  the bottleneck at every fusion layer: no information crosses. Each
  stream's final tokens are sown as ("intermediates", "<video|audio>_output").

  `MBT(video, audio)`: video [B, T, H, W, 3] (normalised), audio [B, frames,
  mels] (normalised log-mel) -> logits [B, num_classes].

  Both models draw their learned position embeddings from a normal of std
  `posemb_init_std` (ViT's 0.02 by default). On the toy `synthetic_av`
  (configs/mbt.py:looks, 600 steps) a from-scratch video stream with 0.02
  learned which colours a clip holds but not on which side (16-way left /
  right colours: test 0.51), with 1.0, as large as a token's embedding, it
  learned both (0.85; benchmarks/RESULTS.md, #22).

Paper sizes (tools.model_table, configs/mbt.py:audioset; scenic's
`projects/mbt/configs/audioset/balanced_audioset_base.py`): ViT-B per stream
(12 layers, D 768, 12 heads, MLP 3072), RGB 32 frames at stride 2 (of 25 fps
video) in 2x16x16 tubelets of 224^2 crops (16 x 14 x 14 tokens), audio 8 s
of 128-bin log-mel at 100 frames/s (800 x 128) in 16x16 patches (50 x 8),
fusion layer 8, 4 bottlenecks, `gap` classifier, 527 AudioSet classes.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vidjax.errors import VidjaxError
from vidjax.layers.embedding import AddPositionEmbedding, TubeletEmbedding
from vidjax.layers.transformer import EncoderBlock, make_norm
from vidjax.models.vivit import compute_dtype
from vidjax.registry import register_model

FUSIONS = ("bottleneck", "early", "late", "video_only", "audio_only")
CLASSIFIERS = ("token", "gap")
POSEMBS = ("learned", "separable")


def spectrogram_grid(frames: int, mels: int, patch: Sequence[int],
                     stride: Sequence[int]) -> Tuple[int, int]:
  """(time patches, frequency patches) of a [frames, mels] log-mel cut into
  `patch` (time, freq) patches `stride` apart (VALID, as AST's conv)."""
  (pt, pf), (st, sf) = patch, stride
  if frames < pt or mels < pf:
    raise VidjaxError(f"config.model.audio_patch_size={tuple(patch)} is "
                      f"larger than the log-mel ({frames} frames x {mels} "
                      "mels)")
  return (frames - pt) // st + 1, (mels - pf) // sf + 1


class SpectrogramPatches(nn.Module):
  """[B, frames, mels] -> [B, time patches, freq patches, D] (AST's patch
  embedding: a one-channel conv, kernel `patch_size`, stride `stride`).
  Parameters kernel (pt, pf, 1, D) and bias (D,); non-overlapping patches
  (stride = patch) take a reshape and one matmul (XLA:CPU compiles large
  conv kernels slowly), overlapping ones a strided conv."""
  hidden_size: int
  patch_size: Tuple[int, int] = (16, 16)
  stride: Tuple[int, int] = (16, 16)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    (pt, pf), (st, sf) = tuple(self.patch_size), tuple(self.stride)
    rows, cols = spectrogram_grid(x.shape[1], x.shape[2], (pt, pf), (st, sf))
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (pt, pf, 1, self.hidden_size), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.hidden_size,),
                      jnp.float32)
    x = x.astype(self.dtype)[..., None]
    kernel = kernel.astype(self.dtype)
    if (pt, pf) == (st, sf):
      b = x.shape[0]
      x = x[:, :rows * pt, :cols * pf].reshape(b, rows, pt, cols, pf)
      x = x.transpose(0, 1, 3, 2, 4).reshape(b, rows, cols, pt * pf)
      y = x @ kernel.reshape(pt * pf, self.hidden_size)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, (st, sf), "VALID",
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(self.dtype)


class _Tokens(nn.Module):
  """Patch tokens -> [B, 1 + N, D]: a CLS token first, position embeddings
  (one per grid position, or `separable`: per axis, summed) added, drawn
  from a normal of std `stddev`."""
  posemb: str = "learned"
  stddev: float = 0.02

  @nn.compact
  def __call__(self, grid):
    batch, width = grid.shape[0], grid.shape[-1]
    if self.posemb == "separable":  # [B, a, b, D] (time, freq) grids only
      a, b = grid.shape[1:3]
      init = nn.initializers.normal(self.stddev)
      pa = self.param("pos_time", init, (1, a, 1, width), jnp.float32)
      pb = self.param("pos_freq", init, (1, 1, b, width), jnp.float32)
      grid = grid + (pa + pb).astype(grid.dtype)
    tokens = grid.reshape(batch, -1, width)
    cls = self.param("cls", nn.initializers.zeros, (1, 1, width), jnp.float32)
    tokens = jnp.concatenate(
        [jnp.broadcast_to(cls.astype(tokens.dtype), (batch, 1, width)),
         tokens], axis=1)
    if self.posemb == "learned":
      tokens = AddPositionEmbedding(self.stddev, name="pos_embedding")(tokens)
    return tokens


class _StreamOptions(nn.Module):
  """Options shared by AST and MBT (ViT-B defaults)."""
  num_classes: int
  hidden_size: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  num_layers: int = 12
  audio_patch_size: Tuple[int, int] = (16, 16)   # (time, frequency)
  audio_patch_stride: Tuple[int, int] = (16, 16)  # AST: (10, 10)
  audio_posemb: str = "learned"
  classifier: str = "token"
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth: float = 0.0
  attention_impl: str = "auto"
  dtype: str = "float32"
  head_init_std: float = 0.0
  posemb_init_std: float = 0.02  # ViT's; 1.0: as large as a token (below)

  def check_options(self):
    """One-line VidjaxErrors for bad options (before any tracing)."""
    self._check()

  def _check(self):
    if self.hidden_size % self.num_heads:
      raise VidjaxError(f"config.model.hidden_size={self.hidden_size} is not "
                        f"divisible by config.model.num_heads="
                        f"{self.num_heads}")
    if self.classifier not in CLASSIFIERS:
      raise VidjaxError(f"config.model.classifier={self.classifier!r}: one "
                        f"of {', '.join(CLASSIFIERS)}")
    if self.audio_posemb not in POSEMBS:
      raise VidjaxError(f"config.model.audio_posemb={self.audio_posemb!r}: "
                        f"one of {', '.join(POSEMBS)}")

  def _block(self, name: str, layer: int, train: bool):
    rate = self.stochastic_depth * layer / max(self.num_layers - 1, 1)
    return EncoderBlock(
        num_heads=self.num_heads, mlp_dim=self.mlp_dim,
        dropout_rate=self.dropout_rate,
        attention_dropout_rate=self.attention_dropout_rate,
        drop_path_rate=rate, attention_impl=self.attention_impl,
        deterministic=not train, dtype=compute_dtype(self.dtype),
        name=f"{name}_block_{layer}")

  def _audio_tokens(self, audio, train: bool):
    dtype = compute_dtype(self.dtype)
    grid = SpectrogramPatches(self.hidden_size, tuple(self.audio_patch_size),
                              tuple(self.audio_patch_stride), dtype,
                              name="audio_embedding")(audio)
    x = _Tokens(self.audio_posemb, self.posemb_init_std,
                name="audio_tokens")(grid)
    return nn.Dropout(self.dropout_rate)(x, deterministic=not train)

  def _head(self):
    init = (nn.initializers.zeros if self.head_init_std <= 0.0
            else nn.initializers.normal(self.head_init_std))
    return nn.Dense(self.num_classes, kernel_init=init, dtype=jnp.float32,
                    name="head")


@register_model("ast")
class AST(_StreamOptions):
  """Audio Spectrogram Transformer (module docstring): [B, frames, mels]
  normalised log-mel -> logits [B, num_classes]."""

  @nn.compact
  def __call__(self, audio, *, train: bool = False):
    self._check()
    x = self._audio_tokens(audio, train)
    for i in range(self.num_layers):
      x = self._block("audio", i, train)(x)
    x = make_norm("layernorm", compute_dtype(self.dtype), "encoder_norm")(x)
    pooled = x[:, 0] if self.classifier == "token" else x[:, 1:].mean(1)
    return self._head()(pooled.astype(jnp.float32))


@register_model("mbt")
class MBT(_StreamOptions):
  """Multimodal Bottleneck Transformer and its baselines (module
  docstring): (video [B, T, H, W, 3], audio [B, frames, mels]) -> logits."""
  fusion: str = "bottleneck"
  fusion_layer: int = 8
  num_bottlenecks: int = 4
  video_patch_size: Tuple[int, int, int] = (2, 16, 16)
  zero_bottlenecks: bool = False

  def check_options(self):
    self._check()
    if self.fusion not in FUSIONS:
      raise VidjaxError(f"config.model.fusion={self.fusion!r}: one of "
                        f"{', '.join(FUSIONS)}")
    if self.fusion in ("bottleneck", "early") and not (
        0 <= self.fusion_layer <= self.num_layers):
      raise VidjaxError(f"config.model.fusion_layer={self.fusion_layer}: "
                        f"must be in [0, num_layers={self.num_layers}]")
    if self.fusion == "bottleneck" and self.num_bottlenecks < 1:
      raise VidjaxError(f"config.model.num_bottlenecks="
                        f"{self.num_bottlenecks}: must be >= 1")

  @property
  def modalities(self) -> Tuple[str, ...]:
    return {"video_only": ("video",), "audio_only": ("audio",)}.get(
        self.fusion, ("video", "audio"))

  def _video_tokens(self, video, train: bool):
    dtype = compute_dtype(self.dtype)
    grid = TubeletEmbedding(self.hidden_size, tuple(self.video_patch_size),
                            dtype=dtype, name="video_embedding")(video)
    x = _Tokens("learned", self.posemb_init_std, name="video_tokens")(grid)
    return nn.Dropout(self.dropout_rate)(x, deterministic=not train)

  @nn.compact
  def __call__(self, video, audio, *, train: bool = False):
    self.check_options()
    x = {}
    if "video" in self.modalities:
      x["video"] = self._video_tokens(video, train)
    if "audio" in self.modalities:
      x["audio"] = self._audio_tokens(audio, train)
    names = tuple(x)
    fuses = len(names) == 2 and self.fusion in ("bottleneck", "early")
    bottleneck = None
    if fuses and self.fusion == "bottleneck" and (
        self.fusion_layer < self.num_layers):
      shared = self.param("bottleneck", nn.initializers.normal(0.02),
                          (1, self.num_bottlenecks, self.hidden_size),
                          jnp.float32)
      batch = x[names[0]].shape[0]
      bottleneck = jnp.broadcast_to(
          shared.astype(x[names[0]].dtype),
          (batch, self.num_bottlenecks, self.hidden_size))
    for i in range(self.num_layers):
      blocks = {m: self._block(m, i, train) for m in names}
      if not fuses or i < self.fusion_layer:
        x = {m: blocks[m](x[m]) for m in names}
      elif self.fusion == "bottleneck":  # eq. 8-9
        if self.zero_bottlenecks:
          bottleneck = jnp.zeros_like(bottleneck)
        outs = {m: blocks[m](jnp.concatenate([x[m], bottleneck], axis=1))
                for m in names}
        x = {m: outs[m][:, :x[m].shape[1]] for m in names}
        bottleneck = jnp.mean(jnp.stack(
            [outs[m][:, x[m].shape[1]:] for m in names]), axis=0)
      else:  # early: joint self-attention over both streams
        joint = jnp.concatenate([x[m] for m in names], axis=1)
        starts = {names[0]: 0, names[1]: x[names[0]].shape[1]}
        x = {m: blocks[m](joint)[:, starts[m]:starts[m] + x[m].shape[1]]
             for m in names}
    norm = make_norm("layernorm", compute_dtype(self.dtype), "encoder_norm")
    x = {m: norm(x[m]) for m in names}
    for m in names:  # each stream's output tokens (tests read them)
      self.sow("intermediates", f"{m}_output", x[m])
    head = self._head()
    if self.classifier == "gap":
      pooled = jnp.concatenate([x[m][:, 1:] for m in names], axis=1).mean(1)
      return head(pooled.astype(jnp.float32))
    return jnp.mean(jnp.stack([head(x[m][:, 0].astype(jnp.float32))
                               for m in names]), axis=0)
