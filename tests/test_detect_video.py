"""tools/detect_video.py on a rendered synthetic_ava test video with the
session's tiny detection run (tests/detection_runs.py): the boxes and frames
it reports are the ground truth's, its scores are the run's own evaluation
(eval/test_step4/detections.csv) up to the JPEG storage of decoded frames,
and the drawn video has every frame with the boxes' outlines where the boxes
are."""
import glob
import os

import av
import numpy as np
import pytest
from PIL import Image

from tests.detection_runs import tiny
from tools import detect_video as dv
from vidjax import inference
from vidjax.errors import VidjaxError
from vidjax.tasks.detection import ava_io, data as data_lib
from vidjax.viz import annotate

VIDEO_ID = "test_000000"
FPS = 8  # synthetic_ava: keyframe_every frames per second


@pytest.fixture(scope="module")
def rendered(tiny_detection_run, tmp_path_factory):
  """(run, the video file, its frames, the test split's GT CSV)."""
  run = tiny_detection_run
  ds = data_lib.load(tiny(run.data_dir).dataset)
  reader = ds["test"].videos
  frames = reader.frames(VIDEO_ID, np.arange(reader.num_frames(VIDEO_ID)))
  path = str(tmp_path_factory.mktemp("video") / f"{VIDEO_ID}.mp4")
  with av.open(path, "w") as out:  # lossless RGB H.264
    stream = out.add_stream("libx264rgb", rate=FPS)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt, stream.options = "rgb24", {"crf": "0"}
    for f in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(f, "rgb24")):
        out.mux(packet)
    for packet in stream.encode():
      out.mux(packet)
  return run, path, frames, ds["files"]["test_csv"], ds["class_names"]


def _gt_boxes(csv_path):
  boxes = {}
  for r in ava_io.read_csv(csv_path):
    if r.video_id == VIDEO_ID:
      boxes.setdefault(r.timestamp, set()).add(r.box)
  return boxes


def test_boxes_frames_and_scores_are_the_ground_truth_and_the_evaluation(
    rendered, tmp_path):
  run, video, frames, gt_csv, names = rendered
  lines = []
  dets = dv.detect_video(run.work, video, boxes=gt_csv,
                         out=str(tmp_path / "png"), threshold=0.0, top_k=2,
                         csv=str(tmp_path / "res.csv"), log=lines.append)
  gt = _gt_boxes(gt_csv)
  got = {}
  for d in dets:
    got.setdefault(d.timestamp, set()).add(d.box)
    assert d.frame == d.timestamp * FPS and d.box_score == 1.0
  assert got == gt and len(dets) == sum(len(b) for b in gt.values()) >= 4
  # the run's evaluation scored the same boxes of the same keyframes
  evaluated = {(r.timestamp, r.box, r.action): r.extra for r in ava_io.read_csv(
      os.path.join(run.work, "eval", "test_step4", "detections.csv"))
               if r.video_id == VIDEO_ID}
  table = lines[1].splitlines()
  assert len(table) == 1 + len(dets)
  for d, line in zip(dets, table[1:]):
    want = np.array([evaluated[(d.timestamp, d.box, c)]
                     for c in range(1, len(names) + 1)])
    np.testing.assert_allclose(d.probs, want, atol=0.03)
    # the printed rows: second, frame, box, then the top-2 labels, best first
    cells = line.split()
    assert [int(cells[0]), int(cells[1])] == [d.timestamp, d.frame]
    np.testing.assert_allclose([float(v) for v in cells[2:6]], d.box,
                               atol=5e-4)
    top = [names.index(cells[7]), names.index(cells[9].rstrip(","))]
    assert top == list(np.argsort(-d.probs)[:2])
    assert want[top[0]] >= want.max() - 0.03  # the evaluation's best label
  rows = ava_io.read_csv(str(tmp_path / "res.csv"))
  assert len(rows) == len(dets) * len(names)
  # the drawing: every frame; keyframe boxes outlined in their colours, on
  # the frames of their second only; the rest of the frame untouched
  pngs = sorted(glob.glob(str(tmp_path / "png" / "frame_*.png")))
  assert len(pngs) == len(frames) == 32
  k = -(-annotate.MIN_SHORT // frames.shape[1])  # pixel repetition
  decoded = np.asarray(inference.decode_file(video, run.config.dataset)[0])
  for f, png in enumerate(pngs):
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (32 * k, 32 * k, 3)
    plain = decoded[f].repeat(k, 0).repeat(k, 1)
    near = [d for d in dets if abs(d.frame - f) <= FPS / 2]
    near = [d for d in near if d.frame == min(
        near, key=lambda x: (abs(x.frame - f), x.frame)).frame]
    changed = np.any(image != plain, -1)
    if not near:
      assert not changed.any(), f
      continue
    drawn = np.zeros_like(changed)
    for i, d in enumerate(near):
      x1, y1, x2, y2 = dv.pixel_box(d.box, *image.shape[:2])
      edge = np.zeros_like(changed)
      edge[[y1, y2], x1:x2 + 1] = edge[y1:y2 + 1, [x1, x2]] = True
      ours = np.all(image == dv.COLORS[i], -1)
      assert (ours & edge).sum() >= 0.5 * edge.sum(), (f, i)  # outlined
      drawn[y1:y2 + 1, x1:x2 + 1] = True
    assert changed.any() and not (changed & ~drawn).any(), f


def test_whole_frame_boxes_mp4_and_errors(rendered, tmp_path):
  run, video, frames, gt_csv, _ = rendered
  out = str(tmp_path / "a.mp4")
  dets = dv.detect_video(run.work, video, out=out, log=lambda *a: None)
  assert [(d.timestamp, d.frame, d.box) for d in dets] == [
      (t, t * FPS, (0.0, 0.0, 1.0, 1.0)) for t in range(4)]
  with av.open(out) as container:
    assert sum(1 for _ in container.decode(video=0)) == len(frames)
  with pytest.raises(VidjaxError) as e:
    dv.detect_video(run.work, video, boxes=gt_csv, video_id="nope")
  assert "\n" not in str(e.value) and "no rows of video id 'nope'" in str(
      e.value)
  with pytest.raises(VidjaxError, match="--threshold=2"):
    dv.detect_video(run.work, video, threshold=2.0)
