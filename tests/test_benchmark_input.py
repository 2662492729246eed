"""tools/benchmark_input: its JSON line, equal clip counts and shapes on both
sides, and that the plain PyAV loop decodes the frames the pipeline stores.
Speed is not asserted (the lead measures it on an idle machine)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("skvideo")

from tools import benchmark_input  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_json_line(args, tmp_path) -> dict:
  """Runs the tool with `args` (+ a temporary data dir); its one JSON line."""
  cmd = [sys.executable, "-m", "tools.benchmark_input", *args,
         f"--data_dir={tmp_path / 'tfds'}"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
  assert len(lines) == 1, out.stdout
  return json.loads(lines[0])


def test_tool_prints_one_json_line_with_matching_clips(tmp_path):
  row = _one_json_line([
      "--config=configs/single_frame.py", "--batches=2", "--warmup=1",
      "--sample_clips=carphone_pristine", "--piece_frames=24",
      "--config.batch_size=4", "--config.dataset.num_frames=4",
      "--config.dataset.num_workers=2", "--config.dataset.prefetch=2"],
      tmp_path)
  # carphone: 120 frames -> 5 pieces of 24; every 5th per class is a test one.
  assert row["videos"] == 4
  assert row["pipeline_clips"] == row["baseline_clips"] == 2 * 4
  assert row["clip_shape"] == row["baseline_clip_shape"] == [4, 32, 32, 3]
  # 176x144 at short side 32: the small defaults store real videos at their
  # crop (configs/default.py synthetic_recipe, issue #15).
  assert row["stored_frame_size"] == [32, 39]
  for key in ("pipeline_clips_per_sec", "baseline_clips_per_sec", "speedup"):
    assert row[key] > 0
  assert row["speedup"] == pytest.approx(
      row["pipeline_clips_per_sec"] / row["baseline_clips_per_sec"], rel=0.01)


def test_plain_loop_decodes_the_frames_the_pipeline_stores(tmp_path):
  from configs import default
  from vidjax.data import datasets
  videos = tmp_path / "videos"
  counts = benchmark_input.make_test_videos(
      str(videos), ("bikes",), piece_frames=40, max_per_class=2)
  assert counts == {"bikes": 2}
  config = default.get_config().dataset
  config.name, config.path = "video_folder", str(videos)
  config.data_dir = str(tmp_path / "tfds")
  config.test_fraction = 0.5  # 2 videos: 1 train, 1 test
  data = datasets.load(config)
  ex = data.train[0]
  video, size = ex["video"], tuple(ex["video"].shape[1:3])
  assert len(video) == 40 and size == (128, 301)  # 640x272, short side 128
  idx = np.array([0, 7, 8, 21, 39])
  plain = benchmark_input.decode_frames(
      str(videos / ex["path"]), idx, size).astype(np.float32)
  stored = np.asarray(video, np.float32)
  assert plain.shape == (5,) + size + (3,)
  # [5, 40] mean abs difference to every stored frame: each decoded frame is
  # closest to the stored frame of its own index, within JPEG (q 90) loss.
  dist = np.abs(plain[:, None] - stored[None]).mean(axis=(2, 3, 4))
  np.testing.assert_array_equal(dist.argmin(1), idx)
  assert dist[np.arange(5), idx].max() < 3.0


def test_paper_mode_prints_the_worker_figures_in_one_line(tmp_path):
  """--mode=paper (issue #16): bare decode limit, 1 and 2 worker processes
  and their ratios, on the same timed clips, in one JSON line."""
  row = _one_json_line([
      "--config=configs/vivit_factorized.py", "--mode=paper",
      "--storage_short=64", "--crop=48", "--frames=4", "--stride=2",
      "--batches=2", "--paper_batch=2", "--processes=1,2",
      "--sample_clips=carphone_pristine", "--piece_frames=24"], tmp_path)
  assert row["mode"] == "paper" and row["clip_shape"] == [4, 48, 48, 3]
  assert row["stored_frame_size"] == [64, 78]  # 176x144 at short side 64
  assert row["timed_clips"] == 2 * 2
  rates = {k: row[k] for k in ("bare_clips_per_sec", "bare_warp_clips_per_sec",
                               "workers_1_clips_per_sec",
                               "workers_2_clips_per_sec")}
  assert all(v > 0 for v in rates.values()), rates
  assert row["one_worker_vs_bare"] == pytest.approx(
      rates["workers_1_clips_per_sec"] / rates["bare_clips_per_sec"], rel=0.01,
      abs=1e-3)
  assert row["two_vs_one"] == pytest.approx(
      rates["workers_2_clips_per_sec"] / rates["workers_1_clips_per_sec"],
      rel=0.01, abs=1e-3)
