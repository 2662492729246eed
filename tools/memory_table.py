"""Per-device memory of every paper config's train step at its paper batch.

  python -m tools.memory_table [--only=NAME,...] [--markdown] [--out=FILE]
      [--cache=FILE] [--devices=8]

For every paper variant (the `stem:variant` rows of tools.model_table whose
dataset is not the embedded `synthetic_motion`), the train step is compiled
ahead of time on this CPU as the SPMD program of `--devices` (8) devices:
the paper's global `batch_size` split over the `data` axis (so each device
holds batch/8 clips, divided again by `grad_accum_steps` inside the step),
with the config's own `model.dtype`, `remat`, `remat_policy`, `scan_layers`,
`attention_impl` and `sharding` (replicate | fsdp), the optimizer of its
recipe and the train state donated, exactly as `vidjax.main` builds it
(nothing is run: shapes only). `Compiled.memory_analysis()` is read per
device: arguments (train state + batch), outputs, aliased (donated) bytes,
temporaries (gradients, activations kept for the backward pass, XLA's
scratch) and the total (`vidjax.step_memory`).

Targets, with the same per-device program: 8 GPUs of 80 GB (H100/A100
80GB; 80e9 bytes, all of it given to XLA: set
XLA_PYTHON_CLIENT_MEM_FRACTION=.95 as JAX preallocates 75% by default) and a
TPU v4-16 slice (8 chips of 32 GiB HBM, one JAX device each). "fits" is the
total at most the device's memory.

Caveat: XLA:CPU's buffer assignment approximates the GPU and TPU compilers'
(different fusion, layouts, and attention kernels: the cuDNN / splash
kernels that `attention_impl=auto` picks there never materialise the N x N
scores that the einsum path compiled here keeps), so the figures are an
estimate, on the high side for attention-heavy models.

Compiling a paper model on 2 CPU cores takes seconds to minutes: results are
cached in `--cache` (keyed by the config, the device count and the jax
version), and `--only` selects rows. A paper batch that does not split
evenly (C3D's 30 on 8 devices) is compiled at the next multiple, and the
table says so.
"""
import hashlib
import json
import os
import sys
import time

if __name__ == "__main__":  # before JAX starts: the virtual devices
  _N = next((int(a.split("=", 1)[1]) for a in sys.argv
             if a.startswith("--devices=")), 8)
  _FLAG = f"--xla_force_host_platform_device_count={_N}"
  os.environ["XLA_FLAGS"] = " ".join(
      f for f in os.environ.get("XLA_FLAGS", "").split()
      if not f.startswith("--xla_force_host_platform_device_count")) + " " + \
      _FLAG
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

if __name__ == "__main__":
  _ONLY = flags.DEFINE_list("only", [], "Variants (stem:variant) or stems.")
  _MARKDOWN = flags.DEFINE_bool("markdown", False, "Print a markdown table.")
  _OUT = flags.DEFINE_string("out", "", "Write the rows as JSON here.")
  _CACHE = flags.DEFINE_string(
      "cache", os.path.join(os.path.expanduser("~"), ".cache", "vidjax",
                            "memory_table.json"), "Result cache ('' off).")
  _DEVICES = flags.DEFINE_integer("devices", 8, "Devices the batch is split "
                                  "over (also the virtual CPU devices).")

GIB = 1024 ** 3
# name -> bytes per device
TARGETS = {"gpu_80gb": 80 * 10 ** 9, "tpu_v4_32gib": 32 * GIB}
TARGET_TEXT = {"gpu_80gb": "8 GPUs x 80 GB",
               "tpu_v4_32gib": "TPU v4-16 (8 chips x 32 GiB)"}


def paper_variants():
  """(name, config) of every paper variant (tools.model_table's listing)."""
  from tools.model_table import config_rows  # noqa: PLC0415
  for name, config in config_rows():
    if config.get("task", "classification") not in ("classification",
                                                    "videomae_pretrain"):
      continue  # not clip models (detection, localization, audio-visual,
      # separation, long video): no clip step to size
    if ":" in name and config.dataset.name != "synthetic_motion":
      yield name, config


def select(only) -> list:
  rows = list(paper_variants())
  if not only:
    return rows
  return [(n, c) for n, c in rows if n in only or n.split(":")[0] in only]


def _cache_key(name: str, config, devices: int) -> str:
  import jax  # noqa: PLC0415
  blob = json.dumps([name, config.to_json(sort_keys=True), devices,
                     jax.__version__])
  return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _abstract_batch(config, per_step: int, num_classes: int, sharding):
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from vidjax import steps  # noqa: PLC0415
  d = config.dataset
  mixing = d.get("mixup_alpha", 0) > 0 or d.get("cutmix_alpha", 0) > 0
  label = ((per_step, num_classes), jnp.float32) if mixing else (
      (per_step,), jnp.int32)
  return {"video": jax.ShapeDtypeStruct((per_step,) + steps.input_shape(
      config), jnp.uint8, sharding=sharding),
          "label": jax.ShapeDtypeStruct(*label, sharding=sharding)}


def measure(name: str, config, devices: int) -> dict:
  """Compiles `config`'s train step for `devices` devices; per-device bytes."""
  import jax  # noqa: PLC0415
  from vidjax import costs, optim, sharding, step_memory, steps  # noqa
  from vidjax.data import datasets  # noqa: PLC0415
  if len(jax.devices()) < devices:
    raise SystemExit(f"need {devices} devices, JAX sees {len(jax.devices())}"
                     " (run as python -m tools.memory_table)")
  t0 = time.time()
  mesh = sharding.make_mesh(devices)
  model, _ = costs.configured_model(config)
  num_classes = model.num_classes
  schedule = optim.make_schedule(config.optimizer, 1000, 10)
  tx = optim.make_optimizer(config.optimizer, schedule)
  abstract = jax.eval_shape(
      lambda: steps.create_state(model, tx, config, jax.random.PRNGKey(0)))
  state_sh = sharding.config_state_shardings(config, abstract, mesh)
  rows = sharding.batch_sharded(mesh)
  step = jax.jit(steps.make_train_step(config, schedule), donate_argnums=0,
                 in_shardings=(state_sh, rows),
                 out_shardings=(state_sh, sharding.replicated(mesh)))
  accum = steps.grad_accum_steps(config)
  unit = devices * accum  # a batch that does not split is rounded up
  compiled_batch = -(-config.batch_size // unit) * unit
  batch = _abstract_batch(config, compiled_batch, num_classes, rows)
  compiled = step.lower(sharding.with_shardings(abstract, state_sh),
                        batch).compile()
  b = step_memory.memory_bytes(compiled)
  params_sh = state_sh.params
  opt_sh = state_sh.opt_state
  out = {
      "config": name, "model": config.model.name,
      "global_batch": config.batch_size, "devices": devices,
      "compiled_batch": compiled_batch, "grad_accum_steps": accum,
      "clips_per_device_step": compiled_batch // unit,
      "dtype": config.model.get("dtype", "float32"),
      "remat": bool(config.model.get("remat", False)),
      "remat_policy": config.model.get("remat_policy", "nothing_saveable")
      if config.model.get("remat", False) else "",
      "scan_layers": bool(config.model.get("scan_layers", False)),
      "sharding": config.get("sharding", "replicate"),
      "params_bytes": sharding.bytes_per_device(abstract.params, params_sh),
      "opt_state_bytes": sharding.bytes_per_device(abstract.opt_state,
                                                   opt_sh),
      **{f"{k}_bytes": v for k, v in b.items()},
      "compile_seconds": round(time.time() - t0, 1),
  }
  for target, limit in TARGETS.items():
    out[f"fits_{target}"] = b["total"] <= limit
  return out


def run(names_configs, devices: int, cache_path: str = "", emit=None) -> list:
  """Rows for each (name, config), from the cache where it has them."""
  cache = {}
  if cache_path and os.path.exists(cache_path):
    with open(cache_path) as f:
      cache = json.load(f)
  rows = []
  for name, config in names_configs:
    key = _cache_key(name, config, devices)
    if key not in cache:
      cache[key] = measure(name, config, devices)
      if cache_path:
        os.makedirs(os.path.dirname(os.path.abspath(cache_path)),
                    exist_ok=True)
        with open(cache_path + ".tmp", "w") as f:
          json.dump(cache, f)
        os.replace(cache_path + ".tmp", cache_path)
    rows.append(cache[key])
    if emit:
      emit(rows[-1])
  return rows


def _settings(r: dict) -> str:
  parts = [r["dtype"]]
  if r["remat"]:
    parts.append(f"remat {r['remat_policy'] or 'nothing_saveable'}")
  if r["scan_layers"]:
    parts.append("scan")
  if r["grad_accum_steps"] > 1:
    parts.append(f"accum {r['grad_accum_steps']}")
  if r["sharding"] != "replicate":
    parts.append(r["sharding"])
  return ", ".join(parts)


def markdown(rows) -> str:
  gib = lambda n: f"{n / GIB:.2f}"  # noqa: E731
  yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
  lines = [
      "| config | global batch | clips / device / micro-step | settings | "
      "params + opt state (GiB) | temp (GiB) | total per device (GiB) | "
      f"fits {TARGET_TEXT['gpu_80gb']} | fits {TARGET_TEXT['tpu_v4_32gib']} |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    batch = str(r["global_batch"])
    if r["compiled_batch"] != r["global_batch"]:
      batch += f" (as {r['compiled_batch']})"
    lines.append(
        f"| `{r['config']}` | {batch} | {r['clips_per_device_step']} | "
        f"{_settings(r)} | {gib(r['params_bytes'] + r['opt_state_bytes'])} "
        f"| {gib(r['temp_bytes'])} | {gib(r['total_bytes'])} | "
        f"{yes(r['fits_gpu_80gb'])} | {yes(r['fits_tpu_v4_32gib'])} |")
  return "\n".join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  emit = None if _MARKDOWN.value else (lambda r: print(json.dumps(r),
                                                       flush=True))
  rows = run(select(_ONLY.value), _DEVICES.value, _CACHE.value, emit)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(rows, f, indent=1)
  if _MARKDOWN.value:
    print(markdown(rows))


if __name__ == "__main__":
  app.run(main)
