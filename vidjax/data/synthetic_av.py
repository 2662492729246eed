"""`synthetic_av`: embedded, offline, seeded TFDS dataset of audio-visual
clips (issue #22), rendered by `av_render.py` (two objects whose voices are
tied to their looks and whose sound onsets are their visual flashes; see
there for every distribution).

Each example (defaults: 16 frames of 32x32 at 8 fps = 2 s, 16 kHz mono):

  {"video": uint8 [T, H, W, 3],
   "audio": int16 [N] the mixture (N = T / fps x sample_rate = 32000;
            float = int16 / 32767, vidjax.audio.decode.from_int16),
   "stems": int16 [2, N] each object's sound alone (zeros if silent);
            audio == stems.sum(0) + noise exactly, in the integers,
   "snr_db": float32, 10 log10(P(sum of stems) / P(noise)) over the clip,
   "boxes": float32 [2, T, 4] normalised x1, y1, x2, y2 per object, frame,
   "sounding": bool [2], "direction": int32 [2] (synthetic_motion motion
            class ids 0-3: right, left, up, down),
   "colour", "shape": int32 [2] (av_render.COLOUR_NAMES / SHAPE_NAMES: the
            voice class: f0 band from the colour, harmonics from the shape),
   "f0": float32 [2] Hz,
   "flash": bool [2, T] the frames each object flashes,
   "onset_frames": int32 [2, E] (E = 3 events per object, sorted),
   "onset_samples": int32 [2, E] = onset_frames x sample_rate / fps,
   "label": the config's class (ClassLabel), "index": int32}

Configs (av_render's kinds): `fusion` (default; label = direction of the
one sounding object of two identical-looking ones, 4 classes), `separation`
(both sound, distinct voices, test voices at held-out pitches; label =
direction of object 0), `factorised` (4 classes = right / left x low / high
voice), `which` (two different looks, one sounds; label = its side, left /
right: "which of the two visible objects is sounding"; circular events, so
a circularly shifted track is no different from an aligned one to the
audio alone). Splits train (2048) / test (256). Synchronisation pairs are made by
the loader (vidjax/data/av_loader.py), not stored.

Usage:
  builder = load_builder("fusion", train_examples=64)   # built once, cached
  source = builder.as_data_source("train")
  ex = source[0]; ex["audio"], ex["stems"], ex["label"]
"""
from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from vidjax.data import av_render  # noqa: E402
from vidjax.data import builder_configs  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

SPLITS = ("train", "test")
E = av_render.EVENTS_PER_OBJECT


@dataclasses.dataclass(eq=False)
class SyntheticAvConfig(tfds.core.BuilderConfig):
  """Generation settings (av_render.plan / render for their meaning)."""

  kind: str = "fusion"
  train_examples: int = 2048
  test_examples: int = 256
  num_frames: int = 16
  resolution: int = 32
  fps: float = 8.0
  sample_rate: int = 16000
  seed: int = 0

  def num_examples(self, split: str) -> int:
    return self.train_examples if split == "train" else self.test_examples

  @property
  def num_samples(self) -> int:
    return int(round(self.num_frames * self.sample_rate / self.fps))

  @property
  def class_names(self) -> tuple:
    return av_render.class_names(self.kind)


def render_example(config: SyntheticAvConfig, split: str, index: int) -> dict:
  """The example dict of (split, index): a pure function of the config."""
  c = config
  video, mix, stems, p = av_render.render(
      c.seed, split, index, kind=c.kind, num_frames=c.num_frames,
      res=c.resolution, fps=c.fps, sample_rate=c.sample_rate)
  objs = p["objects"]
  per = lambda key, dtype: np.array([o[key] for o in objs], dtype)  # noqa
  onsets = per("onsets", np.int32)
  return {"video": video, "audio": mix, "stems": stems,
          "snr_db": np.float32(p["snr_db"]),
          "boxes": av_render.boxes(p, c.resolution),
          "sounding": per("sounding", bool),
          "direction": per("direction", np.int32),
          "colour": per("colour", np.int32), "shape": per("shape", np.int32),
          "f0": per("f0", np.float32), "flash": per("flash", bool),
          "onset_frames": onsets,
          "onset_samples": np.round(onsets * c.sample_rate / c.fps).astype(
              np.int32),
          "label": p["label"], "index": np.int32(index)}


class SyntheticAv(tfds.core.GeneratorBasedBuilder):
  """Two flashing, moving objects with look-tied voices, and their sound."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      SyntheticAvConfig(name="fusion", kind="fusion", description=(
          "Twins, one sounds; label = direction of the sounding one.")),
      SyntheticAvConfig(name="separation", kind="separation", seed=1,
                        description="Both sound, distinct voices."),
      SyntheticAvConfig(name="factorised", kind="factorised", seed=2,
                        description="4 classes = direction x pitch."),
      SyntheticAvConfig(name="which", kind="which", seed=3, description=(
          "Two looks, one sounds; label = its side; circular events.")),
  ]
  DEFAULT_CONFIG_NAME = "fusion"

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    t, r, n = c.num_frames, c.resolution, c.num_samples
    zlib = tfds.features.Encoding.ZLIB
    ten = lambda shape, dtype, enc=None: tfds.features.Tensor(  # noqa: E731
        shape=shape, dtype=dtype,
        encoding=enc or tfds.features.Encoding.NONE)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": ten((t, r, r, 3), np.uint8, tfds.features.Encoding.BYTES),
            "audio": ten((n,), np.int16, tfds.features.Encoding.BYTES),
            "stems": ten((2, n), np.int16, zlib),
            "snr_db": ten((), np.float32),
            "boxes": ten((2, t, 4), np.float32),
            "sounding": ten((2,), np.bool_),
            "direction": ten((2,), np.int32),
            "colour": ten((2,), np.int32),
            "shape": ten((2,), np.int32),
            "f0": ten((2,), np.float32),
            "flash": ten((2, t), np.bool_),
            "onset_frames": ten((2, E), np.int32),
            "onset_samples": ten((2, E), np.int32),
            "label": tfds.features.ClassLabel(names=list(c.class_names)),
            "index": ten((), np.int32),
        }),
        disable_shuffling=True,  # index order is already class-interleaved
        description=__doc__.split("\n\n")[0])

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {s: self._generate_examples(s) for s in SPLITS}

  def _generate_examples(self, split: str):
    cfg = self.builder_config  # serial: ~7 ms per example
    for i in range(cfg.num_examples(split)):
      yield i, render_example(cfg, split, i)


def check_config(c: SyntheticAvConfig) -> None:
  """One-line VidjaxError naming the config.dataset field of an impossible
  setting, before anything is rendered."""
  def bad(key, why):
    raise VidjaxError(f"config.dataset.{key}={getattr(c, key)!r}: {why}")
  if c.kind not in av_render.KINDS:
    bad("kind", f"must be one of {av_render.KINDS}")
  for key in ("train_examples", "test_examples"):
    if getattr(c, key) < 1:
      bad(key, "must be >= 1")
  need = 2 * E + (2 * E - 1) * (av_render.MIN_GAP - 1) + 3
  if c.num_frames < need:
    bad("num_frames", f"must be >= {need} (6 onsets {av_render.MIN_GAP} "
        "frames apart in frames 1..T-3)")
  if c.resolution < 16:
    bad("resolution", "must be >= 16 (pixels)")
  if c.fps <= 0:
    bad("fps", "must be > 0")
  if c.sample_rate < 8000 or (c.sample_rate / c.fps) % 1:
    bad("sample_rate", "must be >= 8000 Hz and a whole number of samples "
        "per frame (sample_rate / fps)")


def make_config(config_name: str = "fusion", **overrides) -> SyntheticAvConfig:
  """The named config, or a copy with `overrides` under a stable name (the
  name hashes the kind too, so configs with equal overrides differ)."""
  named = {c.name: c for c in SyntheticAv.BUILDER_CONFIGS}
  if config_name not in named:
    raise VidjaxError(f"config.dataset.config={config_name!r}: synthetic_av "
                      f"has {sorted(named)}")
  base = named[config_name]
  if overrides:
    overrides = {"kind": base.kind, **overrides}
  return builder_configs.custom_config(base, overrides, "synthetic_av",
                                       check_config)


def load_builder(config_name: str = "fusion", data_dir: str | None = None,
                 **overrides):
  """A prepared builder (built once into the TFDS data dir, then cached)."""
  builder = SyntheticAv(config=make_config(config_name, **overrides),
                        data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  return builder
