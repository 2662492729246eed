"""Every config in configs/ with its input shape, parameters and GFLOPs/view.

  python -m tools.model_table [--format=json] [--only=vivit_factorized]
      [--no_flops]

A config module lists its named variants in `VARIANTS` (the default variant
is ""); each row is `stem[:arg]`. GFLOPs are multiply-adds per view at batch 1
(nothing is trained): `gflops` counts every conv/matmul in full as the papers
do, `xla_gflops` is XLA's cost analysis of the compiled forward pass, which
skips products on zero padding (see vidjax/costs.py).
"""
import glob
import importlib
import json
import os
import sys

from absl import app, flags, logging

from vidjax import cli, costs

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _FORMAT = flags.DEFINE_enum("format", "text", ["text", "json"], "Output.")
  _ONLY = flags.DEFINE_list("only", [], "Config stems (or stem:arg) to list.")
  _NO_FLOPS = flags.DEFINE_bool("no_flops", False, "Skip compiling for FLOPs.")


def config_rows():
  """Yields (name, config) for each config file and each of its variants."""
  for path in sorted(glob.glob(os.path.join(cli.ROOT, "configs", "*.py"))):
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem in ("default", "__init__"):
      continue
    module = importlib.import_module(f"configs.{stem}")
    for arg in getattr(module, "VARIANTS", ("",)):
      yield (f"{stem}:{arg}" if arg else stem), module.get_config(arg)


def row(name: str, config, flops: bool) -> dict:
  model, shape = costs.configured_model(config)
  out = {"config": name, "model": config.model.name,
         "input_shape": list(shape), "params": costs.count_params(model, shape)}
  four = lambda g: float(f"{g:.4g}")  # noqa: E731
  out["gflops"] = four(costs.kernel_gmacs(model, shape)) if flops else None
  out["xla_gflops"] = four(costs.forward_gmacs(model, shape)) if flops else None
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  rows = []
  for name, config in config_rows():
    if _ONLY.value and name not in _ONLY.value and name.split(":")[0] not in \
        _ONLY.value:
      continue
    rows.append(row(name, config, not _NO_FLOPS.value))
  if _FORMAT.value == "json":
    print(json.dumps(rows))
    return
  print(f"{'config':38} {'model':32} {'input (T,H,W,C)':18} {'params':>14} "
        f"{'GFLOPs/view':>12} {'XLA GFLOPs':>11}")
  for r in rows:
    flops, xla = ("-" if r[k] is None else f"{r[k]:.2f}"
                  for k in ("gflops", "xla_gflops"))
    print(f"{r['config']:38} {r['model']:32} {str(tuple(r['input_shape'])):18} "
          f"{r['params']:>14,} {flops:>12} {xla:>11}")


if __name__ == "__main__":
  sys.exit(app.run(main))
