"""Command line: `python -m vidjax.main --config=configs/X.py[:arg] --workdir=DIR`.

Any config field can be overridden, e.g. `--config.batch_size=32` or
`--config.model.hidden_size=128`. Multi-host (pods, GPU clusters): start the
same command on every host with `--multihost`; `jax.distributed.initialize()`
reads the cluster from the environment (or from --coordinator_address,
--num_processes, --process_id).

Compiled steps go to a persistent XLA compilation cache
(`config.compilation_cache_dir`), so a restart after preemption, or a second
run of the same config, loads the train and eval executables instead of
compiling them again. The default is the user's cache folder
(~/.cache/vidjax/jax, or $XDG_CACHE_HOME/vidjax/jax), not the workdir: every
run on the machine shares it, and a workdir stays small and copyable. A
`JAX_COMPILATION_CACHE_DIR` in the environment takes precedence over the
default (the test session sets one). On pods, where a preempted job may come
back on new VMs, give a directory every host reads, e.g. gs://bucket/cache.

SIGTERM or SIGINT (Ctrl-C) finishes the step in flight, writes a checkpoint,
prints where it stopped and exits with 128 + the signal number (143 / 130);
the same command resumes.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TF only writes summaries
from absl import app, flags, logging  # noqa: E402

from vidjax import cli, host_memory  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, "
                               "metrics, TensorBoard); resumed if it has one.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call "
                               "jax.distributed.initialize() first.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port "
                                   "of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process' index.")
_STOP_AFTER = flags.DEFINE_integer(
    "stop_after_steps", None, "Save and exit once this step is reached (for "
    "time-limited allocations); the same command later resumes the run.")
flags.mark_flags_as_required(["config", "workdir"])


def compilation_cache_dir(config) -> str:
  """The persistent cache directory for this run ("" when off)."""
  value = config.get("compilation_cache_dir", "")
  if value == "none":
    return ""
  if value:
    return value
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache")
  return os.path.join(base, "vidjax", "jax")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])} (config fields are "
             "set with --config.FIELD=VALUE)")
  logging.set_verbosity(logging.WARNING)
  import jax
  if _MULTIHOST.value or _COORDINATOR.value:
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                               _PROCESS_ID.value)
  from vidjax import train
  from vidjax.preemption import Preempted
  cache = compilation_cache_dir(_CONFIG.value)
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             stop_after_steps=_STOP_AFTER.value)
  except VidjaxError as e:
    cli.fail(str(e))
  except Preempted as e:  # checkpoint written; exit as killed by the signal
    print(e, file=sys.stderr, flush=True)
    sys.exit(128 + e.signum)


def run():
  host_memory.retain_freed_memory()  # before JAX's CPU client starts
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
