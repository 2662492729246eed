"""conftest.fast_compile and `pytest.mark.fast_compile`: marked tests (their
fixtures' setup included) compile at XLA backend optimisation level 0 without
LLVM's expensive passes, as do the subprocesses they start; unmarked tests
compile at jax's default, and the block restores what was set before it.

The compile options are read where jax builds them for every compilation
(jax/_src/compiler.py `get_compile_options`, jax 0.10.2)."""
import os
import subprocess
import sys

import jax
import pytest
from jax._src import compiler

from conftest import fast_compile

_LEVEL = ("import jax; from jax._src import compiler; d = compiler."
          "get_compile_options(1, 1).executable_build_options.debug_options; "
          "print(d.xla_backend_optimization_level, "
          "d.xla_llvm_disable_expensive_passes)")


def _options():
  d = compiler.get_compile_options(1, 1).executable_build_options.debug_options
  return d.xla_backend_optimization_level, d.xla_llvm_disable_expensive_passes


def _child_options():
  out = subprocess.run([sys.executable, "-c", _LEVEL], capture_output=True,
                       text=True, check=True, timeout=120).stdout.split()
  return int(out[0]), out[1] == "True"


@pytest.fixture
def options_at_setup():
  return _options()


@pytest.mark.fast_compile
def test_a_marked_test_and_its_subprocesses_compile_at_level_0(
    options_at_setup):
  assert options_at_setup == (0, True)  # fixtures are set up inside the mark
  assert _options() == (0, True)
  assert _child_options() == (0, True)


def test_an_unmarked_test_compiles_at_the_default_and_the_block_restores():
  if os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS"):
    pytest.skip("the environment asks for level 0 everywhere")
  default = _options()
  assert default[0] > 0 and default[1] is False
  assert os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") is None
  with fast_compile():
    assert _options() == (0, True)
    assert os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "1"
    with fast_compile():  # nested: the outer block's setting comes back
      pass
    assert _options() == (0, True)
  assert _options() == default
  assert not jax.config.values["jax_disable_most_optimizations"]
  assert os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") is None
