"""Checks a config and the workdir before anything is built or compiled.

Every failure is a `VidjaxError` whose one line names the config key (or the
workdir) at fault.

Workdirs and checkpoint paths may be remote (`gs://bucket/run`: Orbax,
TensorBoard's writer and JAX's profiler take such paths). `absolute_path`
leaves them as they are (os.path.abspath would make gs://b/x into
/cwd/gs:/b/x) and `remote_path` opens them with `etils.epath`
(https://github.com/google/etils, `epath.Path`: gs:// through
tf.io.gfile / gcsfs); local paths keep the builtin `open` and `os`.
"""
import os
import tempfile

from vidjax.errors import VidjaxError

# Fields every config shares (see configs/default.py).
REQUIRED = (
    "seed", "batch_size", "eval_batch_size", "num_train_steps",
    "num_train_epochs", "log_every_steps", "eval_every_steps",
    "checkpoint_every_steps", "keep_checkpoints", "num_test_clips",
    "num_test_crops", "label_smoothing", "num_devices",
    "max_consecutive_nonfinite", "dataset.name", "dataset.num_frames",
    "dataset.frame_stride", "dataset.crop_size", "model.name",
    "optimizer.name", "optimizer.learning_rate", "init_from.checkpoint_path",
)
POSITIVE = (
    "batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps",
    "checkpoint_every_steps", "num_test_clips", "max_consecutive_nonfinite",
    "dataset.num_frames", "dataset.frame_stride", "dataset.crop_size",
)


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if part not in node:
      raise VidjaxError(f"config.{dotted} is missing (configs/default.py "
                        "defines every shared field)")
    node = node[part]
  return node


def check_config(config):
  for key in REQUIRED:
    _get(config, key)
  for key in POSITIVE:
    if _get(config, key) <= 0:
      raise VidjaxError(f"config.{key} must be > 0, got {_get(config, key)}")
  if config.num_train_steps <= 0 and config.num_train_epochs <= 0:
    raise VidjaxError("config.num_train_steps (or config.num_train_epochs) "
                      "must be > 0")
  if config.num_test_crops not in (1, 3):
    raise VidjaxError("config.num_test_crops must be 1 or 3, got "
                      f"{config.num_test_crops}")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise VidjaxError("config.label_smoothing must be in [0, 1), got "
                      f"{config.label_smoothing}")
  if config.get("eval_max_videos", 0) < 0:
    raise VidjaxError("config.eval_max_videos must be >= 0 (0: every test "
                      f"video), got {config.eval_max_videos}")
  if config.keep_checkpoints < 1:
    raise VidjaxError("config.keep_checkpoints must be >= 1, got "
                      f"{config.keep_checkpoints}")
  from vidjax.data import optical_flow  # modality -> channels; checks flow_*
  mode = optical_flow.modality(config.dataset)
  for key in ("mean", "std"):
    value = config.dataset.get(key, ())
    if len(value) != optical_flow.MODALITY_CHANNELS[mode]:
      raise VidjaxError(
          f"config.dataset.{key} needs {optical_flow.MODALITY_CHANNELS[mode]} "
          f"values (one per channel of config.dataset.modality={mode!r}), got "
          f"{tuple(value)}")
  direction_sensitive = (
      config.dataset.name == "something_something_v2" or
      (config.dataset.name == "synthetic_motion" and
       config.dataset.get("config") == "motion"))
  if config.dataset.get("flip", False) and direction_sensitive:
    raise VidjaxError(
        f"config.dataset.flip=True on {config.dataset.name}"
        f"{'/motion' if config.dataset.name == 'synthetic_motion' else ''}: "
        "its classes depend on left/right direction, so a flipped clip "
        "changes its label; set config.dataset.flip=False")
  if min(config.dataset.std) <= 0:
    raise VidjaxError(f"config.dataset.std must be > 0, got "
                      f"{tuple(config.dataset.std)}")
  from vidjax import sharding
  sharding.check_mode(config)
  check_profile_steps(config.get("profile_steps", ""))
  if config.get("device_peak_flops", 0.0) < 0:
    raise VidjaxError("config.device_peak_flops must be >= 0 (0: by device "
                      f"kind), got {config.device_peak_flops}")


def check_profile_steps(value):
  """config.profile_steps: "" (off), "first,count" or (first, count)."""
  if not value:
    return
  parts = value.split(",") if isinstance(value, str) else list(value)
  try:
    first, count = (int(p) for p in parts)
  except (TypeError, ValueError):
    first, count = -1, 0
  if first < 0 or count < 1:
    raise VidjaxError(f"config.profile_steps must be 'first,count' with "
                      f"first >= 0 and count >= 1 (or empty: off), got "
                      f"{value!r}")


def is_remote(path) -> bool:
  """True for a path with a scheme, e.g. gs://bucket/run."""
  return "://" in str(path)


def absolute_path(path: str) -> str:
  """An absolute local path; a remote one unchanged."""
  path = str(path)
  return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def remote_path(path: str):
  """An `etils.epath.Path` (open, exists, is_dir, iterdir, mkdir)."""
  from etils import epath
  return epath.Path(path)


def _check_remote_workdir(workdir: str) -> str:
  path = remote_path(workdir)
  try:
    if path.exists() and not path.is_dir():
      raise VidjaxError(f"--workdir={workdir} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write_test_{os.getpid()}"
    with probe.open("w") as f:
      f.write("")
    probe.unlink()
  except (OSError, RuntimeError) as e:  # gfile raises its own kinds too
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise VidjaxError(f"--workdir={workdir} is not writable: {first}")
  return workdir


def check_workdir(workdir: str) -> str:
  """Creates `workdir` if needed and proves it is writable; returns it
  (absolute; a remote path as given)."""
  if not workdir:
    raise VidjaxError("--workdir is required")
  if is_remote(workdir):
    return _check_remote_workdir(str(workdir))
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise VidjaxError(f"--workdir={workdir} exists and is not a directory")
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
      pass
  except OSError as e:
    raise VidjaxError(f"--workdir={workdir} is not writable: {e.strerror}")
  return workdir
