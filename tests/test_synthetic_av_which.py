"""synthetic_av's `which` build (issue #22: "which of the two visible objects
is sounding"): the label is the sounding object's side, neither modality
alone tells it (together: voice <-> look, onsets <-> flashes), the events are circular (so an aligned track and a
circularly shifted one look alike to the audio alone), and the loader's
sync shifts and mirroring keep what they claim."""
import ml_collections
import numpy as np

from vidjax.data import av_loader
from vidjax.data import av_render as ar

SR, FPS, T = 16000, 8.0, 16
PER_FRAME = int(SR / FPS)


def _side(o):
  return int(o["cx"][0] >= 16)


def test_label_is_the_sounding_objects_side_and_looks_do_not_tell_it():
  n = 800
  labels = np.zeros(2)
  stats = {True: [], False: []}
  for i in range(n):
    p = ar.plan(3, "train", i, kind="which")
    a, b = p["objects"]
    assert a["colour"] != b["colour"]
    assert a["sounding"] != b["sounding"] and _side(a) != _side(b)
    snd = a if a["sounding"] else b
    assert p["label"] == _side(snd) == i % 2
    labels[p["label"]] += 1
    for o in (a, b):
      stats[o["sounding"]].append((o["onsets"].mean(), o["size"],
                                   o["direction"], o["flash"].sum(),
                                   o["colour"], o["shape"]))
  np.testing.assert_array_equal(labels, n // 2)
  on, off = np.array(stats[True]), np.array(stats[False])
  for j in range(on.shape[1]):   # the sounding object's marginals = silent's
    sd = max(off[:, j].std(), 1e-6)
    assert abs(on[:, j].mean() - off[:, j].mean()) < 0.15 * sd + 1e-9


def test_events_are_circular_and_rotation_invariant():
  counts = np.zeros(T)
  for i in range(600):
    p = ar.plan(3, "train", i, kind="which")
    frames = np.sort(np.concatenate([o["onsets"] for o in p["objects"]]))
    assert len(set(frames.tolist())) == 6
    gaps = np.diff(np.concatenate([frames, [frames[0] + T]]))
    assert gaps.min() >= ar.MIN_GAP          # around the loop too
    counts[frames] += 1
  # every frame (0 and T-1 too) starts events equally often (6 x 600 / 16
  # = 225 each; 4 binomial sd ~ 56)
  assert np.abs(counts - 225).max() < 60, counts


def test_a_burst_past_the_end_continues_at_the_start():
  for i in range(200):
    _, _, stems, p = ar.render(3, "train", i, kind="which")
    for k, o in enumerate(p["objects"]):
      if not o["sounding"]:
        continue
      last = [d for f, d in zip(o["onsets"], o["durations"])
              if f == T - 1 and d * SR > PER_FRAME + 200]
      if last:
        spill = int(last[0] * SR) - PER_FRAME   # samples past the end
        head = np.abs(stems[k][:spill - 100].astype(np.float64))
        assert head.max() > 0     # the wrapped tail
        return
  raise AssertionError("no burst ran past the clip's end in 200 clips")


def _energy(mix):
  return (np.asarray(mix, np.float64).reshape(T, -1) ** 2).sum(1)


def _cfg(tmp_path, **kw):
  d = dict(name="synthetic_av", config="which", data_dir=str(tmp_path),
           train_examples=16, test_examples=120, sync=True)
  return ml_collections.ConfigDict({**d, **kw})


def test_audio_alone_does_not_tell_a_shifted_track_but_flashes_do(tmp_path):
  """On the loader's test pairs: "shifted iff an event starts in frame 0,
  T-2 or T-1" (the cue the `fusion` build left, 0.79 there) is at chance;
  "aligned iff the 3 loudest frames are flash frames" is right."""
  data = av_loader.load(_cfg(tmp_path))
  spec = av_loader.AVSpec.from_config(_cfg(tmp_path))
  edge, match = [], []
  for b in av_loader.EvalLoader(data.test, spec, 60, seed=0).iterate():
    for r in np.flatnonzero(b["valid"]):
      e = _energy(b["audio"][r])
      starts = set(np.flatnonzero(e > 5 * np.median(e)).tolist())
      shifted = not b["aligned"][r]
      edge.append(bool(starts & {0, T - 2, T - 1}) == shifted)
      flashes = set(np.flatnonzero(
          data.test["flash"][b["index"][r]].any(0)).tolist())
      match.append((set(np.argsort(e)[-3:].tolist()) <= flashes) != shifted)
  assert len(edge) == 240
  assert abs(np.mean(edge) - 0.5) <= 0.1, np.mean(edge)
  assert np.mean(match) >= 0.97, np.mean(match)


def test_shifts_onto_flashes_are_not_drawn():
  frames = (32000, T, 2, T - 2)
  onsets, flashes = np.array([1, 5, 9]), np.array([1, 5, 9, 3, 7, 11])
  # k = 2 puts 1, 5, 9 on 3, 7, 11: the silent twin's flashes
  seen = {av_loader.draw_shift(np.random.default_rng(s), frames,
                               (onsets, flashes)) // PER_FRAME
          for s in range(400)}
  assert 2 not in seen and seen == set(range(3, 15))
  # nothing to leave out: the very draw made without timing
  for s in range(50):
    far = (np.array([0]), np.array([0]))
    assert av_loader.draw_shift(np.random.default_rng(s), frames, far) == (
        av_loader.draw_shift(np.random.default_rng(s), frames))


def test_mirrored_rows_swap_the_side_label_boxes_and_directions(tmp_path):
  data = av_loader.load(_cfg(tmp_path, sync=False, test_examples=2),
                        skip=("stems",))
  assert "stems" not in data.train.arrays
  assert data.flip_permutation == (1, 0)
  spec = av_loader.AVSpec.from_config(_cfg(tmp_path, sync=False, hflip=True))
  loader = av_loader.TrainLoader(data.train, spec, 3, 16,
                                 flip_permutation=data.flip_permutation)
  plain = av_loader.AVSpec()
  flipped = 0
  for step in range(3):
    b = loader.batch(step)
    ref = av_loader.make_batch(data.train, b["index"], plain)
    for r, f in enumerate(loader.flips(step)):
      np.testing.assert_array_equal(
          b["video"][r], ref["video"][r][:, :, ::-1] if f else
          ref["video"][r])
      snd = int(np.argmax(b["sounding"][r]))
      centre = b["boxes"][r, snd, :, [0, 2]].mean()
      assert b["label"][r] == int(centre > 0.5)   # the sounding side
      assert b["label"][r] == (1 - ref["label"][r] if f else ref["label"][r])
      swap = np.array([1, 0, 2, 3])
      np.testing.assert_array_equal(
          b["direction"][r], swap[ref["direction"][r]] if f else
          ref["direction"][r])
      flipped += int(f)
  assert 0 < flipped < 48
