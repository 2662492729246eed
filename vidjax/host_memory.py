"""Keep freed host memory inside the process (glibc malloc), for fast CPU steps.

XLA:CPU gives each execution of a compiled step one temporary buffer (about
700 MB for the VideoMAE-S train step of `tools.benchmark_peer`), taken with
malloc when the step starts and freed when it ends. glibc serves a request
above its mmap threshold (at most 32 MiB) with a fresh `mmap`, and so does a
secondary arena (one per thread, 64 MiB heaps) for anything larger than a
heap: every step mapped its whole working set anew, touched it page by page
(~176,000 minor page faults per step measured) and unmapped it. A third of
the step's CPU time went to the kernel (0.49 s of system time per 0.85 s
step on 2 cores).

`retain_freed_memory()` sets, with `mallopt`: one arena (M_ARENA_MAX=1, so
large blocks come from the main heap), no mmap-served blocks (M_MMAP_MAX=0)
and no trimming of the heap top (M_TRIM_THRESHOLD=-1, which mallopt(3)
documents as "disables trimming completely"). Freed blocks then stay in the
heap and the next step reuses them: 0 page faults per step, the same step in
~0.55 s. The process keeps what it freed until it exits (measured peak RSS:
`tools.benchmark` of videomae_pretrain 1.05 GB vs 0.76 GB; the main job
1.0-1.4 GB vs 1.1-1.2 GB, bounded over 800 steps). It must run before JAX's CPU
client starts: its threads pick their arena at their first malloc (the
entry points -- `vidjax.main`, the benchmark tools, `vidjax.experiment.run`
and the test session -- call it first). Set VIDJAX_KEEP_HOST_MEMORY=0 to
leave malloc alone; it does nothing where the C library is not glibc.
PyTorch's tuning guides reach the same end by preloading jemalloc or
tcmalloc.
"""
import ctypes
import os

ENV_VAR = "VIDJAX_KEEP_HOST_MEMORY"
# mallopt parameters, glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8

_applied = None


def retain_freed_memory() -> bool:
  """Applies the settings above once; True when glibc accepted all three."""
  global _applied
  if _applied is not None:
    return _applied
  _applied = False
  if os.environ.get(ENV_VAR, "1") == "0":
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
    mallopt = libc.mallopt
    libc.gnu_get_libc_version  # glibc only: musl and macOS lack it
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  # mallopt returns 1 on success.
  _applied = all(mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
  return _applied
