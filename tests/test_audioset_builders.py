"""AudioSet / VGGSound builders over tiny trees of PyAV-muxed clips: the CSV
quirks (comment lines, quoted comma lists, spaces after commas, a header or
none), the clip-file layouts, multi- vs single-label targets, a missing, a
corrupt and a silent clip in the counted report, and audio and frames
aligned to the segment (a click at the white frame's time)."""
import os

import av
import ml_collections
import numpy as np
import pytest

from vidjax.data import audioset
from vidjax.errors import VidjaxError

FPS, SR_IN, SECONDS, WHITE_T = 25, 48000, 3.0, 2.0
CLASSES = ('index,mid,display_name\n'
           '0,/m/09x0r,"Speech"\n'
           '1,/m/05zppz,"Male speech, man speaking"\n'
           '2,/t/dd00088,"Gush"\n')
SEGMENTS = ('# Segments csv created Sun Mar  5 10:54:31 2017\n'
            '# num_ytids=4, num_segs=4, num_unique_labels=3, '
            'num_positive_labels=6\n'
            '# YTID, start_seconds, end_seconds, positive_labels\n'
            'A_b-C_d-E_f, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
            'untrimmed00, 1.000, 11.000, "/m/05zppz"\n'
            'missingclip, 0.000, 10.000, "/m/09x0r"\n'
            'corruptfile, 0.000, 10.000, "/m/09x0r"\n'
            'badlabelrow, 0.000, 10.000, "/m/nope"\n')
EVAL = ('# Segments csv created Sun Mar  5 10:54:31 2017\n'
        '# num_ytids=2\n'
        '# YTID, start_seconds, end_seconds, positive_labels\n'
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/05zppz,/t/dd00088"\n'
        'noaudiofile, 0.000, 10.000, "/t/dd00088"\n')


def mux(path, with_audio=True):
  """3 s of 64x48 video at 25 fps, black but for the frame at WHITE_T, and
  (AAC, 48 kHz) silence with a click starting at WHITE_T."""
  total = int(SECONDS * SR_IN)
  wave = np.zeros(total, np.float32)
  s0 = int(WHITE_T * SR_IN)
  wave[s0:s0 + 48] = 0.8
  with av.open(str(path), "w") as c:
    v = c.add_stream("mpeg4", rate=FPS)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    a = c.add_stream("aac", rate=SR_IN) if with_audio else None
    if a is not None:
      a.layout = "mono"
    for k in range(int(SECONDS * FPS)):
      img = np.full((48, 64, 3), 255 if k == WHITE_T * FPS else 0, np.uint8)
      frame = av.VideoFrame.from_ndarray(img, format="rgb24")
      frame.pts = k
      for p in v.encode(frame):
        c.mux(p)
    for p in v.encode():
      c.mux(p)
    if a is not None:
      step = a.codec_context.frame_size or 1024
      for i in range(0, total, step):
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(wave[None, i:i + step]), format="fltp",
            layout="mono")
        af.sample_rate, af.pts = SR_IN, i
        for p in a.encode(af):
          c.mux(p)
      for p in a.encode():
        c.mux(p)
  return str(path)


def _cfg(tmp_path, name, **kw):
  d = dict(name=name, manual_dir=str(tmp_path / "clips"),
           data_dir=str(tmp_path / "tfds"), fps=4.0, resize_short=32,
           clip_seconds=2.5, csv="", test_csv="", class_labels="",
           audio=dict(sample_rate=16000, missing="silence"))
  return ml_collections.ConfigDict({**d, **kw})


@pytest.fixture
def audioset_tree(tmp_path):
  clips = tmp_path / "clips"
  (clips / "train").mkdir(parents=True)
  (clips / "eval").mkdir()
  for name, text in (("class_labels_indices.csv", CLASSES),
                     ("balanced_train_segments.csv", SEGMENTS),
                     ("eval_segments.csv", EVAL)):
    (clips / name).write_text(text)
  mux(clips / "train" / "A_b-C_d-E_f_30.mp4")
  mux(clips / "train" / "untrimmed00.mp4")
  (clips / "train" / "corruptfile_0.mp4").write_bytes(b"\x00not a video" * 9)
  mux(clips / "eval" / "--PJHxphWEs_30.000_40.000.mp4")
  mux(clips / "eval" / "noaudiofile_000000.mp4", with_audio=False)
  (clips / "eval" / "notes.txt").write_text("not a clip")
  return tmp_path


def _click(audio):
  hot = np.flatnonzero(np.abs(audio.astype(np.float32)) > 0.2 * 32767)
  return int(hot[0]) if len(hot) else None


def _white(video):
  return [int(k) for k in np.flatnonzero(video.mean((1, 2, 3)) > 128)]


def test_audioset_csv_quirks_labels_and_report(audioset_tree):
  listed = audioset.list_segments(_cfg(audioset_tree, "audioset",
                                       untrimmed=True))
  assert listed.class_names == ["Speech", "Male speech, man speaking", "Gush"]
  assert listed.mids == ["/m/09x0r", "/m/05zppz", "/t/dd00088"]
  assert [m[0] for m in listed.missing] == ["missingclip_0"]
  assert [w for w, _ in listed.bad_rows] == [
      "balanced_train_segments.csv:8"]
  data = audioset.load(_cfg(audioset_tree, "audioset", untrimmed=True),
                       verbose=False)
  assert data.multilabel and len(data.train) == 2 and len(data.test) == 2
  ids = [data.train[i]["clip_id"].decode() for i in range(2)]
  assert ids == ["A_b-C_d-E_f_30", "untrimmed00_1"]
  assert data.train[0]["labels"].tolist() == [1, 0, 1]
  assert data.train[1]["labels"].tolist() == [0, 1, 0]
  assert data.test[0]["labels"].tolist() == [1, 1, 1]
  assert data.train[0]["label"] == 0 and data.test[1]["label"] == 2
  r = data.report
  assert [os.path.basename(p) for p, _ in r.skipped] == [
      "corruptfile_0.mp4", "balanced_train_segments.csv:8"]
  assert "cannot be opened" in r.skipped[0][1]
  assert "unknown label(s) ['/m/nope']" in r.skipped[1][1]
  assert [m for m, _ in r.missing] == ["missingclip_0"]
  assert [os.path.basename(p) for p, _ in r.no_audio] == [
      "noaudiofile_000000.mp4"]
  text = open(r.where).read()
  assert "1 listed videos missing" in text and "2 videos skipped" in text
  assert "1 videos with no usable audio" in text
  # silence for the clip with no audio track; it is kept
  assert not data.test[1]["has_audio"] and not data.test[1]["audio"].any()
  # a second load reads the cached build and its saved report
  again = audioset.load(_cfg(audioset_tree, "audioset", untrimmed=True),
                        verbose=False)
  assert again.report.skipped == r.skipped
  assert again.builder.data_dir == data.builder.data_dir


def test_frames_and_audio_follow_the_segment(audioset_tree):
  data = audioset.load(_cfg(audioset_tree, "audioset", untrimmed=True),
                       verbose=False)
  trimmed, cut = data.train[0], data.train[1]
  for ex in (trimmed, cut):
    assert ex["video"].shape == (10, 32, 32, 3)      # 2.5 s at 4 fps
    assert ex["audio"].shape == (40000,) and ex["has_audio"]
  assert trimmed["num_frames"] == 10
  # the cut segment runs 0.5 s past the 3 s video: 8 real frames, the last
  # repeated, and silence after the track
  assert cut["num_frames"] == 8
  np.testing.assert_array_equal(cut["video"][8:], cut["video"][[7, 7]])
  assert not cut["audio"][32000 + 800:].any()
  # trimmed file: the segment is the file; white frame and click at 2.0 s
  assert _white(trimmed["video"]) == [8]
  assert abs(_click(trimmed["audio"]) - 32000) <= 2
  # untrimmed: the segment [1, 11) s is cut from it: both at 1.0 s
  assert _white(cut["video"]) == [4]
  assert abs(_click(cut["audio"]) - 16000) <= 2


def test_vggsound_single_label_layouts_and_no_header(tmp_path):
  clips = tmp_path / "clips"
  clips.mkdir()
  (clips / "vggsound.csv").write_text(
      '---g-f_I2yQ,1,people marching,test\n'
      '--0PQM4-hqg,30,waterfall burbling,train\n'
      'abcdefghijk,0,"male speech, man speaking",train\n'
      'zzzzzzzzzzz,5,people marching,validate\n')
  mux(clips / "---g-f_I2yQ_000001.mp4")
  mux(clips / "--0PQM4-hqg_000030.mp4")
  mux(clips / "Yabcdefghijk.mp4")
  data = audioset.load(_cfg(tmp_path, "vggsound"), verbose=False)
  assert data.class_names == ["male speech, man speaking",
                              "people marching", "waterfall burbling"]
  assert not data.multilabel and data.mids == []
  assert [data.train[i]["label"] for i in range(2)] == [2, 0]
  assert data.test[0]["label"] == 1
  assert data.train[1]["labels"].tolist() == [1, 0, 0]
  assert [w for w, _ in data.report.skipped] == ["vggsound.csv:4"]
  assert abs(_click(data.train[0]["audio"]) - 32000) <= 2


def test_bad_settings_name_the_key(audioset_tree, tmp_path):
  with pytest.raises(VidjaxError, match="config.dataset.manual_dir"):
    audioset.list_segments(_cfg(tmp_path / "nowhere", "audioset"))
  with pytest.raises(VidjaxError, match="config.dataset.test_csv"):
    audioset.list_segments(_cfg(audioset_tree, "audioset",
                                test_csv="absent.csv"))
  with pytest.raises(VidjaxError, match="config.dataset.name"):
    audioset.list_segments(_cfg(audioset_tree, "kinetics_sounds"))
  for bad, key in ((dict(fps=-1.0), "fps"),
                   (dict(audio=dict(missing="drop")), "audio.missing")):
    with pytest.raises(VidjaxError, match=f"config.dataset.{key}="):
      audioset.ClipSettings.from_config(ml_collections.ConfigDict(bad))
  refuse = _cfg(audioset_tree, "audioset", untrimmed=True)
  refuse.audio.missing = "refuse"
  with pytest.raises(VidjaxError, match="noaudiofile.*audio.missing="):
    audioset.load(refuse, verbose=False)


def test_prepare_data_builds_and_reports(audioset_tree, capsys):
  from tools import prepare_data
  report = prepare_data.prepare(_cfg(audioset_tree, "audioset",
                                     untrimmed=True))
  assert report.num_videos == {"train": 2, "test": 2}
  out = capsys.readouterr().out
  assert "audioset: 2 train videos, 2 test videos" in out
  assert "missingclip_0" in out and "corruptfile_0.mp4" in out


def test_av_loader_batches_an_audioset_build(audioset_tree):
  from vidjax.data import av_loader
  cfg = _cfg(audioset_tree, "audioset", untrimmed=True, sync=True,
             sync_min_shift=0.5)
  data = av_loader.load(cfg)
  assert data.multilabel and data.num_classes == 3 and data.fps == 4.0
  assert data.sample_rate == 16000 and len(data.report.missing) == 1
  spec = av_loader.AVSpec.from_config(cfg, data.sample_rate, duration=2.5)
  ev = av_loader.EvalLoader(data.test, spec, batch_size=4, seed=0)
  b = ev.batch(0)
  assert b["video"].shape == (4, 10, 32, 32, 3)
  assert b["audio"].shape == (4, 40000) and "stems" not in b
  np.testing.assert_array_equal(b["labels"], [[1, 1, 1]] * 2 + [[0, 0, 1]] * 2)
  assert b["aligned"].tolist() == [1, 0, 1, 0] and b["valid"].all()
  np.testing.assert_allclose(b["audio"][0], data.test.source[0]["audio"]
                             / 32767.0, rtol=1e-6)
  np.testing.assert_allclose(b["audio"][1], np.roll(b["audio"][0],
                                                    b["shift"][1]))
  assert 8000 <= b["shift"][1] <= 32000
  tb = av_loader.TrainLoader(data.train, spec, seed=1, global_batch=4)
  for k, v in tb.batch(2).items():
    np.testing.assert_array_equal(v, tb.batch(2)[k])
