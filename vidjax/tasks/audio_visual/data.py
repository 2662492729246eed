"""The audio-visual task's batches: vidjax/data/av_loader.py's (synthetic_av
in memory; the user's AudioSet / VGGSound builds, vidjax/data/audioset.py,
read per batch) reduced to what the steps take.

Batches (numpy, one shape per config, so the steps compile once):

  video  [B, T, H, W, 3] uint8
  audio  [B, samples] float32 waveform in [-1, 1] (the log-mel is taken
         inside the jitted step, train_step.py)
  label  [B] int32: the dataset's label ("classification"; VGGSound: its
         one class) or, for "sync", 1 = aligned / 0 = shifted; or
         [B, K] float32 multi-hot for multi-label data (AudioSet,
         config.dataset.multilabel: the build's `labels`; the sigmoid loss
         and mAP of train_step.py / task.scores)
  valid  [B] bool (evaluation only: False on the padded last rows)

Objectives (`config.objective`):
* "classification": the dataset's labels;
* "sync" (Owens & Efros, ECCV 2018, "Audio-Visual Scene Analysis with
  Self-Supervised Multisensory Features", Sec. 3: aligned vs shifted audio
  of the same video): the loader's pairs (`config.dataset.sync` on):
  training rows shifted with probability 1/2 by a circular shift of at
  least `dataset.sync_min_shift` s (0.25) either way, drawn from (seed,
  step, row); every test example once aligned and once shifted (chance 0.5).
* "voice" (the AST sanity task): the colour class of the sounding object
  (synthetic_av's colour fixes the voice's pitch band); audio alone tells.
* "looks" (synthetic_av: a video stream's pretraining, as MBT starts its
  streams from supervised ImageNet / AudioSet models): 4 x (left object's
  colour class) + (right object's), 16 classes; the left object is the one
  whose box centre is further left in frame 0, read after mirroring (a
  mirrored row swaps them). Video alone tells.
* AudioSet / VGGSound builds store round(clip_seconds x fps) frames of
  resize_short^2 (vidjax/data/audioset.py); `fit_video` gives the model
  config.dataset.num_frames frames `frame_stride` apart, centred, and the
  centre crop_size^2 (a resize where the stored side is smaller), train and
  test alike (no-op where the build stores exactly that: configs/mbt.py).
* `dataset.audio_control="noise"` (the sync bar's control) replaces every
  waveform, train and test, by white noise of the same RMS, drawn from
  (seed, step or eval batch, row).

The wrapped loaders keep av_loader's contract (a training batch is a pure
function of (seed, step); each process builds its rows).
"""
from __future__ import annotations

import numpy as np

from vidjax.errors import VidjaxError

TRAIN_KEYS = ("video", "audio", "label")
EVAL_KEYS = ("video", "audio")
OBJECTIVES = ("classification", "sync", "voice", "looks")
USER_DATA = ("audioset", "vggsound")   # the user's clips, audioset.py
# The annotation files each reads (config key, default name in manual_dir),
# as audioset.list_segments looks for them.
FILES = {"audioset": (("class_labels", "class_labels_indices.csv"),
                      ("csv", "balanced_train_segments.csv"),
                      ("test_csv", "eval_segments.csv")),
         "vggsound": (("csv", "vggsound.csv"),)}


def check(config):
  """One-line errors for the data options (before anything is built)."""
  d = config.dataset
  objective = config.get("objective", "classification")
  if objective not in OBJECTIVES:
    raise VidjaxError(f"config.objective={objective!r}: one of "
                      f"{', '.join(OBJECTIVES)}")
  if bool(d.get("sync", False)) != (objective == "sync"):
    raise VidjaxError(f"config.dataset.sync={d.get('sync', False)}: must be "
                      f"{objective == 'sync'} for config.objective="
                      f"{objective!r}")
  if d.get("audio_control", "") not in ("", "noise"):
    raise VidjaxError(f"config.dataset.audio_control={d.audio_control!r}: "
                      "'' or 'noise'")
  a = d.get("audio", None) or {}
  if a.get("features", "waveform") != "waveform":
    raise VidjaxError("config.dataset.audio.features: the audio_visual task "
                      "takes waveforms ('waveform'; its log-mel is "
                      "config.audio_frontend, taken in the step)")
  samples = int(d.get("audio_samples", 0))
  if samples <= 0:
    raise VidjaxError(f"config.dataset.audio_samples={samples}: must be > 0 "
                      "(clip seconds x sample rate)")
  name = d.get("name", "synthetic_av")
  if objective in ("voice", "looks") and name != "synthetic_av":
    raise VidjaxError(f"config.objective={objective!r} needs synthetic_av "
                      f"(its objects' colours), not {name!r}")
  want = name == "audioset" and objective == "classification"
  if bool(d.get("multilabel", False)) != want:
    raise VidjaxError(f"config.dataset.multilabel={d.get('multilabel')}: "
                      f"must be {want} for {name} and config.objective="
                      f"{objective!r} (only AudioSet's labels are multi-hot)")
  if name in USER_DATA:
    check_user_data(d)


def check_user_data(d):
  """AudioSet / VGGSound: what the config tells of the build, before it is
  listed or built: the clip folder and CSVs exist, the stored clip holds
  the model's frames and exactly its audio samples."""
  from vidjax.data import audioset, listing  # noqa: PLC0415
  root = listing.existing_dir(d.get("manual_dir", ""), "manual_dir")
  for key, default in FILES[d.name]:
    listing.find_file(d.get(key, "") or default, key, root)
  s = audioset.ClipSettings.from_config(d)
  if s.sample_rate != int(d.get("sample_rate", s.sample_rate)):
    raise VidjaxError(f"config.dataset.audio.sample_rate={s.sample_rate} "
                      f"differs from config.dataset.sample_rate="
                      f"{d.sample_rate}")
  if s.num_samples != int(d.audio_samples):
    raise VidjaxError(f"config.dataset.clip_seconds={s.clip_seconds:g} "
                      f"stores {s.num_samples} samples at {s.sample_rate} "
                      f"Hz; config.dataset.audio_samples={d.audio_samples}")
  span = (int(d.num_frames) - 1) * int(d.frame_stride) + 1
  if min(int(d.num_frames), int(d.frame_stride), int(d.crop_size)) < 1 or \
      span > s.num_frames:
    raise VidjaxError(f"config.dataset.num_frames={d.num_frames} (x "
                      f"frame_stride={d.frame_stride}) spans {span} frames; "
                      f"the build stores {s.num_frames} (clip_seconds x fps "
                      f"= {s.clip_seconds:g} x {s.fps:g})")


def fit_video(video: np.ndarray, num_frames: int, stride: int,
              crop: int) -> np.ndarray:
  """[B, T, S, S, 3] stored -> [B, num_frames, crop, crop, 3]: the centred
  frames `stride` apart (pipeline.test_starts / frame_indices) and the
  centre crop (pipeline.crop_origins), resized up where S < crop
  (box_augment.resize_clip). The stored array itself where it fits."""
  _, t, h, w, _ = video.shape
  if (t, h, w) == (num_frames, crop, crop):
    return video
  from vidjax.data import box_augment, pipeline  # noqa: PLC0415
  spec = pipeline.ClipSpec(num_frames, stride, crop, False)
  video = video[:, pipeline.frame_indices(
      t, spec, int(pipeline.test_starts(t, spec, 1)[0]))]
  if min(h, w) >= crop:
    y, x = pipeline.crop_origins(h, w, crop, 1)[0]
    return video[:, :, y:y + crop, x:x + crop]
  return np.stack([box_augment.resize_clip(v, crop, crop) for v in video])


def video_shape(config):
  """(num_frames, frame_stride, crop_size) for `fit_video` (AudioSet /
  VGGSound builds), or None: synthetic_av renders the model's clip."""
  d = config.dataset
  if d.get("name", "synthetic_av") not in USER_DATA:
    return None
  return int(d.num_frames), int(d.frame_stride), int(d.crop_size)


def select(batch: dict, objective: str, control: str, key,
           multilabel: bool = False, video=None) -> dict:
  """The loader's batch -> the task's keys (module docstring); `video`:
  `video_shape`'s (frames, stride, crop) to fit the stored clips to."""
  if objective == "sync":
    label = batch["aligned"]
  elif objective == "voice":  # the sounding object's colour class
    label = np.take_along_axis(batch["colour"], np.argmax(
        batch["sounding"], axis=1)[:, None], axis=1)[:, 0]
  elif objective == "looks":
    label = looks(batch["colour"], batch["boxes"])
  elif multilabel:  # AudioSet: the multi-hot targets
    label = np.asarray(batch["labels"], np.float32)
  else:
    label = batch["label"]
  audio = np.asarray(batch["audio"], np.float32)
  if control == "noise":
    rms = np.sqrt(np.mean(audio ** 2, axis=-1, keepdims=True))
    audio = (rms * np.random.default_rng(key).standard_normal(
        audio.shape)).astype(np.float32)
  frames = batch["video"] if video is None else fit_video(batch["video"],
                                                          *video)
  out = {"video": frames, "audio": audio,
         "label": label if multilabel else np.asarray(label, np.int32)}
  if "valid" in batch:
    out["valid"] = batch["valid"]
  return out


def looks(colour: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """[B] int32 "looks" labels: 4 x left colour class + right colour class,
  from colour [B, 2] and boxes [B, 2, T, 4] (normalised x1, y1, x2, y2)."""
  centre = boxes[:, :, 0, 0] + boxes[:, :, 0, 2]       # 2 x centre x, frame 0
  left = np.argmin(centre, axis=1)
  rows = np.arange(len(colour))
  return (4 * colour[rows, left] + colour[rows, 1 - left]).astype(np.int32)


class TrainLoader:
  """av_loader.TrainLoader's batches, reduced (`select`)."""

  def __init__(self, inner, config):
    self.inner, self.seed = inner, int(config.seed)
    self.objective = config.get("objective", "classification")
    self.control = config.dataset.get("audio_control", "")
    self.first_row = inner.rows[0] if len(inner.rows) else 0
    self.multilabel = bool(config.dataset.get("multilabel", False))
    self.video = video_shape(config)

  def batch(self, step: int) -> dict:
    return select(self.inner.batch(step), self.objective, self.control,
                  [self.seed, 7, int(step), int(self.first_row)],
                  self.multilabel, self.video)

  def iterate(self, start_step: int, end_step: int, num_workers: int = 0,
              prefetch: int = 0):
    for step in range(start_step, end_step):
      yield self.batch(step)


class EvalLoader:
  """av_loader.EvalLoader's batches, reduced (`select`; `valid` kept)."""

  def __init__(self, inner, config):
    self.inner, self.seed = inner, int(config.seed)
    self.objective = config.get("objective", "classification")
    self.control = config.dataset.get("audio_control", "")
    self.multilabel = bool(config.dataset.get("multilabel", False))
    self.video = video_shape(config)

  def iterate(self):
    for b in range(self.inner.num_batches):
      yield select(self.inner.batch(b), self.objective, self.control,
                   [self.seed, 8, b], self.multilabel, self.video)

  def batch(self, index: int) -> dict:
    got = select(self.inner.batch(index), self.objective, self.control,
                 [self.seed, 8, int(index)], self.multilabel, self.video)
    return {k: got[k] for k in EVAL_KEYS}
