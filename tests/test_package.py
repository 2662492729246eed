"""vidjax as a package (pyproject.toml): version, console scripts, configs
from any working directory, extras = the requirement files, licence and
changelog; and the Colab notebooks (badge, install cell, no machine paths)."""
import glob
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "pyproject.toml"), "rb") as _f:
  PYPROJECT = tomllib.load(_f)
SCRIPTS = PYPROJECT["project"]["scripts"]
# Part B of issue #18 writes these tools; their scripts resolve once it lands.


def _pins(path: str) -> list:
  lines = [ln.split("#")[0].strip() for ln in open(path)]
  return [ln for ln in lines if ln and not ln.startswith("-r")]


def test_version_and_metadata():
  import vidjax
  project = PYPROJECT["project"]
  assert project["name"] == "vidjax"
  assert vidjax.__version__ == project["version"] == "0.1.0"
  assert project["requires-python"] == ">=3.11"
  assert project["license"] == "Apache-2.0"
  with open(os.path.join(ROOT, "LICENSE")) as f:
    text = f.read()
  assert "Apache License" in text and "Version 2.0, January 2004" in text
  assert "END OF TERMS AND CONDITIONS" in text and len(text) > 11000
  with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
    assert re.search(rf"^## \[{re.escape(vidjax.__version__)}\] - \d{{4}}-"
                     r"\d\d-\d\d$", f.read(), re.M)


def test_dependencies_are_the_requirement_files():
  """Runtime pins: requirements.txt itself (read by setuptools, every line
  an exact pin); the gpu / tpu extras: the pins the GPU / TPU files add."""
  assert PYPROJECT["tool"]["setuptools"]["dynamic"]["dependencies"] == {
      "file": ["requirements.txt"]}
  runtime = _pins(os.path.join(ROOT, "requirements.txt"))
  assert runtime and all(re.fullmatch(r"[\w.\-\[\]]+==[\w.]+", p)
                         for p in runtime), runtime
  extras = PYPROJECT["project"]["optional-dependencies"]
  for name in ("gpu", "tpu"):
    assert extras[name] == _pins(os.path.join(ROOT, f"requirements-{name}.txt"))
  build = PYPROJECT["build-system"]["requires"]
  assert len(build) == 1 and build[0].startswith("setuptools==")


def test_every_package_is_in_the_distribution():
  from setuptools import find_packages
  find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
  shipped = set(find_packages(ROOT, include=find["include"]))
  on_disk = {os.path.relpath(os.path.dirname(p), ROOT).replace(os.sep, ".")
             for p in glob.glob(os.path.join(ROOT, "**", "__init__.py"),
                                recursive=True)}
  on_disk = {p for p in on_disk if p.split(".")[0] in ("vidjax", "configs",
                                                         "tools")}
  assert shipped == on_disk and {"vidjax", "configs", "tools"} <= shipped


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_scripts_resolve(script):
  from vidjax import cli
  module_name, _, attr = SCRIPTS[script].partition(":")
  entry = getattr(importlib.import_module(module_name), attr)
  assert callable(entry)
  target = cli.SCRIPTS[script]
  spec = importlib.util.find_spec(target)
  assert spec is not None and spec.origin.startswith(ROOT), target
  with open(spec.origin) as f:
    assert 'if __name__ == "__main__":' in f.read(), target
  assert set(cli.SCRIPTS) == set(SCRIPTS)


def test_configs_resolve_from_any_directory(tmp_path, monkeypatch):
  from vidjax import cli
  monkeypatch.chdir(tmp_path)
  rooted = os.path.join(ROOT, "configs", "vivit_factorized.py")
  assert cli.resolve_config_path("configs/vivit_factorized.py:k400") == (
      rooted + ":k400")
  assert cli.resolve_config_path("configs/vivit_factorized.py") == rooted
  assert cli.resolve_config_path("configs/nope.py") == "configs/nope.py"
  (tmp_path / "configs").mkdir()
  (tmp_path / "configs" / "vivit_factorized.py").write_text("")
  # A file in the working directory wins.
  assert cli.resolve_config_path("configs/vivit_factorized.py") == (
      "configs/vivit_factorized.py")
  # The console script's code path, from another directory: the config is
  # found and loaded (the override is checked against its fields).
  code = ("import sys; sys.argv = ['vidjax-train', "
          "'--config=configs/vivit_factorized.py:k400', '--workdir=w', "
          "'--config.no_such_field=1']; from vidjax import cli; cli.train()")
  proc = subprocess.run(
      [sys.executable, "-c", code], cwd=str(tmp_path / "configs"),
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --config.no_such_field: the config has no field "
      "'no_such_field' (see the config file and configs/default.py)")


def test_notebooks_have_badge_install_cell_and_no_machine_paths():
  import nbformat
  from tools import notebook_setup
  paths = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.ipynb")))
  assert len(paths) == 6
  for path in paths:
    name = os.path.basename(path)
    nb = nbformat.read(path, as_version=4)
    assert notebook_setup.problems(nb, name) == [], (
        f"{name}: run `python -m tools.notebook_setup` after executing it")
    badge = nb.cells[0].source
    assert badge == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-"
        "badge.svg)](https://colab.research.google.com/github/vidjax/vidjax/"
        f"blob/main/experiments/{name})")
    setup = next(c for c in nb.cells if c.cell_type == "code").source
    assert 'importlib.util.find_spec("vidjax") is None' in setup
    assert '"pip", "install"' in setup and "VIDJAX_NB_TINY" in setup
  # The check finds what it must: a path in an output, a missing badge.
  nb = nbformat.read(paths[0], as_version=4)
  code = [c for c in nb.cells if c.cell_type == "code"]
  code[1].outputs = [nbformat.v4.new_output(
      "stream", name="stdout", text="checkpoint /tmp/x/checkpoints/3\n")]
  del nb.cells[0]
  found = notebook_setup.problems(nb, os.path.basename(paths[0]))
  assert any("badge" in p for p in found)
  assert any("machine path (/tmp" in p for p in found)
  notebook_setup.apply(nb, os.path.basename(paths[0]))
  assert notebook_setup.problems(nb, os.path.basename(paths[0])) == []
  assert "checkpoint <tmp>/x/checkpoints/3" in "".join(
      o.get("text", "") for c in nb.cells if c.cell_type == "code"
      for o in c.outputs)
