"""Every config in configs/ with its input shape, parameters and GFLOPs/view.

  python -m tools.model_table [--format=json] [--only=vivit_factorized]
      [--no_flops] [--papers]

`--papers`: only the configs with published figures
(benchmarks/published_figures.json, each with its paper and table), beside
the papers' parameters, GFLOPs per view and top-1 (views), with vidjax's
relative difference.

A config module lists its named variants in `VARIANTS` (the default variant
is ""); each row is `stem[:arg]`. GFLOPs are multiply-adds per view at batch 1
(nothing is trained): `gflops` counts every conv/matmul in full as the papers
do, `xla_gflops` is XLA's cost analysis of the compiled forward pass, which
skips products on zero padding (see vidjax/costs.py). Rows on datasets vidjax
does not build (Sports-1M, ImageNet) are architecture entries ("runnable":
false): counted here, refused by vidjax.main with one line.
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
  _PAPERS = flags.DEFINE_bool("papers", False, "Only the configs with "
                              "published figures, beside the papers' values.")

PUBLISHED = os.path.join(cli.ROOT, "benchmarks", "published_figures.json")


def published() -> dict:
  """config name -> the paper's figures (benchmarks/published_figures.json)."""
  with open(PUBLISHED) as f:
    return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def with_paper(r: dict, paper: dict) -> dict:
  """Adds the paper's params/GFLOPs/top-1 and vidjax's relative difference."""
  r = dict(r, paper=paper["paper"], where=paper["where"])
  r["paper_params_m"] = paper.get("params_m")
  r["params_rel_diff"] = (r["params"] / 1e6 / paper["params_m"] - 1
                          if paper.get("params_m") else None)
  r["paper_gflops"] = paper.get("gflops")
  r["paper_gflops_input"] = paper.get("gflops_input", paper.get("input"))
  r["gflops_rel_diff"] = (r["gflops"] / paper["gflops"] - 1 if paper.get(
      "gflops") and r.get("gflops") and "gflops_input" not in paper else None)
  r["paper_top1"], r["paper_views"] = paper.get("top1"), paper.get("views")
  return r


def config_rows():
  """Yields (name, config) for each config file and each of its variants."""
  for path in sorted(glob.glob(os.path.join(cli.ROOT, "configs", "*.py"))):
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem in ("default", "__init__"):
      continue
    module = importlib.import_module(f"configs.{stem}")
    for arg in getattr(module, "VARIANTS", ("",)):
      config = module.get_config(arg)
      if config.get("task") in ("localization", "long_video", "separation"):
        continue  # detectors on features, samplers, a spectrogram U-Net:
        # not clip models (actionformer*.py, sound_of_pixels.py)
      yield (f"{stem}:{arg}" if arg else stem), config


def configured_model(config):
  """(model, clip shape); a detection config (task "detection") counts its
  detector on one full-frame box per clip (vidjax/tasks/detection/model.py:
  AVA's 80-class head for "ava")."""
  if config.get("task") == "detection":
    from vidjax.tasks.detection.model import configured_model as detector
    return detector(config)
  if config.get("task") == "audio_visual":  # MBT: clip + log-mel; AST
    from vidjax.tasks.audio_visual.task import configured_model as av
    return av(config)
  return costs.configured_model(config)


def row(name: str, config, flops: bool) -> dict:
  from vidjax.preflight import NO_BUILDER  # noqa: PLC0415
  model, shape = configured_model(config)
  out = {"config": name, "model": config.model.name,
         "input_shape": list(shape), "params": costs.count_params(model, shape),
         # False: an architecture entry (its dataset has no vidjax builder).
         "runnable": config.dataset.name not in NO_BUILDER}
  four = lambda g: float(f"{g:.4g}")  # noqa: E731
  out["gflops"] = four(costs.kernel_gmacs(model, shape)) if flops else None
  out["xla_gflops"] = four(costs.forward_gmacs(model, shape)) if flops else None
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  rows, papers = [], published() if _PAPERS.value else {}
  for name, config in config_rows():
    if _ONLY.value and name not in _ONLY.value and name.split(":")[0] not in \
        _ONLY.value:
      continue
    if _PAPERS.value and name not in papers:
      continue
    rows.append(row(name, config, not _NO_FLOPS.value))
    if _PAPERS.value:
      rows[-1] = with_paper(rows[-1], papers[name])
  if _FORMAT.value == "json":
    print(json.dumps(rows))
    return
  if _PAPERS.value:
    print_papers(rows)
    return
  print(f"{'config':38} {'model':32} {'input (T,H,W,C)':18} {'params':>14} "
        f"{'GFLOPs/view':>12} {'XLA GFLOPs':>11}")
  for r in rows:
    flops, xla = ("-" if r[k] is None else f"{r[k]:.2f}"
                  for k in ("gflops", "xla_gflops"))
    mark = "" if r["runnable"] else "  (architecture only)"
    print(f"{r['config']:38} {r['model']:32} {str(tuple(r['input_shape'])):18} "
          f"{r['params']:>14,} {flops:>12} {xla:>11}{mark}")


def print_papers(rows):
  pct = lambda x: "-" if x is None else f"{100 * x:+.1f}%"  # noqa: E731
  num = lambda x, f: "-" if x is None else format(x, f)  # noqa: E731
  print(f"{'config':38} {'params':>13} {'paper M':>8} {'diff':>7} "
        f"{'GFLOPs':>8} {'paper':>7} {'diff':>7} {'paper top-1 (views)':>20}")
  for r in rows:
    top1 = ("-" if r["paper_top1"] is None else
            f"{r['paper_top1']} ({r['paper_views']})")
    paper_g = num(r["paper_gflops"], ".1f")
    if r["paper_gflops"] and r["gflops_rel_diff"] is None:
      paper_g += "*"  # published at another input size (see the JSON)
    print(f"{r['config']:38} {r['params']:>13,} "
          f"{num(r['paper_params_m'], '.1f'):>8} {pct(r['params_rel_diff']):>7}"
          f" {num(r['gflops'], '.2f'):>8} {paper_g:>7} "
          f"{pct(r['gflops_rel_diff']):>7} {top1:>20}")
  print("* published at another input size; see benchmarks/"
        "published_figures.json")


if __name__ == "__main__":
  sys.exit(app.run(main))
