"""Pure-numpy renderer of the `synthetic_av` dataset (no TF, no JAX).

Issue #22 (audio-visual), data: two objects on a 32x32 video at 8 fps and a
16 kHz mono track rendered from the same random state, after the offline
test plan of shared/notes/beyond_clips.md c.6 (Sound of Pixels' "mix and
separate", Zhao et al., ECCV 2018; Owens & Efros, ECCV 2018 for shifted-audio
synchronisation; Nagrani et al., NeurIPS 2021 for a task that needs both
modalities). An example is a pure function of (seed, split, index, kind):

* Two objects, each in its own half of the frame (left / right, assigned at
  random), drawn with `synthetic_render.shape_sdf` (one of SHAPE_NAMES,
  a random fixed angle, half-extent 2.5-3.5 px) in one of 4 colour classes
  (COLOURS, +-20 jitter per channel) over a dark background. Each moves in
  a straight line in one of the 4 translations of synthetic_motion
  (`direction` = its motion class id: 0 right, 1 left, 2 up, 3 down) at
  0.3-0.4 px / frame, never leaving its half.
* Voice tied to the look: fundamental f0 in the colour's band F0_BANDS
  (log-uniform within one of 10 log-spaced bins; test splits draw only the
  HELD_OUT_BINS, train splits the others: test voices are unseen pitches
  within the class bands), harmonics from the shape (HARMONICS, amplitude
  1 / h; harmonics above 0.45 x sample rate dropped).
* Events: each object has EVENTS_PER_OBJECT (3) events; the onset frames of
  all 6 events of a video are distinct and >= MIN_GAP (2) frames apart, in
  frames 1..T-3 (no circular shift by 2..T-2 frames maps an object's 3
  onsets onto its own flashes: 3 s = 0 mod 16 has no such s). An event is visible as a one-frame "flash" on its onset frame
  -- the object is blended 60% towards white and grown x1.2 -- and audible
  (if the object sounds) as a tone burst of 50-150 ms (5 ms attack,
  exponential decay, 10 ms release) with a 3 ms noise click at the onset.
  Onset sample = onset frame x sample_rate / fps exactly (frame k shows at
  k / fps s): sound and flash start together.
* Mixture = sum of the stems + white noise (int16, exact in the stored
  integers); the noise is scaled so that SNR = 10 log10(P(sum of stems) /
  P(noise)) over the clip (realised powers) is uniform in SNR_DB, and the
  whole example is scaled so the mixture peaks at 0.3-0.6 of full scale.

Kinds (the TFDS configs of synthetic_av.py; label = index % 4, balanced):
* "fusion": the two objects are twins (same colour class, exact colour and
  shape: the same voice class) moving in different directions; exactly one
  sounds (`sounding`); label = direction of the sounding object. Audio alone
  does not tell a direction, video alone does not tell which twin sounds
  (both flash alike); only the flash-onset timing does.
* "separation": both sound, with different colour classes and shapes
  (distinct voices); label = direction of object 0.
* "factorised": both move the same horizontal direction (right / left), one
  sounds; label = 2 x (0 right, 1 left) + (0: sounding colour class in the
  low bands 0-1, 1: high bands 2-3).
* "which": the issue's "which of the two visible objects is sounding": two
  objects of different colour classes (any shapes, any of the 4 directions),
  exactly one sounds, with the voice of its look; label = its half of the
  frame (0 left, 1 right; index % 2, balanced). Video alone is at chance
  (either object sounds with probability 1/2, whatever it looks like) and
  so is audio alone (mono: no side); matching the voice to a look (pitch
  band <-> colour, as Arandjelovic & Zisserman's "Objects that Sound") or
  the sound onsets to one object's flashes tells. Its events are CIRCULAR:
  the 6 onsets lie anywhere in frames
  0..T-1, >= MIN_GAP apart around the loop (the set rotated by a uniform
  offset), and a burst running past the clip's end continues at its start.
  So the aligned track's distribution is invariant under a circular shift of
  whole frames: a shifted track (synchronisation pairs, av_loader) differs
  from an aligned one only in how it lines up with the flashes.
"""
from __future__ import annotations

import numpy as np

from vidjax.data import synthetic_render as sr

KINDS = ("fusion", "separation", "factorised", "which")
DIRECTION_NAMES = sr.MOTION_NAMES[:4]  # right, left, up, down
COLOUR_NAMES = ("red", "green", "blue", "yellow")
COLOURS = np.array([[225, 55, 50], [60, 205, 70], [70, 100, 235],
                    [225, 210, 50]], np.float64)
F0_BANDS = ((150.0, 250.0), (300.0, 500.0), (600.0, 1000.0),
            (1200.0, 2000.0))  # Hz, by colour class
SHAPE_NAMES = ("circle", "triangle", "square", "diamond")
HARMONICS = ((1,), (1, 2), (1, 3, 5), (1, 2, 3, 4))  # by shape class
F0_BINS = 10
HELD_OUT_BINS = (2, 5, 8)  # test voices
EVENTS_PER_OBJECT = 3
MIN_GAP = 2                # frames between any two onsets of a video
EVENT_SECONDS = (0.05, 0.15)
ATTACK, RELEASE, CLICK = 0.005, 0.010, 0.003  # seconds
SNR_DB = (10.0, 20.0)
PEAK = (0.3, 0.6)
SIZE = (2.5, 3.5)          # half-extent, px at 32 px
FLASH_GROW, FLASH_WHITE = 1.2, 0.6
SPEED = (0.3, 0.4)         # px / frame at 32 px
FACTORISED_NAMES = ("right_low", "right_high", "left_low", "left_high")
SIDE_NAMES = ("left", "right")


def class_names(kind: str) -> tuple:
  return {"factorised": FACTORISED_NAMES, "which": SIDE_NAMES}.get(
      kind, DIRECTION_NAMES)


def flip_permutation(kind: str) -> tuple:
  """Class j of a horizontally mirrored clip = class perm[j] of the clip
  (right <-> left; up, down and the pitch halves unchanged)."""
  return {"which": (1, 0), "factorised": (2, 3, 0, 1)}.get(kind,
                                                           (1, 0, 2, 3))


def _rng(seed: int, split: str, index: int, stream: int):
  split_id = sr.SPLIT_IDS.get(split, 100 + sum(map(ord, split)))
  return np.random.default_rng(
      np.random.SeedSequence([int(seed), split_id, int(index), 22, stream]))


def voice_f0(rng, colour: int, split: str) -> float:
  """f0 in the colour's band: one of 10 log bins (held-out bins in test)."""
  bins = (HELD_OUT_BINS if split == "test" else
          tuple(b for b in range(F0_BINS) if b not in HELD_OUT_BINS))
  u = (bins[int(rng.integers(len(bins)))] + rng.uniform()) / F0_BINS
  lo, hi = F0_BANDS[colour]
  return float(lo * (hi / lo) ** u)


def onset_frames(rng, num_frames: int, n_objects: int = 2,
                 per_object: int = EVENTS_PER_OBJECT,
                 gap: int = MIN_GAP, circular: bool = False) -> np.ndarray:
  """[n_objects, per_object] sorted onset frames, all distinct, >= gap
  apart, in 1..num_frames - 3 (uniform over such sets, then shuffled
  between the objects). `circular`: anywhere in 0..num_frames - 1, >= gap
  apart around the loop too (last to first through the seam), the whole
  set rotated by a uniform offset (its distribution is rotation-invariant)."""
  n = n_objects * per_object
  if circular:
    free = num_frames - n * (gap - 1)
    picks = np.sort(rng.choice(free, n, replace=False)) + np.arange(n) * (
        gap - 1)   # the wrap gap: num_frames - picks[-1] + picks[0] >= gap
    picks = (picks + int(rng.integers(num_frames))) % num_frames
  else:
    free = num_frames - 3 - (n - 1) * (gap - 1)
    picks = np.sort(rng.choice(free, n, replace=False)) + np.arange(n) * (
        gap - 1) + 1
  return np.sort(rng.permutation(picks).reshape(n_objects, per_object), 1)


def _path(rng, direction: int, num_frames: int, res: int, margin: float):
  """Centre x, y [T] (px, within a res/2 x res half) moving in `direction`."""
  half = res / 2
  v = rng.uniform(*SPEED) * res / 32.0
  travel = v * (num_frames - 1)
  t = np.arange(num_frames)
  extent = half if direction < 2 else res   # along the motion
  across = res if direction < 2 else half
  start = rng.uniform(margin, max(extent - margin - travel, margin))
  along = start + v * t
  if direction in (1, 2):                   # left, up: mirrored
    along = extent - along
  other = np.full(num_frames, rng.uniform(margin, across - margin))
  return (along, other) if direction < 2 else (other, along)


def plan(seed: int, split: str, index: int, *, kind: str = "fusion",
         num_frames: int = 16, res: int = 32, fps: float = 8.0) -> dict:
  """Every random choice of one example, without pixels or samples."""
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
  rng = _rng(seed, split, index, 0)
  label = int(index) % len(class_names(kind))
  if kind == "which":
    colours = [int(x) for x in rng.permutation(4)[:2]]
    shapes = [int(rng.integers(4)) for _ in range(2)]
    k = int(rng.integers(2))
    sounding = [i == k for i in range(2)]
    dirs = [int(rng.integers(4)) for _ in range(2)]
  elif kind == "fusion":
    c = int(rng.integers(4))
    colours, shapes = [c, c], [int(rng.integers(4))] * 2
    sounding = [False, False]
    k = int(rng.integers(2))
    sounding[k] = True
    others = [d for d in range(4) if d != label]
    dirs = [0, 0]
    dirs[k], dirs[1 - k] = label, others[int(rng.integers(3))]
  elif kind == "separation":
    colours = [int(x) for x in rng.permutation(4)[:2]]
    shapes = [int(x) for x in rng.permutation(4)[:2]]
    sounding = [True, True]
    dirs = [label, int(rng.choice([d for d in range(4) if d != label]))]
  else:
    k = int(rng.integers(2))
    sounding = [i == k for i in range(2)]
    colours = [int(rng.integers(4)) for _ in range(2)]
    colours[k] = 2 * (label % 2) + int(rng.integers(2))
    shapes = [int(rng.integers(4)) for _ in range(2)]
    dirs = [label // 2] * 2
  tint = np.clip(COLOURS[colours[0]] + rng.uniform(-20, 20, 3), 0, 255)
  circular = kind == "which"
  onsets = onset_frames(rng, num_frames, circular=circular)
  halves = rng.permutation(2)
  if kind == "which":  # the sounding twin in the label's half
    halves = np.array([label, 1 - label] if sounding[0] else
                      [1 - label, label])
  objects = []
  for i in range(2):
    size = rng.uniform(*SIZE) * res / 32.0
    margin = size * FLASH_GROW * 1.05 + 0.5
    x, y = _path(rng, dirs[i], num_frames, res, margin)
    colour = tint if (kind == "fusion" or i == 0) else np.clip(
        COLOURS[colours[i]] + rng.uniform(-20, 20, 3), 0, 255)
    durations = rng.uniform(*EVENT_SECONDS, EVENTS_PER_OBJECT)
    flash = np.zeros(num_frames, bool)
    flash[onsets[i]] = True
    objects.append(dict(
        colour=colours[i], shape=shapes[i], rgb=colour,
        direction=int(dirs[i]), sounding=bool(sounding[i]),
        f0=voice_f0(rng, colours[i], split), size=size,
        angle=rng.uniform(0, 2 * np.pi),
        cx=x + halves[i] * res / 2, cy=y, onsets=onsets[i],
        durations=durations, flash=flash,
        gain=rng.uniform(0.5, 1.0), phases=rng.uniform(0, 2 * np.pi, 8)))
  return dict(kind=kind, label=label, objects=objects, circular=circular,
              snr_db=float(rng.uniform(*SNR_DB)),
              peak=float(rng.uniform(*PEAK)),
              bg=rng.uniform(0.0, 60.0, 3))


def boxes(p: dict, res: int) -> np.ndarray:
  """[2, T, 4] float32 normalised x1, y1, x2, y2 of each object per frame
  (its half-extent x 1.05, x FLASH_GROW on flash frames), in [0, 1]."""
  out = []
  for o in p["objects"]:
    r = o["size"] * 1.05 * np.where(o["flash"], FLASH_GROW, 1.0)
    out.append(np.stack([o["cx"] - r, o["cy"] - r, o["cx"] + r,
                         o["cy"] + r], -1) / res)
  return np.clip(np.stack(out), 0.0, 1.0).astype(np.float32)


def render_video(p: dict, seed: int, split: str, index: int,
                 num_frames: int = 16, res: int = 32) -> np.ndarray:
  """uint8 [T, res, res, 3]."""
  rng = _rng(seed, split, index, 1)
  f32 = np.float32
  grid = np.arange(res, dtype=f32) + f32(0.5)
  bg = p["bg"].astype(f32) + rng.standard_normal((res, res, 3)).astype(
      f32) * f32(3.0)
  video = np.repeat(bg[None], num_frames, 0)
  for o in p["objects"]:
    # only the object's half: it never leaves it (alpha is 0 elsewhere)
    half = int(o["cx"][0] >= res / 2)
    cols = slice(int(np.floor(half * res / 2)),
                 int(np.ceil((half + 1) * res / 2)))
    size = (o["size"] * np.where(o["flash"], FLASH_GROW, 1.0)).astype(f32)
    dx = grid[None, None, cols] - o["cx"].astype(f32)[:, None, None]
    dy = grid[None, :, None] - o["cy"].astype(f32)[:, None, None]
    c, s = f32(np.cos(o["angle"])), f32(np.sin(o["angle"]))
    u = (c * dx + s * dy) / size[:, None, None]
    v = (-s * dx + c * dy) / size[:, None, None]
    alpha = np.clip(f32(0.5) - sr.shape_sdf(SHAPE_NAMES[o["shape"]], u, v)
                    * size[:, None, None], 0.0, 1.0)[..., None]
    white = np.where(o["flash"], FLASH_WHITE, 0.0)[:, None, None, None]
    rgb = (o["rgb"] + white * (255.0 - o["rgb"])).astype(f32)
    video[:, :, cols] += alpha * (rgb - video[:, :, cols])
  video += rng.standard_normal(video.shape).astype(f32) * f32(1.0)
  return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def voice(o: dict, sample_rate: int, fps: float, num_samples: int,
          rng, circular: bool = False) -> np.ndarray:
  """The object's sound alone (float64 [num_samples]), before scaling;
  `circular`: a burst past the end continues at sample 0."""
  out = np.zeros(num_samples)
  harm = [h for h in HARMONICS[o["shape"]]
          if h * o["f0"] < 0.45 * sample_rate]
  norm = sum(1.0 / h for h in harm)
  for f, d in zip(o["onsets"], o["durations"]):
    start = int(round(f * sample_rate / fps))
    n = int(round(d * sample_rate))
    t = np.arange(n) / sample_rate
    tone = sum(np.sin(2 * np.pi * h * o["f0"] * t + o["phases"][h % 8]) / h
               for h in harm) / norm
    env = np.minimum(t / ATTACK, 1.0) * np.exp(-3.0 * t / d)
    env *= np.clip((d - t) / RELEASE, 0.0, 1.0)
    nc = int(round(CLICK * sample_rate))
    click = np.zeros(n)
    click[:nc] = rng.uniform(-1, 1, nc) * np.exp(-np.arange(nc) / (nc / 3))
    burst = tone * env + 0.5 * click
    if circular:
      np.add.at(out, (start + np.arange(n)) % num_samples, burst)
    else:
      seg = out[start:start + n]          # a view: adds in place
      seg += burst[:len(seg)]
  return out * o["gain"]


def render_audio(p: dict, seed: int, split: str, index: int,
                 sample_rate: int = 16000, fps: float = 8.0,
                 num_frames: int = 16):
  """(mixture int16 [N], stems int16 [2, N]) with mixture == stems.sum(0)
  + noise exactly (int32 arithmetic, no clipping: peaks <= 0.6 x 32767)."""
  rng = _rng(seed, split, index, 2)
  n = int(round(num_frames * sample_rate / fps))
  circular = p.get("circular", False)
  stems = np.stack([voice(o, sample_rate, fps, n, rng, circular)
                    if o["sounding"]
                    else np.zeros(n) for o in p["objects"]])
  power = np.mean(stems.sum(0) ** 2)
  noise = rng.standard_normal(n)
  noise *= np.sqrt(power / 10 ** (p["snr_db"] / 10) / np.mean(noise ** 2))
  scale = p["peak"] / np.abs(stems.sum(0) + noise).max()
  stems_q = np.round(stems * scale * 32767.0).astype(np.int32)
  noise_q = np.round(noise * scale * 32767.0).astype(np.int32)
  mix = stems_q.sum(0) + noise_q
  assert np.abs(mix).max() < 32767
  return mix.astype(np.int16), stems_q.astype(np.int16)


def render(seed: int, split: str, index: int, *, kind: str = "fusion",
           num_frames: int = 16, res: int = 32, fps: float = 8.0,
           sample_rate: int = 16000):
  """-> (video uint8 [T, res, res, 3], mixture int16 [N], stems int16
  [2, N], the plan)."""
  p = plan(seed, split, index, kind=kind, num_frames=num_frames, res=res,
           fps=fps)
  video = render_video(p, seed, split, index, num_frames, res)
  mix, stems = render_audio(p, seed, split, index, sample_rate, fps,
                            num_frames)
  return video, mix, stems, p
