"""vidjax/tb_events.py: TensorBoard event files without TensorFlow, read back
by TensorFlow's own reader (which checks every record's CRC) and compared
with what `tf.summary` writes for the same calls."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vidjax import tb_events
from vidjax.metrics import MetricWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _events(tb_dir):
  """[(step, tag, plugin name or '', value as numpy)] in file order."""
  import tensorflow as tf
  (name,) = os.listdir(tb_dir)
  assert name.startswith("events.out.tfevents.") and name.endswith(".v2")
  out = []
  for event in tf.compat.v1.train.summary_iterator(os.path.join(tb_dir, name)):
    if event.file_version:
      assert event.file_version == "brain.Event:2"
    for v in event.summary.value:
      value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else None
      out.append((event.step, v.tag, v.metadata.plugin_data.plugin_name,
                  value))
  return out


def test_crc32c_check_values():
  # RFC 3720 (iSCSI) B.4 and the usual check value.
  assert tb_events.crc32c(b"123456789") == 0xE3069283
  assert tb_events.crc32c(bytes(32)) == 0x8A9136AA
  assert tb_events.crc32c(b"\xff" * 32) == 0x62A8AB43


def test_metric_writer_events_read_back_like_tf_summary(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
  ours = MetricWriter(str(tmp_path / "ours"))
  ours.write(1, {"train/loss": 0.5, "train/nan": float("nan")})
  ours.write(2, {"train/loss": 0.25})
  ours.write_image(0, "sample", image)
  ours.write_text(0, "config", "| a | b |")
  ours.write_hparams({"lr": 0.1, "model": "vit"})
  ours.close()
  got = _events(str(tmp_path / "ours" / "tb"))
  # TensorFlow's writer, the same calls.
  import tensorflow as tf
  from tensorboard.plugins.hparams import api as hp
  theirs = tf.summary.create_file_writer(str(tmp_path / "tf"))
  with theirs.as_default():
    tf.summary.scalar("train/loss", 0.5, step=1)
    tf.summary.scalar("train/loss", 0.25, step=2)
    tf.summary.image("sample", image[None], step=0)
    tf.summary.text("config", "| a | b |", step=0)
    hp.hparams({"lr": 0.1, "model": "vit"})
  theirs.close()
  want = _events(str(tmp_path / "tf"))
  # Same tags, steps and plugins.
  assert [(s, t, p) for s, t, p, _ in got] == [(s, t, p) for s, t, p, _ in
                                               want] == [
      (1, "train/loss", "scalars"), (2, "train/loss", "scalars"),
      (0, "sample", "images"), (0, "config", "text"),
      (0, "_hparams_/session_start_info", "hparams")]
  for (_, tag, _, a), (_, _, _, b) in zip(got[:2] + got[3:4],
                                         want[:2] + want[3:4]):
    assert a.dtype == b.dtype and a.shape == b.shape and a == b, tag
  png = got[2][3]
  assert list(png[:2]) == [b"7", b"5"] == list(want[2][3][:2])
  np.testing.assert_array_equal(
      np.asarray(Image.open(io.BytesIO(png[2])).convert("RGB")), image)


def test_a_training_process_does_not_import_tensorflow(tmp_path):
  code = ("import sys; from vidjax.metrics import MetricWriter; "
          f"w = MetricWriter({str(tmp_path)!r}); "
          "w.write(3, {'train/loss': 1.5}); w.write_text(0, 't', 'x'); "
          "w.close(); print('tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True,
                       capture_output=True, check=True).stdout
  assert out.strip() == "False"
  assert [(s, t) for s, t, _, _ in _events(str(tmp_path / "tb"))] == [
      (3, "train/loss"), (0, "t")]


def test_remote_logdir_is_rewritten_whole_at_each_flush(tmp_path):
  import pathlib
  calls = []

  def fake(path):
    calls.append(str(path))
    return pathlib.Path(str(path).replace("gs://", str(tmp_path) + "/"))

  writer = tb_events.EventWriter("gs://bucket/tb", remote_path=fake)
  writer.scalar(1, "a", 1.0)
  writer.flush()
  size = os.path.getsize(fake(writer.path))
  writer.scalar(2, "a", 2.0)
  writer.close()
  assert os.path.getsize(fake(writer.path)) > size
  assert calls[0] == "gs://bucket/tb" and writer.path.startswith(
      "gs://bucket/tb/events.out.tfevents.")
  assert [(s, float(v)) for s, _, _, v in _events(
      str(tmp_path / "bucket" / "tb"))] == [(1, 1.0), (2, 2.0)]


def test_a_full_disk_names_the_event_file(tmp_path):
  writer = MetricWriter(str(tmp_path))
  writer._tb._file.close()  # pylint: disable=protected-access
  writer._tb._file = open(os.devnull, "rb")  # writes fail with OSError
  with pytest.raises(OSError) as e:
    writer.write_text(0, "t", "x")
  assert e.value.filename == writer._tb.path
