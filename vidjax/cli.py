"""Command-line plumbing shared by `vidjax.main` and `tools/`.

`--config=configs/X.py[:arg]` plus `--config.field=value` overrides, with
every problem (missing file, unknown field, bad value, a config file that
raises) reported as one line: `error: ...`, exit status 1. A relative
`--config` path that does not exist in the working directory is read from the
project root (the checkout, or site-packages where `pip install` put
`configs/`), so `--config=configs/x.py` works from any directory.

The console scripts of pyproject.toml (`vidjax-train`, ...) are the functions
at the end: each runs its module as `python -m MODULE` would (runpy).
"""
import os
import re
import runpy
import sys

from absl import flags
from ml_collections import config_flags

# Config files import `configs.default`: make the project root importable.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


def define_config_flag():
  return config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/vivit_factorized.py[:k400].",
      lock_config=True)


def resolve_config_path(value: str) -> str:
  """`configs/x.py[:arg]` -> ROOT/configs/x.py[:arg] when only ROOT has it."""
  path, sep, arg = value.partition(":")
  if os.path.isabs(path) or os.path.exists(path):
    return value
  rooted = os.path.join(ROOT, path)
  return rooted + sep + arg if os.path.exists(rooted) else value


def parse_flags(argv):
  """absl's parser; bad flags and config-file problems as one-line errors."""
  argv = [("--config=" + resolve_config_path(a[len("--config="):])
           if a.startswith("--config=") else a) for a in argv]
  given = [a for a in argv[1:] if a.startswith("--config=")]
  try:
    rest = flags.FLAGS(argv)
    flags.FLAGS.config.get("seed")  # the file loads lazily: fail here, not later
    return rest
  except flags.Error as e:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(lines) > 1:  # a config file that raised: its own message, last
      lines = [lines[0].split(": Error whilst")[0] + ": " + lines[-1]]
    fail(lines[0] if lines else type(e).__name__)
  except (AttributeError, KeyError) as e:
    while e.args and isinstance(e.args[0], BaseException):
      e = e.args[0]  # ml_collections wraps the KeyError in an AttributeError
    text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
    names = re.findall(r"'([^']+)'", text)
    missing = names[0] if names else text.strip()
    hint = re.search(r'Did you mean "([^"]+)"', text)
    bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")
           and missing in a.split("=")[0].split(".")]
    what = bad[0] if bad else "--config"
    fail(f"{what}: the config has no field {missing!r}"
         + (f"; did you mean {hint.group(1)!r}?" if hint else
            " (see the config file and configs/default.py)"))
  except Exception as e:  # the config file is missing or raised
    last = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    fail(f"{given[0] if given else '--config'}: "
          f"{last[-1] if last else type(e).__name__}")


def fail(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def _run_module(module: str):
  runpy.run_module(module, run_name="__main__", alter_sys=True)


# Console scripts (pyproject.toml [project.scripts]): name -> module run.
SCRIPTS = {
    "vidjax-train": "vidjax.main",
    "vidjax-predict": "tools.predict",
    "vidjax-evaluate": "tools.evaluate",
    "vidjax-extract-features": "tools.extract_features",
    "vidjax-export": "tools.export_model",
    "vidjax-convert": "tools.convert_checkpoint",
}


def train():
  _run_module(SCRIPTS["vidjax-train"])


def predict():
  _run_module(SCRIPTS["vidjax-predict"])


def evaluate():
  _run_module(SCRIPTS["vidjax-evaluate"])


def extract_features():
  _run_module(SCRIPTS["vidjax-extract-features"])


def export():
  _run_module(SCRIPTS["vidjax-export"])


def convert():
  _run_module(SCRIPTS["vidjax-convert"])
