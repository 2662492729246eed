"""Exports a run's encoder as a finetuning-ready checkpoint.

  python -m tools.export_checkpoint --workdir=RUN --out=DIR

RUN: any vidjax run (its latest checkpoint), its checkpoints/ folder or one
step folder. DIR gets DIR/checkpoints/STEP/ in the layout `init_from` reads
(orbax items `state` = {"params": ...} and `meta` = the source run's config,
model name and the exported parameter shapes) and DIR/config.json (the same
meta, readable). Finetune with
`--config.init_from.checkpoint_path=DIR`.

What is kept: the `encoder` subtree when the model has one (VideoMAE: the
pretraining decoder, `encoder_to_decoder`, `mask_token`, or a classifier's
`fc_norm`/`head` are dropped); otherwise every top-level parameter except
those heads (and `batch_stats`, for CNN backbones). Prints one JSON line.
"""
import json
import os
import sys

from absl import app, flags, logging

from vidjax import cli

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run (or checkpoint) folder.")
  _OUT = flags.DEFINE_string("out", None, "Output folder.")

HEADS = ("head", "fc_norm", "encoder_to_decoder", "mask_token", "decoder",
         "decoder_head")


def encoder_tree(tree: dict) -> dict:
  """The `encoder` subtree if any, else the tree without the HEADS."""
  if "encoder" in tree:
    return {"encoder": tree["encoder"]}
  return {k: v for k, v in tree.items() if k not in HEADS}


def read_meta(step_dir: str) -> dict:
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.dirname(step_dir),
                                  options=ocp.CheckpointManagerOptions(
                                      create=False))
  try:
    return manager.restore(int(os.path.basename(step_dir)), args=(
        ocp.args.Composite(meta=ocp.args.JsonRestore()))).meta or {}
  except Exception:  # noqa: BLE001  (a checkpoint without meta: export anyway)
    return {}
  finally:
    manager.close()


def export(workdir: str, out: str) -> dict:
  import numpy as np
  import jax
  import orbax.checkpoint as ocp
  from vidjax import checkpoint
  from vidjax.errors import VidjaxError
  from vidjax.steps import flat_shapes

  if not os.path.exists(workdir):
    raise VidjaxError(f"--workdir={workdir} does not exist")
  out = os.path.abspath(out)
  if os.path.isdir(os.path.join(out, "checkpoints")):
    raise VidjaxError(f"--out={out} already holds checkpoints")
  params, stats, where = checkpoint.load_pretrained(workdir)
  kept, kept_stats = encoder_tree(params), encoder_tree(stats)
  if not jax.tree.leaves(kept):
    raise VidjaxError(f"--workdir={workdir}: the checkpoint {where} has no "
                      "parameter besides heads")
  meta = read_meta(where)
  step = int(os.path.basename(where))
  meta.update(param_shapes=flat_shapes(kept),
              exported_from={"checkpoint": where, "dropped": sorted(
                  k for k in params if k not in kept)})
  state = {"params": kept}
  if jax.tree.leaves(kept_stats):
    state["batch_stats"] = kept_stats
  os.makedirs(out, exist_ok=True)
  manager = ocp.CheckpointManager(os.path.join(out, "checkpoints"),
                                  options=ocp.CheckpointManagerOptions(
                                      create=True))
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(meta, f, indent=1)
  return {"out": out, "from": where, "model": meta.get("model"),
          "params": int(sum(np.size(x) for x in jax.tree.leaves(kept))),
          "dropped": meta["exported_from"]["dropped"]}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  from vidjax.errors import VidjaxError
  for flag in (_WORKDIR, _OUT):
    if not flag.value:
      cli.fail(f"--{flag.name} is required")
  try:
    print(json.dumps(export(_WORKDIR.value, _OUT.value)))
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  sys.exit(app.run(main))
