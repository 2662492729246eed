"""Test setup: 8 forced host CPU devices (set before JAX initialises), quiet TF,
one JAX compilation cache per test session, and freed host memory kept for
reuse (`vidjax.host_memory`: no page faults on every step's buffers).

The cache: many tests compile the same program again (the reliability tests
restart `python -m vidjax.main` in subprocesses, the notebooks train the same
tiny models); a persistent cache in a fresh temporary folder, shared by the
pytest-xdist workers and every subprocess through the environment, cuts the
compile-bound suite by minutes. It changes no result: a hit loads the
executable XLA compiled for the identical program and options.

Shared fixtures build one tiny `synthetic_motion` dataset per session.
"""
import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile
  import atexit
  import shutil
  _CACHE = tempfile.mkdtemp(prefix="vidjax-test-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

from vidjax import host_memory  # noqa: E402

host_memory.retain_freed_memory()  # before JAX starts: steps reuse freed memory

import contextlib  # noqa: E402

import pytest  # noqa: E402

TINY_TRAIN_PER_CLASS = 8
TINY_TEST_PER_CLASS = 2
# jax's `jax_disable_most_optimizations` (jax/_src/compiler.py): XLA's backend
# at optimisation level 0 without LLVM's expensive passes, for this process
# (read at every compile) and, through the variable, its subprocesses.
_FAST_ENV = "JAX_DISABLE_MOST_OPTIMIZATIONS"


@contextlib.contextmanager
def fast_compile():
  """Compiles at XLA backend optimisation level 0 inside the block.

  For tests whose cost is compiling tiny programs, not running them (a few
  steps of a tiny model): the same computation, compiled in about half the
  CPU time (the detection init_from tests: 169 -> 89 CPU-s); steps run
  slower, so tests that train hundreds of steps stay at the default. The
  option is part of the persistent cache's key (its own entries) and not of
  jit's in-memory key. Tests opt in with `pytest.mark.fast_compile`."""
  import jax  # noqa: PLC0415  (after the XLA flags above)
  before = (jax.config.values["jax_disable_most_optimizations"],
            os.environ.get(_FAST_ENV))
  jax.config.update("jax_disable_most_optimizations", True)
  os.environ[_FAST_ENV] = "1"
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", before[0])
    if before[1] is None:
      os.environ.pop(_FAST_ENV, None)
    else:
      os.environ[_FAST_ENV] = before[1]


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "fast_compile: compile at XLA optimisation level 0 during "
      "the test's setup and call, subprocesses included (conftest.py)")


def _fast(item):
  marked = item.get_closest_marker("fast_compile") is not None
  return fast_compile() if marked else contextlib.nullcontext()


# `VIDJAX_TEST_CPU_LOG=FILE python -m pytest ...` appends one JSON line per
# test to FILE: its wall seconds and the CPU seconds (user + sys) of the
# worker and of the child processes it waited for, setup (module fixtures
# made for it) + call + teardown. CPU seconds move much less than wall
# seconds with other load on the machine (10-20% more on a loaded 2-core
# CPU), so two suites run alike can be compared test by test
# (`python -m tools.test_cpu A B`).
_CPU_LOG = os.environ.get("VIDJAX_TEST_CPU_LOG")


def _cpu_seconds():
  import resource  # noqa: PLC0415
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return (own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
  if not _CPU_LOG:
    return (yield)
  import json  # noqa: PLC0415
  import time  # noqa: PLC0415
  t0, (own0, kids0) = time.time(), _cpu_seconds()
  try:
    return (yield)
  finally:
    own1, kids1 = _cpu_seconds()
    line = json.dumps({"test": item.nodeid, "wall": time.time() - t0,
                       "cpu": own1 - own0, "children_cpu": kids1 - kids0})
    with open(_CPU_LOG, "a") as f:
      f.write(line + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):  # module fixtures are made here
  with _fast(item):
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  with _fast(item):
    return (yield)


# Session fixtures too costly to build on both xdist workers: every test that
# uses one runs on the same worker (pytest.ini's --dist=loadgroup), so each
# is built once per test session. Modules whose tests share a module fixture
# mark themselves (`pytestmark = pytest.mark.xdist_group(...)`).
ONE_WORKER_FIXTURES = {"tiny_localization_run": "localization",
                       "tiny_two_stage_run": "localization",
                       "tiny_detection_run": "detection"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items):
  for item in items:
    names = getattr(item, "fixturenames", ())
    for group in sorted({g for f, g in ONE_WORKER_FIXTURES.items()
                         if f in names}):
      item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """A TFDS data dir holding a tiny synthetic_motion/motion build."""
  from vidjax.data import synthetic_motion
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  synthetic_motion.load_builder(
      "motion", data_dir=data_dir, train_per_class=TINY_TRAIN_PER_CLASS,
      test_per_class=TINY_TEST_PER_CLASS)
  return data_dir


@pytest.fixture(scope="session")
def tiny_localization_run(tmp_path_factory, tiny_data_dir):
  """configs/actionformer.py:tiny from pixels, stopped at step 2 and resumed
  (tests/localization_runs.py)."""
  from tests import localization_runs
  return localization_runs.stop_and_resume(
      str(tmp_path_factory.mktemp("af1")), tiny_data_dir)


@pytest.fixture(scope="session")
def tiny_two_stage_run(tmp_path_factory, tiny_localization_run):
  """configs/actionformer_two_stage.py:tiny on the one-stage run's backbone
  and features (tests/localization_runs.py)."""
  from tests import localization_runs
  return localization_runs.two_stage(str(tmp_path_factory.mktemp("af2")),
                                     tiny_localization_run)


@pytest.fixture(scope="session")
def tiny_detection_run(tmp_path_factory):
  """configs/ava_slowfast.py:tiny stopped at step 2 and resumed, and run
  uninterrupted (tests/detection_runs.py)."""
  from tests import detection_runs
  return detection_runs.stop_and_resume(str(tmp_path_factory.mktemp("ava")))


def tiny_config(data_dir: str, model: str = "vivit_factorized", **overrides):
  """A config that trains in seconds on the tiny dataset."""
  from configs import default
  config = default.get_config()
  config.dataset.data_dir = data_dir
  config.dataset.train_per_class = TINY_TRAIN_PER_CLASS
  config.dataset.test_per_class = TINY_TEST_PER_CLASS
  config.dataset.num_frames = 4
  config.dataset.crop_size = 16
  config.dataset.num_workers = 2
  config.batch_size = 16
  config.eval_batch_size = 16
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 3
  config.num_test_clips = 2
  config.model.name = model
  if model == "vivit_factorized":
    config.model.patch_size = (2, 8, 8)
    config.model.hidden_size = 16
    config.model.num_heads = 2
    config.model.mlp_dim = 32
    config.model.spatial_layers = 1
    config.model.temporal_layers = 1
    config.model.head_init_std = 0.02
  elif model == "single_frame":
    config.model.widths = (8, 16)
    config.model.blocks_per_stage = 1
  config.optimizer.warmup_steps = 2
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def one_train_step(config):
  """Loss of one real train step (steps.make_train_step) at batch 4.

  rbg keys: XLA:CPU compiles their random init several times faster; the
  step is compiled at XLA backend optimisation level 0 (the same computation,
  compiled in less CPU time)."""
  import jax
  import jax.numpy as jnp
  from vidjax import costs, optim, steps
  model, shape = costs.configured_model(config)
  schedule = optim.make_schedule(config.optimizer, 10, 1)
  tx = optim.make_optimizer(config.optimizer, schedule)
  state = jax.jit(lambda rng: steps.create_state(model, tx, config, rng))(
      jax.random.key(0, impl="rbg"))
  batch = {"video": jax.random.randint(jax.random.key(1), (4,) + shape, 0,
                                       256).astype(jnp.uint8),
           "label": jnp.arange(4) % 8}
  step = jax.jit(steps.make_train_step(config, schedule)).lower(
      state, batch).compile({"xla_backend_optimization_level": 0})
  state, metrics = step(state, batch)
  assert int(state.step) == 1 and int(state.skipped_steps) == 0
  return float(metrics["train/loss"])
