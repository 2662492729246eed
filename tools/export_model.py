"""Export a run's classifier for serving: StableHLO or a TF SavedModel.

  python -m tools.export_model --run=DIR --format=stablehlo|savedmodel
      [--out=DIR] [--step=N] [--platforms=cpu,cuda,tpu]

The exported function is the run's evaluation forward pass: uint8 clips
[b, T, H, W, C] (the run's test view: `num_frames` frames, the test crop) ->
float32 logits [b, classes]; the normalisation with the config's mean/std is
inside it. The batch `b` is symbolic: one export serves any batch size.

* `stablehlo`: `jax.export` (JAX's documented serialization, "Exporting and
  serializing staged-out computations",
  https://docs.jax.dev/en/latest/export/export.html) of the jitted function,
  the parameters embedded as constants, lowered for every platform in
  `--platforms` (a CPU machine can export for GPU and TPU): `OUT/model.stablehlo`
  (`Exported.serialize()`). Load it with JAX alone:
      exp = jax.export.deserialize(open("OUT/model.stablehlo", "rb").read())
      logits = exp.call(clips_uint8)
* `savedmodel`: `jax.experimental.jax2tf.convert` (native serialization: the
  same StableHLO inside TF's XlaCallModule op) with the parameters as
  tf.Variables (the jax2tf README's recipe for large models), saved with
  `tf.saved_model.save`: signature `serving_default`, input `clips`
  (uint8 [None, T, H, W, C]), output `logits`. Load it with TensorFlow (or
  TF Serving): `tf.saved_model.load("OUT").serve(clips)`.

Beside it, `OUT/export.json`: the model, checkpoint, input shape/dtype, the
baked-in mean/std, the class names (logit order), the platforms and the
round-trip check: the reloaded export's logits against the JAX model's on
random clips of 3 (`roundtrip_max_abs_err`; the tests hold it under 1e-5).
"""
import json
import os
from typing import Optional, Sequence

import numpy as np
from absl import app, flags, logging

from vidjax import cli  # noqa: F401  (puts the project root on sys.path)
from vidjax.errors import VidjaxError

FORMATS = ("stablehlo", "savedmodel")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
STABLEHLO_FILE = "model.stablehlo"

if __name__ == "__main__":
  _RUN = flags.DEFINE_string("run", None, "Training run (or converted model, "
                             "or one checkpoint step folder).")
  _FORMAT = flags.DEFINE_string("format", None, "|".join(FORMATS))
  _OUT = flags.DEFINE_string("out", None, "Output folder (default: "
                             "RUN/export_<format>).")
  _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the "
                               "latest).")
  _PLATFORMS = flags.DEFINE_list("platforms", ["cpu", "cuda", "tpu"],
                                 f"Lowering platforms, of {','.join(PLATFORMS)}.")


def input_shape(run) -> tuple:
  """(T, H, W, C) of the run's test view."""
  d = run.config.dataset
  crop = int(d.get("test_crop_size", 0)) or int(d.crop_size)
  return (int(d.num_frames), crop, crop, len(d.mean))


def forward(run):
  """(variables, uint8 clips) -> float32 logits: the eval step's pass."""
  from vidjax import steps  # noqa: PLC0415
  mean, std = tuple(run.config.dataset.mean), tuple(run.config.dataset.std)

  def fn(variables, clips):
    x = steps.normalize(clips, mean, std)
    return run.model.apply(variables, x, train=False).astype("float32")

  return fn


def _stablehlo(run, out: str, platforms: Sequence[str]):
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from jax import export  # noqa: PLC0415
  fn, variables = forward(run), run.variables
  b, = export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct((b,) + input_shape(run), jnp.uint8)
  exported = export.export(jax.jit(lambda clips: fn(variables, clips)),
                           platforms=tuple(platforms))(spec)
  with open(os.path.join(out, STABLEHLO_FILE), "wb") as f:
    f.write(exported.serialize())
  return {"calling_convention_version":
          int(exported.calling_convention_version)}


def _savedmodel(run, out: str, platforms: Sequence[str]):
  import tensorflow as tf  # noqa: PLC0415
  from jax.experimental import jax2tf  # noqa: PLC0415
  variables = tf.nest.map_structure(
      lambda a: tf.Variable(np.asarray(a), trainable=False), run.variables)
  converted = jax2tf.convert(
      forward(run), polymorphic_shapes=[None, "(b, ...)"], with_gradient=False,
      native_serialization_platforms=tuple(platforms))
  module = tf.Module()
  module.variables_list = tf.nest.flatten(variables)
  spec = tf.TensorSpec((None,) + input_shape(run), tf.uint8, name="clips")
  module.serve = tf.function(lambda clips: converted(variables, clips),
                             input_signature=[spec], autograph=False)
  signature = tf.function(lambda clips: {"logits": module.serve(clips)},
                          input_signature=[spec], autograph=False)
  tf.saved_model.save(module, out, signatures={
      "serving_default": signature.get_concrete_function()})
  return {"tensorflow": tf.__version__}


def load(out: str):
  """The export in `out` as a function: uint8 clips -> numpy logits."""
  with open(os.path.join(out, "export.json")) as f:
    fmt = json.load(f)["format"]
  if fmt == "stablehlo":
    from jax import export  # noqa: PLC0415
    with open(os.path.join(out, STABLEHLO_FILE), "rb") as f:
      exported = export.deserialize(bytearray(f.read()))
    return lambda clips: np.asarray(exported.call(clips))
  import tensorflow as tf  # noqa: PLC0415
  loaded = tf.saved_model.load(out)
  return lambda clips: loaded.serve(tf.constant(clips)).numpy()


def roundtrip_error(run, out: str, batch: int = 3, seed: int = 0) -> float:
  """max |logits(export reloaded) - logits(JAX model)| on random clips."""
  import jax  # noqa: PLC0415
  clips = np.random.default_rng(seed).integers(
      0, 256, (batch,) + input_shape(run), dtype=np.uint8)
  want = np.asarray(jax.jit(forward(run))(run.variables, clips))
  got = load(out)(clips)
  if got.shape != want.shape:
    raise VidjaxError(f"the reloaded export of {out} gives logits of shape "
                      f"{got.shape}, the model {want.shape}")
  return float(np.max(np.abs(got - want)))


def _check_args(fmt: str, platforms: Sequence[str]):
  if fmt not in FORMATS:
    raise VidjaxError(f"--format={fmt}: must be one of {', '.join(FORMATS)}")
  bad = [p for p in platforms if p not in PLATFORMS]
  if bad or not platforms:
    raise VidjaxError(f"--platforms={','.join(platforms)}: each must be one "
                      f"of {', '.join(PLATFORMS)}")


def export_run(run_dir: str, fmt: str, out: Optional[str] = None,
               step: Optional[int] = None,
               platforms: Sequence[str] = ("cpu", "cuda", "tpu"),
               check: bool = True, log=print) -> dict:
  """Writes the export and export.json; returns export.json's content."""
  import jax  # noqa: PLC0415
  from vidjax.viz.run import load_run  # noqa: PLC0415
  _check_args(fmt, list(platforms))
  run = load_run(run_dir, step, unscan=False, flag="--run")
  if run.config.get("task", "classification") != "classification":
    raise VidjaxError(f"--run={run_dir}: a {run.config.task!r} checkpoint "
                      f"({run.config.model.name}) has no class logits to export")
  out = out or os.path.join(run.workdir, f"export_{fmt}")
  if os.path.isdir(out) and os.listdir(out):
    raise VidjaxError(f"--out={out} exists and is not empty")
  os.makedirs(out, exist_ok=True)
  try:
    extra = (_stablehlo if fmt == "stablehlo" else _savedmodel)(
        run, out, list(platforms))
  except VidjaxError:
    raise
  except Exception as e:  # noqa: BLE001  (lowering: a model JAX cannot export)
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise VidjaxError(f"--format={fmt}: cannot export model "
                      f"{run.config.model.name} for {','.join(platforms)}: "
                      f"{first}") from None
  d = run.config.dataset
  meta = {"format": fmt, "model": run.config.model.name,
          "checkpoint": run.step_dir, "platforms": list(platforms),
          "input": {"name": "clips", "shape": ["b", *input_shape(run)],
                    "dtype": "uint8", "layout": "NTHWC, RGB",
                    "normalisation": {"mean": list(d.mean), "std": list(d.std),
                                      "formula": "(x / 255 - mean) / std, "
                                                 "inside the export"}},
          "output": {"name": "logits", "shape": ["b", run.num_classes],
                     "dtype": "float32"},
          "class_names": list(run.class_names), "jax": jax.__version__,
          **extra}
  with open(os.path.join(out, "export.json"), "w") as f:
    json.dump(meta, f, indent=1)
  backend = jax.default_backend()
  here = ("cpu",) if fmt == "savedmodel" else (  # TF here: tensorflow-cpu
      ("cuda", "rocm") if backend == "gpu" else (backend,))
  if check and set(here) & set(platforms):
    meta["roundtrip_batch"] = 3
    meta["roundtrip_max_abs_err"] = roundtrip_error(run, out)
    with open(os.path.join(out, "export.json"), "w") as f:
      json.dump(meta, f, indent=1)
    log(f"round trip: max |logits difference| "
        f"{meta['roundtrip_max_abs_err']:.3g} on a batch of 3")
  log(f"exported {run.config.model.name} ({fmt}) to {out}")
  return meta


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)  # orbax's notes on the meta item
  for name in ("run", "format"):
    if not flags.FLAGS[name].value:
      cli.fail(f"--{name} is required")
  try:
    export_run(_RUN.value, _FORMAT.value, _OUT.value, _STEP.value,
               _PLATFORMS.value)
  except VidjaxError as e:
    cli.fail(str(e))


if __name__ == "__main__":
  app.run(main)
