"""TensorBoard event files written without TensorFlow.

`tf.summary` costs a training process TensorFlow's import (about 4 CPU-s and
several hundred MB, for every `python -m vidjax.main` start) only to write
a few protocol buffers. This writer produces the same records as TF 2's
summary writer, from the `tensorboard` package's protos and plugin metadata:

* the file `events.out.tfevents.<time>.<host>.<pid>.<n>.v2`, a TFRecord file
  (little-endian uint64 length, its masked CRC-32C, the serialised `Event`,
  the data's masked CRC-32C) opened by a `file_version: "brain.Event:2"`
  event;
* scalars as float32 tensors (plugin `scalars`), images as the string tensor
  [width, height, PNG] (plugin `images`), text as a string tensor (plugin
  `text`), HParams as `hparams_pb`'s summary; each value with its plugin
  metadata, as TF writes them.

TensorBoard and `tf.compat.v1.train.summary_iterator` read the files
(tests/test_tb_events.py). Remote logdirs (gs://...) go through
etils.epath: object stores cannot append, so each flush rewrites the file.
"""
import io
import itertools
import os
import socket
import struct
import time

import numpy as np


def _crc32c_table():
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):  # reflected Castagnoli polynomial
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    table.append(crc)
  return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of `data`: crc32c(b"123456789") == 0xE3069283."""
  crc, table = 0xFFFFFFFF, _TABLE
  for byte in data:
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC: rotated right by 15 bits plus a constant."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
  """One TFRecord: length, its masked CRC, data, the data's masked CRC."""
  length = struct.pack("<Q", len(data))
  return (length + struct.pack("<I", masked_crc32c(length)) + data
          + struct.pack("<I", masked_crc32c(data)))


def png(image: np.ndarray) -> bytes:
  from PIL import Image  # noqa: PLC0415
  out = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(out, format="PNG")
  return out.getvalue()


_COUNTER = itertools.count()


class EventWriter:
  """Appends summaries to one event file in `logdir` (local or remote)."""

  def __init__(self, logdir: str, remote_path=None):
    """remote_path: an etils.epath-like constructor for a remote logdir
    (writes go through it, rewritten whole at each flush); None: local."""
    name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_COUNTER)}.v2")
    self.path = os.path.join(logdir, name)
    self._remote = remote_path
    if remote_path is None:
      os.makedirs(logdir, exist_ok=True)
      self._file = open(self.path, "ab")  # noqa: SIM115  (closed in close())
    else:
      remote_path(logdir).mkdir(parents=True, exist_ok=True)
      self._file = io.BytesIO()
    from tensorboard.compat.proto import event_pb2  # noqa: PLC0415
    self._event_pb2 = event_pb2
    self._write(event_pb2.Event(wall_time=time.time(),
                                file_version="brain.Event:2"))
    self.flush()

  def _write(self, event):
    self._file.write(record(event.SerializeToString()))

  def summary(self, step: int, summary):
    """Writes a `summary_pb2.Summary` at `step`."""
    self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                      summary=summary))

  def _tensor(self, step, tag, value, metadata):
    from tensorboard.compat.proto import summary_pb2  # noqa: PLC0415
    from tensorboard.util import tensor_util  # noqa: PLC0415
    entry = summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(value),
        metadata=metadata(display_name="", description=""))
    self.summary(step, summary_pb2.Summary(value=[entry]))

  def scalar(self, step: int, tag: str, value: float):
    from tensorboard.plugins.scalar import metadata  # noqa: PLC0415
    self._tensor(step, tag, np.float32(value),
                 metadata.create_summary_metadata)

  def image(self, step: int, tag: str, image: np.ndarray):
    """An RGB uint8 image [H, W, 3], as tf.summary.image stores it."""
    from tensorboard.plugins.image import metadata  # noqa: PLC0415
    height, width = np.asarray(image).shape[:2]
    value = np.array([str(width).encode(), str(height).encode(), png(image)],
                     dtype=object)
    self._tensor(step, tag, value, metadata.create_summary_metadata)

  def text(self, step: int, tag: str, text: str):
    from tensorboard.plugins.text import metadata  # noqa: PLC0415
    self._tensor(step, tag, np.array(text.encode(), dtype=object),
                 metadata.create_summary_metadata)

  def flush(self):
    if self._remote is None:
      self._file.flush()
    else:
      self._remote(self.path).write_bytes(self._file.getvalue())

  def close(self):
    self.flush()
    if self._remote is None:
      self._file.close()
