"""Times the jitted train step of a config; prints one JSON line.

  python -m tools.benchmark --config=configs/vivit_factorized.py \
      [--config.batch_size=32] [--steps=20] [--warmup=3]

Random uint8 clips of the config's input shape (no dataset needed), the same
jitted, donated, sharded train step as `vidjax.main` (`config.sharding`:
replicated or FSDP state). Reports clips/s, the median step time, compile
seconds, GFLOPs per clip and MFU where the device's peak is known (or given:
`--config.device_peak_flops`), and peak memory (device, or the host's max RSS
on CPU).

GFLOPs per clip are the model's own count (`vidjax.costs`: kernel
multiply-adds x 2 x 3 for forward + backward), the same on any device count
and with scanned layers. XLA's `cost_analysis()` of the compiled step is the
per-device program and counts a scanned layer's body once; it is reported
as `xla_gflops_per_device` for reference only.
"""
import json
import resource
import sys
import time

from absl import app, flags, logging

from vidjax import cli

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _CONFIG = cli.define_config_flag()
  _STEPS = flags.DEFINE_integer("steps", 20, "Timed steps.")
  _WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compiling.")


def benchmark(config, num_steps: int, warmup: int) -> dict:
  import jax
  import numpy as np
  from vidjax import costs, optim, sharding, steps

  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.batch_size, mesh)
  model, shape = costs.configured_model(config)
  schedule = optim.make_schedule(config.optimizer, max(
      config.num_train_steps, 1), config.optimizer.warmup_steps)
  tx = optim.make_optimizer(config.optimizer, schedule)
  rep = sharding.replicated(mesh)
  create = lambda: steps.create_state(  # noqa: E731
      model, tx, config, jax.random.PRNGKey(0))
  state_sh = sharding.config_state_shardings(config, jax.eval_shape(create),
                                             mesh)
  state = jax.jit(create, out_shardings=state_sh)()
  rng = np.random.default_rng(0)
  num_classes = model.num_classes
  batch = sharding.put_batch({
      "video": rng.integers(0, 256, (config.batch_size,) + shape, np.uint8),
      "label": rng.integers(0, num_classes, (config.batch_size,), np.int32),
  }, mesh)
  step_fn = jax.jit(steps.make_train_step(config, schedule), donate_argnums=0,
                    out_shardings=(state_sh, rep))
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  xla_flops = costs.xla_flops(compiled)  # per device; a scan body once
  flops_per_clip = costs.train_flops_per_clip(
      costs.kernel_gmacs(model, shape) * 1e9)
  for _ in range(warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(num_steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  median = float(np.median(times))
  device = jax.devices()[0]
  peak = costs.device_peak_flops(device, config.get("device_peak_flops", 0.0))
  n = mesh.devices.size
  mfu = costs.mfu(flops_per_clip * config.batch_size, median, n, peak)
  stats = device.memory_stats() or {}
  return {
      "config": config_name(), "model": config.model.name,
      "device_kind": device.device_kind, "device_count": n,
      "batch_size": config.batch_size, "input_shape": list(shape),
      "clips_per_sec": round(config.batch_size / median, 3),
      "median_step_ms": round(median * 1e3, 3),
      "compile_seconds": round(compile_s, 3),
      "gflops_per_clip": round(flops_per_clip / 1e9, 4),
      "tflops_per_sec": float(
          f"{flops_per_clip * config.batch_size / median / 1e12:.6g}"),
      "mfu": None if mfu is None else float(f"{mfu:.6g}"),
      "peak_flops_per_device": peak,
      "xla_gflops_per_device": round(xla_flops / 1e9, 4),
      "peak_memory_bytes": stats.get("peak_bytes_in_use"),
      "host_max_rss_bytes": resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss * 1024,
  }


def config_name() -> str:
  given = [a for a in sys.argv[1:] if a.startswith("--config=")]
  return given[0].split("=", 1)[1] if given else ""


def main(argv):
  del argv
  from vidjax import host_memory
  host_memory.retain_freed_memory()  # before JAX's CPU client starts
  logging.set_verbosity(logging.WARNING)
  from vidjax.errors import VidjaxError
  try:
    print(json.dumps(benchmark(_CONFIG.value, _STEPS.value, _WARMUP.value)))
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
