"""vidjax.host_memory: a train step's freed buffers are reused, not re-faulted.

Each case runs a fresh interpreter (malloc settings must come before JAX
starts): a jitted gradient step of a two-layer MLP whose 1024 x 16384 float32
hidden activations (64 MiB, kept for the backward pass) live in XLA's
temporary buffer. The minor page faults of each step are read with getrusage.
"""
import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, resource, statistics, sys
from vidjax import host_memory
applied = host_memory.retain_freed_memory()
assert host_memory.retain_freed_memory() == applied  # applied once
import jax, jax.numpy as jnp
x = jax.random.normal(jax.random.key(0), (1024, 64))
ws = (jax.random.normal(jax.random.key(1), (64, 16384)) * 0.01,
      jax.random.normal(jax.random.key(2), (16384, 64)) * 0.01)
loss = lambda ws, x: jnp.mean((jnp.tanh(x @ ws[0]) @ ws[1]) ** 2)
step = jax.jit(lambda ws, x: jax.tree.map(lambda w, g: w - 0.1 * g, ws,
                                          jax.grad(loss)(ws, x)),
               donate_argnums=0)
faults = []
for i in range(14):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  ws = jax.block_until_ready(step(ws, x))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults[4:],
                  "median": statistics.median(faults[4:])}))
"""
PAGES_64MIB = 64 * 2 ** 20 // 4096


def _run(keep: str) -> dict:
  env = dict(os.environ, VIDJAX_KEEP_HOST_MEMORY=keep, JAX_PLATFORMS="cpu")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux"
                    or platform.libc_ver()[0] != "glibc",
                    reason="mallopt settings are glibc's")
def test_freed_step_buffers_are_reused_without_page_faults():
  default = _run("0")
  assert default["applied"] is False
  # glibc's default: the 64 MiB temporary is mmapped and faulted every step.
  assert min(default["faults"]) >= PAGES_64MIB, default
  # Kept: the steady-state step reuses the freed temporary. On a loaded
  # machine (CI runs the suite on xdist workers) a step now and then starts
  # before the last one's buffer is released and the heap grows once, and
  # new pool threads touch their stacks (~150-360 pages measured), so the
  # bar is the median step of the best of three interpreters at 1/16 of the
  # temporary; every default step faults it all.
  runs = []
  for _ in range(3):
    runs.append(_run("1"))
    assert runs[-1]["applied"] is True
    if runs[-1]["median"] <= PAGES_64MIB // 16:
      break
  assert min(r["median"] for r in runs) <= PAGES_64MIB // 16, runs
