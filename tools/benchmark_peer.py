"""vidjax vs PyTorch eager, side by side: one VideoMAE train step each.

  python -m tools.benchmark_peer [--size=small|base] [--steps=10]
      [--device=cpu|gpu] [--dtype=fp32|bf16]

The same model on both sides -- a VideoMAE encoder (tubelet embedding, fixed
sinusoid positions, pre-norm ViT blocks with q/v biases and exact GELU), mean
pooling, `fc_norm`, a linear head -- trained one step at a time with softmax
cross-entropy and AdamW (lr 1e-4, weight decay 0.05 on every weight) on a
fixed random float clip:
* vidjax: "videomae" (vidjax/models/videomae.py, unrolled layers, einsum
  attention), one jitted, donated step (forward + backward + optax.adamw);
* PyTorch: transformers' `VideoMAEForVideoClassification` (= VideoMAEModel +
  fc_norm + linear head) with attn_implementation="sdpa",
  `torch.optim.AdamW`, eager.
Sizes: small = VideoMAE-S (hidden 384, 12 layers, 6 heads, MLP 1536), base =
ViT-B (768, 12, 12, 3072); clip 16x112x112 (--frames, --crop), tubelet 2x16x16,
batch 2, 400 classes. --device=gpu --dtype=bf16: PyTorch under bf16 autocast
(+ sdpa), vidjax with bfloat16 compute (float32 parameters).

Steps alternate between the two sides after warm-up (a busy machine hurts both
alike); medians are reported. Also measured in the same run: XLA's own matmul
rate (jitted float32 -- bf16 on GPU -- N x N matmul, N=2048 on CPU, 8192 on
GPU) and PyTorch's. vidjax FLOPs per step: XLA's cost analysis of the compiled
(unrolled) step. Prints ONE JSON line: vidjax_ms, torch_ms, ratio
(torch_ms / vidjax_ms: > 1 means vidjax is faster), vidjax_gflops_per_s,
xla_matmul_gflops_per_s, fraction_of_xla_matmul, versions, ...
Time only on an otherwise idle machine.
"""
import json
import platform
import statistics
import time

from absl import app, flags, logging

SIZES = {"small": (384, 12, 6, 1536), "base": (768, 12, 12, 3072)}

# Flags exist only when run as a tool: tests import the functions of
# several tools into one process, and absl flags must be unique.
if __name__ == "__main__":
  _SIZE = flags.DEFINE_enum("size", "small", sorted(SIZES), "Encoder size.")
  _HIDDEN = flags.DEFINE_integer("hidden", 0, "Override: width (0: --size's).")
  _LAYERS = flags.DEFINE_integer("layers", 0, "Override: blocks.")
  _HEADS = flags.DEFINE_integer("heads", 0, "Override: heads.")
  _FRAMES = flags.DEFINE_integer("frames", 16, "Clip frames.")
  _CROP = flags.DEFINE_integer("crop", 112, "Clip height = width.")
  _PATCH = flags.DEFINE_integer("patch", 16, "Spatial patch size.")
  _TUBELET = flags.DEFINE_integer("tubelet", 2, "Temporal tubelet size.")
  _BATCH = flags.DEFINE_integer("batch", 2, "Clips per step.")
  _CLASSES = flags.DEFINE_integer("classes", 400, "Head size.")
  _STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per side.")
  _WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps per side.")
  _DEVICE = flags.DEFINE_enum("device", "cpu", ["cpu", "gpu"], "Where to run.")
  _DTYPE = flags.DEFINE_enum("dtype", "fp32", ["fp32", "bf16"], "Compute dtype.")
  _MATMUL = flags.DEFINE_integer("matmul_size", 0,
                                 "N of the NxN matmul (0: 2048 CPU, 8192 GPU).")

LR, WEIGHT_DECAY = 1e-4, 0.05


def _median_ms(times):
  return statistics.median(times) * 1e3


def _vidjax_side(opts, clip, labels):
  """(step() -> None that blocks, flops per step, params, compile seconds)."""
  import jax
  import jax.numpy as jnp
  import optax
  from vidjax.registry import build_model
  hidden, layers, heads, mlp = opts["model"]
  model = build_model(dict(
      name="videomae", patch_size=(opts["tubelet"], opts["patch"],
                                   opts["patch"]),
      hidden_size=hidden, num_layers=layers, num_heads=heads, mlp_dim=mlp,
      layer_norm_eps=1e-12, head_norm_eps=1e-5,  # transformers' epsilons
      dtype="bfloat16" if opts["dtype"] == "bf16" else "float32"),
      opts["classes"])
  device = jax.devices(opts["device"])[0]
  x = jax.device_put(jnp.asarray(clip.transpose(0, 1, 3, 4, 2)), device)
  y = jax.device_put(jnp.asarray(labels), device)
  params = jax.jit(model.init)(jax.random.key(0), x)["params"]  # on x's device
  tx = optax.adamw(LR, weight_decay=WEIGHT_DECAY)
  state = (params, tx.init(params))

  def train_step(state, x, y):
    params, opt_state = state

    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  t0 = time.perf_counter()
  compiled = jax.jit(train_step, donate_argnums=0).lower(state, x, y).compile()
  compile_s = time.perf_counter() - t0
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  flops = float((analysis or {}).get("flops", 0.0))
  holder = [state]

  def step():
    holder[0], loss = compiled(holder[0], x, y)
    jax.block_until_ready(loss)

  count = sum(int(p.size) for p in jax.tree.leaves(params))
  return step, flops, count, compile_s


def _torch_side(opts, clip, labels):
  """(step() -> None that synchronises, parameter count)."""
  import torch
  import transformers
  hidden, layers, heads, mlp = opts["model"]
  config = transformers.VideoMAEConfig(
      image_size=opts["crop"], patch_size=opts["patch"],
      num_frames=opts["frames"], tubelet_size=opts["tubelet"],
      hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
      intermediate_size=mlp, num_labels=opts["classes"],
      use_mean_pooling=True)
  device = "cuda" if opts["device"] == "gpu" else "cpu"
  torch.manual_seed(0)
  model = transformers.VideoMAEForVideoClassification._from_config(
      config, attn_implementation="sdpa").to(device).train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=LR,
                                weight_decay=WEIGHT_DECAY)
  x = torch.from_numpy(clip).to(device)
  y = torch.from_numpy(labels).long().to(device)
  autocast = opts["dtype"] == "bf16"

  def step():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device, dtype=torch.bfloat16,
                        enabled=autocast):
      logits = model(pixel_values=x).logits
    loss = torch.nn.functional.cross_entropy(logits.float(), y)
    loss.backward()
    optimizer.step()
    if device == "cuda":
      torch.cuda.synchronize()
    else:
      loss.item()

  return step, sum(p.numel() for p in model.parameters())


def _matmul_rates(opts):
  """(XLA GFLOP/s, PyTorch GFLOP/s) of an N x N x N matmul, medians of 10."""
  import jax
  import jax.numpy as jnp
  import torch
  n = opts["matmul_size"] or (8192 if opts["device"] == "gpu" else 2048)
  bf16 = opts["dtype"] == "bf16"
  device = jax.devices(opts["device"])[0]
  a = jax.device_put(jax.random.normal(
      jax.random.key(1), (n, n), jnp.bfloat16 if bf16 else jnp.float32),
      device)
  mm = jax.jit(lambda a: a @ a)
  mm(a).block_until_ready()
  times = []
  for _ in range(10):
    t0 = time.perf_counter()
    mm(a).block_until_ready()
    times.append(time.perf_counter() - t0)
  xla = 2 * n ** 3 / statistics.median(times) / 1e9
  tdev = "cuda" if opts["device"] == "gpu" else "cpu"
  ta = torch.randn(n, n, device=tdev,
                   dtype=torch.bfloat16 if bf16 else torch.float32)
  sync = torch.cuda.synchronize if tdev == "cuda" else (lambda: None)
  ta @ ta
  sync()
  times = []
  for _ in range(10):
    t0 = time.perf_counter()
    ta @ ta
    sync()
    times.append(time.perf_counter() - t0)
  return xla, 2 * n ** 3 / statistics.median(times) / 1e9, n


def run(size="small", hidden=0, layers=0, heads=0, frames=16, crop=112,
        patch=16, tubelet=2, batch=2, classes=400, steps=10, warmup=2,
        device="cpu", dtype="fp32", matmul_size=0) -> dict:
  """Runs both sides; returns the report (see the module docstring)."""
  import jax
  import numpy as np
  import torch
  import transformers
  from vidjax.errors import VidjaxError
  if device == "gpu":
    if not torch.cuda.is_available():
      raise VidjaxError("--device=gpu: PyTorch sees no CUDA device")
    try:
      jax.devices("gpu")
    except RuntimeError as e:
      raise VidjaxError(f"--device=gpu: JAX has no GPU backend ({e})")
  base = SIZES[size]
  hidden, layers, heads = hidden or base[0], layers or base[1], heads or base[2]
  mlp = 4 * hidden
  if hidden % heads:
    raise VidjaxError(f"--hidden={hidden} is not divisible by --heads={heads}")
  opts = dict(model=(hidden, layers, heads, mlp), frames=frames, crop=crop,
              patch=patch, tubelet=tubelet, classes=classes, device=device,
              dtype=dtype, matmul_size=matmul_size)
  rng = np.random.default_rng(0)
  clip = rng.standard_normal((batch, frames, 3, crop, crop), np.float32)
  labels = rng.integers(0, classes, (batch,)).astype(np.int32)

  vj_step, flops, vj_params, compile_s = _vidjax_side(opts, clip, labels)
  th_step, th_params = _torch_side(opts, clip, labels)
  for _ in range(warmup):
    vj_step()
    th_step()
  vj_times, th_times = [], []
  for i in range(steps):  # alternate; swap which side goes first each round
    order = ((vj_step, vj_times), (th_step, th_times))
    for fn, times in (order if i % 2 == 0 else order[::-1]):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
  xla_rate, torch_rate, n = _matmul_rates(opts)
  vj_ms, th_ms = _median_ms(vj_times), _median_ms(th_times)
  achieved = flops / (vj_ms / 1e3) / 1e9
  import flax
  import jaxlib
  import optax
  return {
      "model": "videomae", "size": size, "hidden": hidden, "layers": layers,
      "heads": heads, "mlp_dim": mlp,
      "input": [batch, frames, crop, crop, 3],
      "tubelet": [tubelet, patch, patch], "classes": classes,
      "device": device, "device_kind": jax.devices(device)[0].device_kind,
      "dtype": dtype, "steps": steps, "warmup": warmup,
      "vidjax_ms": round(vj_ms, 3), "torch_ms": round(th_ms, 3),
      "ratio": round(th_ms / vj_ms, 4),
      "vidjax_params": vj_params, "torch_params": th_params,
      "vidjax_gflop_per_step": round(flops / 1e9, 6),
      "vidjax_gflops_per_s": round(achieved, 3),
      "xla_matmul_gflops_per_s": round(xla_rate, 3),
      "fraction_of_xla_matmul": round(achieved / xla_rate, 4),
      "torch_matmul_gflops_per_s": round(torch_rate, 3),
      "matmul_size": n, "vidjax_compile_s": round(compile_s, 3),
      "torch_threads": torch.get_num_threads(),
      "versions": {"python": platform.python_version(),
                   "jax": jax.__version__,
                   "jaxlib": jaxlib.__version__,
                   "flax": flax.__version__, "optax": optax.__version__,
                   "torch": torch.__version__,
                   "transformers": transformers.__version__},
  }


def main(argv):
  del argv
  from vidjax import host_memory
  host_memory.retain_freed_memory()  # before JAX's CPU client starts
  logging.set_verbosity(logging.WARNING)
  from vidjax import cli
  from vidjax.errors import VidjaxError
  try:
    report = run(_SIZE.value, _HIDDEN.value, _LAYERS.value, _HEADS.value,
                 _FRAMES.value, _CROP.value, _PATCH.value, _TUBELET.value,
                 _BATCH.value, _CLASSES.value, _STEPS.value, _WARMUP.value,
                 _DEVICE.value, _DTYPE.value, _MATMUL.value)
  except VidjaxError as e:
    cli.fail(str(e))
  print(json.dumps(report))


if __name__ == "__main__":
  app.run(main)
