"""The TFDS build of AudioSet / VGGSound segments (vidjax/data/audioset.py
lists them; the layouts, the stored example and the report are described
there): `decode_clip` turns one clip file into its fixed-shape example,
`load` builds once (builder `av_clips`, config `<dataset>_<content hash>`)
and opens the splits with the counted report."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from vidjax.data.audioset import ClipSettings, Listed, list_segments
from vidjax.errors import VidjaxError

REPORT_JSON = "vidjax_report.json"


def decode_clip(path: str, start: float, trimmed: bool,
                s: ClipSettings) -> dict:
  """One segment's example (module docstring). Raises decode.BadVideo;
  audio.decode.NoAudio is caught: silence and has_audio False."""
  from vidjax.audio import decode as adec  # noqa: PLC0415
  from vidjax.data import decode  # noqa: PLC0415
  got = decode.decode_to_jpegs(path, resize_short=s.size, fps=s.fps)
  fps = got["fps"] or s.fps
  offset = 0.0 if trimmed else max(start - got["t0"], 0.0)
  first = int(round(offset * fps))
  count = len(got["frames"])
  if first >= count:
    raise decode.BadVideo(f"the segment starts at {start:g} s, after the "
                          f"video's last frame ({count} at {fps:g} fps)")
  real = min(s.num_frames, count - first)
  idx = np.minimum(first + np.arange(s.num_frames), count - 1)
  frames = decode.decode_jpegs(got["frames"], idx, got["height"],
                               got["width"])
  h, w = frames.shape[1:3]
  y0, x0 = (h - min(h, w)) // 2, (w - min(h, w)) // 2
  frames = frames[:, y0:y0 + min(h, w), x0:x0 + min(h, w)]
  if frames.shape[1] != s.size:
    frames = np.stack([decode.resize(f, (s.size, s.size)) for f in frames])
  try:
    wave, audio_t0 = adec.decode_audio(path, s.sample_rate)
    track = adec.AudioTrack(wave, s.sample_rate, audio_t0, got["t0"], fps)
    audio, has_audio, why = adec.to_int16(track.clip(first, s.num_samples)
                                          ), True, ""
  except adec.NoAudio as e:
    audio, has_audio, why = np.zeros(s.num_samples, np.int16), False, str(e)
  return {"video": frames, "audio": audio, "num_frames": np.int32(real),
          "has_audio": has_audio, "no_audio_reason": why}


def _key(listed: Listed, s: ClipSettings) -> str:
  stats = [(p, os.path.getsize(p), int(os.path.getmtime(p)))
           for p in listed.files]
  clips = sorted((seg.clip_id, seg.split, p, t, os.path.getsize(p))
                 for rows in listed.found.values() for seg, p, t in rows)
  text = json.dumps([listed.name, stats, clips, dataclasses.asdict(s)],
                    default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:10]


def _tfds():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow_datasets as tfds  # noqa: PLC0415 - slow: only to build
  return tfds


_BUILDER = None


def builder_class():
  """The TFDS builder `av_clips` (defined on first use: TFDS is slow to
  import). Its config name is `<dataset>_<hash of the CSVs' sizes and
  times, the found clips and the ClipSettings>`: new files, another CSV or
  setting build anew."""
  global _BUILDER
  if _BUILDER is not None:
    return _BUILDER
  tfds = _tfds()

  @dataclasses.dataclass(eq=False)
  class AvClipsConfig(tfds.core.BuilderConfig):
    dataset: str = "audioset"
    num_classes: int = 527
    num_frames: int = 40
    size: int = 128
    num_samples: int = 160000

  class AvClips(tfds.core.GeneratorBasedBuilder):
    """AudioSet / VGGSound segments from the user's clips."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [AvClipsConfig(name="audioset_empty")]

    def __init__(self, *, listed=None, settings=None, **kw):
      super().__init__(**kw)
      self.listed, self.settings = listed, settings
      self.events = {"skipped": [], "no_audio": [], "labels": set()}

    def _info(self):
      c = self.builder_config
      enc = tfds.features.Encoding.BYTES
      return self.dataset_info_from_configs(
          features=tfds.features.FeaturesDict({
              "video": tfds.features.Tensor(
                  shape=(c.num_frames, c.size, c.size, 3), dtype=np.uint8,
                  encoding=enc),
              "audio": tfds.features.Tensor(shape=(c.num_samples,),
                                            dtype=np.int16, encoding=enc),
              "labels": tfds.features.Tensor(shape=(c.num_classes,),
                                             dtype=np.uint8),
              "label": tfds.features.Scalar(dtype=np.int32),
              "clip_id": tfds.features.Text(),
              "start": tfds.features.Scalar(dtype=np.float32),
              "num_frames": tfds.features.Scalar(dtype=np.int32),
              "has_audio": tfds.features.Scalar(dtype=np.bool_),
          }), disable_shuffling=True, description=__doc__.split("\n\n")[0])

    def _split_generators(self, dl_manager):
      del dl_manager  # the user's files
      return {s: self._generate_examples(s) for s in ("train", "test")}

    def _generate_examples(self, split):
      s, c = self.settings, self.builder_config
      from vidjax.data import decode  # noqa: PLC0415
      for i, (seg, path, trimmed) in enumerate(self.listed.found[split]):
        try:
          ex = decode_clip(path, seg.start, trimmed, s)
        except decode.BadVideo as e:
          self.events["skipped"].append((path, str(e)))
          continue
        why = ex.pop("no_audio_reason")
        if not ex["has_audio"]:
          if s.missing_audio == "refuse":
            raise VidjaxError(f"{path}: {why} (config.dataset.audio."
                              "missing='refuse')")
          self.events["no_audio"].append((path, why))
        hot = np.zeros(c.num_classes, np.uint8)
        hot[list(seg.labels)] = 1
        if split == "train":
          self.events["labels"].update(seg.labels)
        yield f"{i:07d}", {**ex, "labels": hot, "label": np.int32(
            seg.labels[0]), "clip_id": seg.clip_id,
                           "start": np.float32(seg.start)}

  _BUILDER = (AvClips, AvClipsConfig)
  return _BUILDER


@dataclasses.dataclass
class AVClips:
  train: object        # random-access sources (builder.as_data_source)
  test: object
  class_names: list
  mids: list           # AudioSet ontology ids ([] for VGGSound)
  multilabel: bool
  report: object       # build_report.Report
  builder: object = None


def load(dataset_config, verbose: bool = True) -> AVClips:
  """Lists, builds (once: cached under the TFDS data dir by content hash)
  and opens config.dataset's AudioSet / VGGSound clips."""
  from vidjax.data import build_report  # noqa: PLC0415
  d = dataset_config
  settings = ClipSettings.from_config(d)
  listed = list_segments(d)
  if not listed.found["train"] or not listed.found["test"]:
    empty = "train" if not listed.found["train"] else "test"
    raise VidjaxError(f"{listed.name}: none of the {empty} segments listed "
                      "has a clip file under config.dataset.manual_dir="
                      f"{d.get('manual_dir')} (layouts: vidjax/data/"
                      "audioset.py)")
  cls, config_cls = builder_class()
  config = config_cls(
      name=f"{listed.name}_{_key(listed, settings)}", dataset=listed.name,
      num_classes=len(listed.class_names), num_frames=settings.num_frames,
      size=settings.size, num_samples=settings.num_samples)
  builder = cls(config=config, data_dir=d.get("data_dir", "") or None,
                listed=listed, settings=settings)
  folder = str(builder.data_dir)
  saved = os.path.join(folder, REPORT_JSON)
  if not os.path.exists(saved):
    builder.download_and_prepare(file_format="array_record")
    ev = builder.events
    with open(saved, "w") as f:
      json.dump({"skipped": ev["skipped"], "no_audio": ev["no_audio"],
                 "empty": [n for i, n in enumerate(listed.class_names)
                           if i not in ev["labels"]]}, f)
  with open(saved) as f:
    events = json.load(f)
  train, test = (builder.as_data_source(s) for s in ("train", "test"))
  report = build_report.Report(
      name=listed.name, num_videos={"train": len(train), "test": len(test)},
      skipped=[tuple(x) for x in events["skipped"]] + [
          (w, f"bad CSV row: {why}") for w, why in listed.bad_rows],
      ignored=[], missing=list(listed.missing),
      empty_classes=events["empty"],
      where=os.path.join(folder, "vidjax_report.txt"),
      no_audio=[tuple(x) for x in events["no_audio"]])
  build_report.save_report(report)
  if verbose:
    print("\n".join(report.lines(build_report.PRINT_LIMIT)))
  return AVClips(train, test, listed.class_names, listed.mids,
                 listed.name == "audioset", report, builder)
