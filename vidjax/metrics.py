"""Metrics to stdout, TensorBoard event files and `workdir/metrics.jsonl`.

One JSON object per logged step: {"step": 100, "train/loss": ..., ...}. Only
process 0 writes. A tqdm progress bar shows step, loss, steps/s and ETA.
A remote workdir (gs://...) is written through etils.epath. Beyond scalars
(vidjax/run_record.py): `write_image` (the sample clips, the confusion
matrix), `write_text` (the config) and `write_hparams` (TensorBoard's HParams
tab). TensorBoard's files are written without TensorFlow (vidjax/tb_events.py).
"""
import json
import math
import os
import sys
from typing import Dict

import numpy as np

from vidjax.config_check import is_remote, remote_path
from vidjax.tb_events import EventWriter


def _clean(value):
  value = float(np.asarray(value))
  return value if math.isfinite(value) else str(value)


class MetricWriter:

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if enabled:
      tb_dir = os.path.join(workdir, "tb")
      self._tb = EventWriter(tb_dir, remote_path if is_remote(tb_dir)
                             else None)

  def write(self, step: int, metrics: Dict[str, float]):
    if not self.enabled:
      return
    row = {"step": int(step)}
    row.update({k: _clean(v) for k, v in sorted(metrics.items())})
    with (remote_path(self.path).open("a") if is_remote(self.path)
          else open(self.path, "a")) as f:
      f.write(json.dumps(row) + "\n")
    self._summary(lambda: [self._tb.scalar(step, key, value)
                           for key, value in row.items()
                           if key != "step" and isinstance(value, float)])

  def _summary(self, write):
    """Runs write() on the TensorBoard writer and flushes (process 0)."""
    if not self.enabled:
      return
    try:
      write()
      self._tb.flush()
    except OSError as e:  # a full disk: name the event file
      raise OSError(e.errno, e.strerror, self._tb.path) from None

  def write_image(self, step: int, tag: str, image: np.ndarray):
    """One RGB uint8 image [H, W, 3] (TensorBoard's images tab)."""
    self._summary(lambda: self._tb.image(step, tag, image))

  def write_text(self, step: int, tag: str, text: str):
    """Markdown text (TensorBoard's text tab)."""
    self._summary(lambda: self._tb.text(step, tag, text))

  def write_hparams(self, hparams: Dict[str, object]):
    """Scalar config fields for TensorBoard's HParams tab."""
    from tensorboard.plugins.hparams import summary_v2  # noqa: PLC0415
    self._summary(lambda: self._tb.summary(0, summary_v2.hparams_pb(hparams)))

  def close(self, quiet: bool = False):
    """Closes TensorBoard; quiet: ignore errors (another one is raised)."""
    if self._tb is not None:
      try:
        self._tb.close()
      except Exception:  # noqa: BLE001
        if not quiet:
          raise


def format_metrics(metrics: Dict[str, float]) -> str:
  return "  ".join(f"{k}={_clean(v):.4g}" if isinstance(_clean(v), float)
                   else f"{k}={v}" for k, v in sorted(metrics.items()))


class Progress:
  """A progress bar over the run's steps (stderr), or silence off process 0."""

  def __init__(self, start: int, total: int, enabled: bool = True):
    from tqdm import tqdm
    self.enabled = enabled
    self.bar = tqdm(total=total, initial=start, disable=not enabled,
                    unit="step", dynamic_ncols=True, file=sys.stderr,
                    mininterval=1.0 if sys.stderr.isatty() else 30.0,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                               "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

  def update(self, n: int = 1):
    self.bar.update(n)

  def set_loss(self, loss: float):
    loss = _clean(loss)  # "nan"/"inf" as text
    text = f"{loss:.4g}" if isinstance(loss, float) else loss
    self.bar.set_postfix_str(f"loss={text}", refresh=False)

  def write(self, line: str):
    if self.enabled:  # tqdm.write prints even for a disabled bar
      self.bar.write(line, file=sys.stdout)

  def close(self):
    self.bar.close()
