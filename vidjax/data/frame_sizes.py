"""What the input pipeline asks of the stored frames, read off the config alone.

A dataset stores its frames once with short side `config.dataset.resize_short`
(synthetic_motion: its fixed 32x32 rendering; 0 stores the native size, which
only the data can tell). Training resizes the stored frames (short side
`train_resize_short`, jittered up to `train_resize_short_max`, then per-axis
`scale_jitter`) and crops `crop_size`; testing resizes to `test_resize_short`
and takes crops of `test_crop_size` (0: `crop_size`). See
vidjax/data/augment.py for the sampling itself.

`check(dataset_config)` raises a one-line VidjaxError, before any dataset is
built or decoded, when
* a crop cannot fit the frames it is cut from (a random training crop larger
  than the smallest resized short side; a test crop larger than the test
  short side), or
* the pipeline would upsample the stored frames by more than
  `config.dataset.max_upsample` (default 1.15), i.e. train or test on blurred
  frames because the stored short side is too small for the recipe: a 224 crop
  of frames stored at 128 px. For the random crop that factor is the largest
  resize of the stored short side; for the Inception ("resized") and TSN
  ("multiscale") crops it is the crop size over the stored short side (their
  largest box spans the whole short side; zooming into smaller boxes is the
  augmentation itself); at test it is the test resize.
"""
from typing import NamedTuple, Optional

from vidjax.errors import VidjaxError

SYNTHETIC_RESOLUTION = 32  # synthetic_motion.SyntheticMotionConfig.resolution


class Sizes(NamedTuple):
  """Short sides (px) a config's pipeline works at; None where data decides."""
  stored: Optional[int]       # stored short side
  train_low: Optional[float]  # smallest short side a training crop is cut from
  train_high: Optional[float]  # largest one
  test: Optional[int]         # short side the test crops are cut from
  crop: int
  test_crop: int


def stored_short_side(d) -> Optional[int]:
  if d.name == "synthetic_motion":
    return SYNTHETIC_RESOLUTION
  short = int(d.get("resize_short", 0))
  return short if short > 0 else None


def test_crop_size(d) -> int:
  return int(d.get("test_crop_size", 0)) or int(d.crop_size)


def sizes(d) -> Sizes:
  stored = stored_short_side(d)
  low = int(d.get("train_resize_short", 0)) or stored
  high = int(d.get("train_resize_short_max", 0)) or low
  jitter = tuple(d.get("scale_jitter", (1.0, 1.0)))
  if low is not None:
    low, high = low * jitter[0], high * jitter[1]
  test = int(d.get("test_resize_short", 0)) or stored
  return Sizes(stored, low, high, test, int(d.crop_size), test_crop_size(d))


def _stored_key(d) -> str:
  if d.name == "synthetic_motion":
    return f"the {SYNTHETIC_RESOLUTION}x{SYNTHETIC_RESOLUTION} synthetic frames"
  return f"config.dataset.resize_short={int(d.resize_short)}"


def check(d):
  """Raises if the crops cannot fit or the stored frames would be upsampled."""
  s = sizes(d)
  mode = d.get("crop_mode", "random")
  resized = int(d.get("train_resize_short", 0))
  if mode == "random" and s.train_low is not None and s.crop > int(s.train_low):
    where = (f"after config.dataset.train_resize_short={resized} and "
             f"scale_jitter={tuple(d.scale_jitter)}" if resized else
             _stored_key(d))
    raise VidjaxError(
        f"config.dataset.crop_size={s.crop} is larger than the frames' short "
        f"side {int(s.train_low)} ({where})")
  if s.test is not None and s.test_crop > s.test:
    key = ("test_crop_size" if int(d.get("test_crop_size", 0)) else
           "crop_size")
    where = (f"config.dataset.test_resize_short={s.test}"
             if int(d.get("test_resize_short", 0)) else _stored_key(d))
    raise VidjaxError(
        f"config.dataset.{key}={s.test_crop} is larger than the test frames' "
        f"short side {s.test} ({where})")
  if s.stored is None:
    return
  limit = float(d.get("max_upsample", 1.15))
  stages = []
  if mode == "random":
    stages.append(("training", s.train_high / s.stored,
                   f"resized to a short side of up to {int(s.train_high)}"))
  else:
    stages.append(("training", s.crop / s.stored,
                   f"{mode} crops of {s.crop}"))
  stages.append(("testing", s.test / s.stored,
                 f"resized to a short side of {s.test}"))
  for stage, factor, how in stages:
    if factor > limit:
      need = int(-(-(factor * s.stored) // 1))
      fix = ("" if d.name == "synthetic_motion" else
             f"; --config.dataset.resize_short={need} stores them without "
             "upsampling")
      raise VidjaxError(
          f"{_stored_key(d)} {'are' if fix == '' else 'is'} too small for "
          f"this recipe: {stage} would "
          f"upsample the stored frames (short side {s.stored}) {factor:.2f}x "
          f"({how}) > config.dataset.max_upsample={limit:g}{fix}")
