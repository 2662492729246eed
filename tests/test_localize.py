"""tools.localize on a rendered synthetic_untrimmed video, with a tiny
two-stage run trained through `python -m vidjax.main`'s loop (so the
two-stage config's evaluation is covered too; conftest's session fixture,
tests/localization_runs.py)."""
import json
import os

import av
import numpy as np
import pytest

from tools import localize
from vidjax.data import untrimmed_render
from vidjax.errors import VidjaxError

RENDER = dict(min_frames=64, max_frames=96, max_duration=24)


@pytest.fixture(scope="module")
def two_stage_run(tiny_two_stage_run):
  return tiny_two_stage_run.work, tiny_two_stage_run.final


def write_mp4(path, frames, fps=8):
  with av.open(str(path), "w") as c:
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    for f in frames:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)
  return str(path)


def test_two_stage_run_reports_proposal_recall(two_stage_run):
  _, final = two_stage_run
  assert 0.0 <= final["eval/ar@10_tiou0.5"] <= 1.0
  assert 0.0 <= final["eval/average_map"] <= 1.0


def test_localize_a_rendered_video(two_stage_run, tmp_path):
  work, _ = two_stage_run
  frames, segs, labels = untrimmed_render.render(0, "test", 0, **RENDER)
  video = write_mp4(tmp_path / "test_000000.mp4", frames)
  duration = len(frames) / 8.0
  gt = tmp_path / "gt.json"
  gt.write_text(json.dumps({"database": {"test_000000": {
      "subset": "validation", "duration": duration, "annotations": [
          {"segment": [s / 8.0, e / 8.0], "label": "grow"}
          for s, e in segs]}}}))
  out, png, lines = tmp_path / "o.json", tmp_path / "t.png", []
  kept = localize.localize(work, video, str(out), str(png), str(gt),
                           threshold=0.0, top_k=7, log=lines.append)
  assert 1 <= len(kept) <= 7
  scores = [r["score"] for r in kept]
  assert scores == sorted(scores, reverse=True)  # best first
  for r in kept:  # seconds, inside the video
    s, e = r["segment"]
    assert 0.0 <= s < e <= duration + 1e-6
  written = json.load(open(out))["results"]["test_000000"]
  np.testing.assert_allclose([r["segment"] for r in written],
                             [r["segment"] for r in kept], rtol=1e-6)
  table = lines[1].splitlines()
  assert table[0].split()[:4] == ["start", "s", "end", "s"]
  assert len(table) == len(kept) + 1
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # a threshold above every score keeps nothing
  none = localize.localize(work, video, threshold=1.01, log=lambda *a: None)
  assert none == []


def test_bad_video_is_one_line_naming_it(two_stage_run, tmp_path):
  work, _ = two_stage_run
  bad = tmp_path / "broken.mp4"
  bad.write_bytes(b"not a video at all" * 10)
  with pytest.raises(VidjaxError) as e:
    localize.localize(work, str(bad), log=lambda *a: None)
  assert "\n" not in str(e.value) and str(bad) in str(e.value)
  with pytest.raises(VidjaxError, match="not a localization"):
    os.makedirs(tmp_path / "cls", exist_ok=True)
    (tmp_path / "cls" / "config.json").write_text('{"task": "classification"}')
    localize.localize(str(tmp_path / "cls"), str(bad), log=lambda *a: None)
