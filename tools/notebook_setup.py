"""Colab badge, install cell and machine-path scrubbing for experiments/*.ipynb.

    python -m tools.notebook_setup            # rewrite every notebook in place
    python -m tools.notebook_setup --check    # list what is missing; exit 1 if any

Every notebook opens with an "Open in Colab" badge (a markdown cell linking
https://colab.research.google.com/github/ORG/vidjax/blob/main/experiments/NN.ipynb,
Colab's documented GitHub URL scheme) and its first code cell installs vidjax
with pip when it is not importable (Colab; the CUDA or TPU extra when the
runtime has that accelerator, `pip install vidjax[gpu]`) and otherwise uses
the checkout one folder up; it then runs unchanged on a CPU. `ORG` is a
placeholder (`vidjax/vidjax`, also in README.md): no public repository is known.

A notebook executed with `jupyter execute --inplace` stores the run's log in
its outputs, and the log names absolute paths (temporary run folders, the
TFDS data dir, the checkout): run this tool after executing a notebook; it
rewrites them (`/tmp/x` -> `<tmp>/x`, `~/tensorflow_datasets`, paths under the
checkout relative to experiments/). Cells are edited with nbformat; nothing
is re-executed.
"""
import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GITHUB = "vidjax/vidjax"  # placeholder owner/name, as in README.md
PIP_SPEC = f"git+https://github.com/{GITHUB}"
BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
MACHINE_PATHS = ("/work", "/tmp", "/home", "/root")

SETUP = '''\
# Setup: vidjax from this checkout, or pip-installed when it is not importable
# (Colab); the accelerator when the runtime has one, else the CPU.
import os, sys, json, time, shutil, subprocess, importlib.util

TINY = os.environ.get("VIDJAX_NB_TINY", "0") == "1"      # tests: seconds-long run
DATA_DIR = os.environ.get("VIDJAX_DATA_DIR", "")           # "": TFDS default data dir
OUT_DIR = os.environ.get("VIDJAX_NB_OUT", "results")       # figures, tables, runs
PIP_SPEC = os.environ.get("VIDJAX_PIP", "{pip_spec}")  # a fork, a path

def _find_root():  # a checkout: this notebook sits in its experiments/ folder
    for d in (os.getcwd(), os.path.dirname(os.getcwd())):
        if os.path.exists(os.path.join(d, "vidjax", "experiment.py")):
            return os.path.abspath(d)
    return None

ROOT = _find_root()
if ROOT is not None and ROOT not in sys.path:
    sys.path.insert(0, ROOT)
if importlib.util.find_spec("vidjax") is None:
    # Colab GPU runtime -> JAX's CUDA wheels; TPU runtime -> libtpu; else CPU.
    extra = ("[gpu]" if shutil.which("nvidia-smi") else
             "[tpu]" if os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")
             else "")
    spec = (f"vidjax{{extra}} @ {{PIP_SPEC}}" if "://" in PIP_SPEC
            else PIP_SPEC + extra)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)
    # If Colab had already imported numpy or jax: Runtime > Restart session, run again.

from vidjax import host_memory
host_memory.retain_freed_memory()  # before JAX's CPU client starts
import jax
import numpy as np
import matplotlib.pyplot as plt
import vidjax
from vidjax import experiment, registry

os.makedirs(OUT_DIR, exist_ok=True)
REGISTERED = set(registry.model_names())
DATA = {{"dataset.data_dir": DATA_DIR}} if DATA_DIR else {{}}
print(f"tiny={{TINY}}  vidjax={{vidjax.__version__}}  backend={{jax.default_backend()}}  out={{OUT_DIR}}")'''.format(pip_spec=PIP_SPEC)

RUN_IT = '''\
**Run it.** In Colab: the badge above opens this notebook; its first code
cell pip-installs vidjax from `{pip_spec}`
(set `VIDJAX_PIP` to a fork's URL or a path) and uses the runtime's GPU or
TPU when it has one (Runtime > Change runtime type). Locally:
`pip install -e .` (or `pip install -r requirements.txt`) in the repository
root, then open this notebook from `experiments/` (it finds the repository
one folder up). Everything trains on the embedded `synthetic_motion` dataset
(built on first use, no download); on a CPU it runs unchanged.

`VIDJAX_NB_TINY=1` runs a seconds-long version (tiny datasets, 1-2 steps, tiny
widths): that is how `tests/test_notebooks.py` executes every notebook on each
push. Its numbers mean nothing; only the full run's do.'''.format(
    pip_spec=PIP_SPEC)


def badge(name: str) -> str:
  url = (f"https://colab.research.google.com/github/{GITHUB}/blob/main/"
         f"experiments/{name}")
  return f"[![Open In Colab]({BADGE_IMG})]({url})"


def scrub(text: str) -> str:
  """Absolute machine paths in a log -> placeholders or relative paths."""
  text = re.sub(r"(?:/work/[^/\s'\"]+|" + re.escape(ROOT) + r")/experiments/",
                "", text)
  text = re.sub(r"(?:/work/[^/\s'\"]+|" + re.escape(ROOT) + r")(?=[/\s'\"]|$)",
                "<repo>", text)
  text = re.sub(r"/(?:root|home/[^/\s'\"]+)/(?=tensorflow_datasets)", "~/", text)
  text = re.sub(r"/(?:root|home/[^/\s'\"]+)(?=[/\s'\"]|$)", "~", text)
  return re.sub(r"/tmp(?=[/\s'\"]|$)", "<tmp>", text)


def _texts(cell):
  """(output, key) of every text an output of `cell` stores (no images)."""
  for out in cell.get("outputs", []):
    if "text" in out:
      yield out, "text"
    for mime, value in out.get("data", {}).items():
      if mime.startswith("text/") or mime == "application/json":
        yield out["data"], mime
    if "traceback" in out:
      yield out, "traceback"


def problems(nb, name: str) -> list:
  """What notebook `nb` (file name `name`) lacks; [] when it is right."""
  found = []
  cells = nb.cells
  if not cells or cells[0].cell_type != "markdown" or badge(name) not in (
      cells[0].source):
    found.append("the first cell is not the Open-in-Colab badge")
  code = [c for c in cells if c.cell_type == "code"]
  if not code or code[0].source != SETUP:
    found.append("the first code cell is not the install/setup cell")
  for i, cell in enumerate(cells):
    texts = [cell.source] + [str(o[k]) for c in [cell] for o, k in _texts(c)]
    for text in texts:
      for path in MACHINE_PATHS:
        if re.search(re.escape(path) + r"(?=[/\s'\"]|$)", text):
          found.append(f"cell {i} names a machine path ({path}...)")
          break
  return found


def apply(nb, name: str):
  """Adds/refreshes the badge, setup and run-it cells; scrubs outputs."""
  import nbformat
  if nb.cells and nb.cells[0].cell_type == "markdown" and (
      "colab-badge" in nb.cells[0].source):
    nb.cells[0].source = badge(name)
  else:
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(badge(name)))
  for cell in nb.cells:
    if cell.cell_type == "markdown" and cell.source.startswith("**Run it.**"):
      cell.source = RUN_IT
  first = next(c for c in nb.cells if c.cell_type == "code")
  if first.source != SETUP:
    first.source = SETUP
    for out in first.get("outputs", []):
      if out.get("name") == "stdout" and out.text.startswith("tiny="):
        # The line the new cell prints, on the CPU the stored run used.
        m = re.match(r"tiny=(\w+)\s.*out=(\S+)", out.text)
        out.text = (f"tiny={m.group(1)}  vidjax=0.1.0  backend=cpu  "
                    f"out={m.group(2)}\n") + out.text.split("\n", 1)[1]
  for cell in nb.cells:
    for holder, key in list(_texts(cell)):
      value = holder[key]
      holder[key] = ([scrub(v) for v in value] if isinstance(value, list)
                     else scrub(value) if isinstance(value, str) else value)


def notebooks() -> list:
  return sorted(glob.glob(os.path.join(ROOT, "experiments", "*.ipynb")))


def main(argv=None) -> int:
  import nbformat
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true")
  parser.add_argument("paths", nargs="*")
  args = parser.parse_args(argv)
  bad = 0
  for path in args.paths or notebooks():
    name = os.path.basename(path)
    nb = nbformat.read(path, as_version=4)
    if not args.check:
      apply(nb, name)
      nbformat.validate(nb)
      nbformat.write(nb, path)
    for problem in problems(nb, name):
      print(f"{name}: {problem}")
      bad += 1
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
