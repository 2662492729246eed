"""Stopping cleanly when the scheduler preempts the job.

One process: SIGTERM (the preemption notice of Kubernetes, SLURM, Borg, cloud
spot VMs) or SIGINT (Ctrl-C) only sets a flag; the training loop finishes the
step in flight, writes a checkpoint and exits with `Preempted`. A second
SIGINT restores Python's default handler, so pressing Ctrl-C twice still
interrupts at once.

Several processes (`--multihost`): every process must stop at the same step,
or the survivors hang in a collective. JAX's preemption sync manager (started
by `jax.distributed.initialize`) catches SIGTERM on any process, agrees on the
next safe step with all of them, and `reached_preemption_sync_point(step)`
turns true on every process at that step. Its own SIGTERM handler must stay
installed, so no handler is set here; SIGINT keeps its default there (a local
Ctrl-C cannot be agreed on without a collective every step).
"""
import signal
import threading
from typing import Optional

import jax


class Preempted(Exception):
  """Training stopped on a signal after saving a checkpoint."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


class StopSignal:
  """Context manager: `should_stop(step)` after each step; `signal_name`."""

  def __init__(self):
    self.signum: Optional[int] = None
    self._previous = {}
    self._multihost = jax.process_count() > 1

  @property
  def signal_name(self) -> str:
    return signal.Signals(self.signum).name if self.signum else "SIGTERM"

  def _handle(self, signum, frame):
    del frame
    if self.signum == signal.SIGINT and signum == signal.SIGINT:
      signal.signal(signal.SIGINT, signal.default_int_handler)
    self.signum = signum

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self  # signal handlers can only be set from the main thread
    wanted = () if self._multihost else (signal.SIGTERM, signal.SIGINT)
    for signum in wanted:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
    return False

  def should_stop(self, step: int) -> bool:
    """True once a stop was requested (on every process at the same step)."""
    if self._multihost:
      from jax.experimental import multihost_utils
      if multihost_utils.reached_preemption_sync_point(step):
        self.signum = self.signum or signal.SIGTERM
        return True
      return False
    return self.signum is not None
