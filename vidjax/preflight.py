"""Everything a run's config can tell, checked before any work.

`check_run(config, mesh)` runs before any dataset is built or decoded and
before anything is compiled; each problem is one `VidjaxError` line naming
the config key (or file) at fault:

1. the shared fields and their ranges (vidjax/config_check.py), the
   optimizer and schedule options (vidjax/optim.py);
2. batch sizes against the device count, repeated augmentation and
   mixup/cutmix pairs (vidjax/sharding.py, vidjax/data/pipeline.py);
3. augmentation options and frame sizes: a crop that cannot fit, or a recipe
   that would upsample the stored frames (vidjax/data/frame_sizes.py);
4. the dataset name and its options, and its class names, read from the
   annotation files or a prepared dataset's manifest only: one class count,
   from the data, everywhere (vidjax/data/datasets.py `class_names`);
5. the model name and its fields, the input shapes of a training clip and of
   a test view, traced abstractly (`jax.eval_shape`: no compile);
6. `init_from`: the checkpoint's saved parameter shapes against the model,
   through the same adaptation (ViT -> ViViT, position-embedding resize)
   the run applies, without reading its arrays.

It returns what it worked out (`Preflight`), so the run does not repeat it.
"""
import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vidjax import optim, sharding, steps
from vidjax.config_check import check_config
from vidjax.data import datasets, frame_sizes
from vidjax.data.pipeline import ClipSpec, check_batch
from vidjax.errors import VidjaxError
from vidjax.registry import build_model


@dataclasses.dataclass
class Preflight:
  class_names: Sequence[str]
  spec: ClipSpec          # clip sampling, with the data's class count
  model: Any
  abstract_params: Any    # jax.ShapeDtypeStruct tree of the model's params


# Datasets that paper configs name but vidjax does not build: those variants
# are architecture entries of tools.model_table (parameters, FLOPs).
NO_BUILDER = {"sports1m": "Sports-1M (Karpathy et al. 2014)",
              "imagenet": "ImageNet (ILSVRC-2012)",
              "kinetics600": "Kinetics-600 (Carreira et al. 2018)"}


def check_run(config, mesh) -> Preflight:
  if config.get("task", "classification") == "localization":
    from vidjax.tasks.localization import task  # noqa: PLC0415
    return task.preflight(config, mesh)  # its own checks (features, not clips)
  check_config(config)
  name = config.dataset.name
  if name in NO_BUILDER:
    raise VidjaxError(
        f"config.dataset.name={name!r}: vidjax has no {NO_BUILDER[name]} "
        "builder, so this variant is an architecture entry of "
        "tools.model_table, not a runnable recipe; train it on your videos "
        "with --config.dataset.name=video_folder --config.dataset.path=DIR")
  optim.make_optimizer(config.optimizer,  # optimizer and schedule options
                       optim.make_schedule(config.optimizer, 2, 1))
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  steps.check_grad_accum(config, mesh.devices.size, jax.process_count())
  spec = ClipSpec.from_config(config.dataset)  # augmentation options
  check_batch(spec.aug, config.batch_size, jax.process_count())
  frame_sizes.check(config.dataset)
  names = list(datasets.class_names(config.dataset))
  spec = ClipSpec.from_config(config.dataset, num_classes=len(names))
  model = build_model(config.model, len(names))
  params = abstract_params(model, config)
  check_init_from(config, params, names)
  return Preflight(names, spec, model, params)


def abstract_params(model, config):
  """The model's parameter shapes, checking both input shapes (no compile)."""
  train_shape = steps.input_shape(config)
  eval_shape = steps.eval_input_shape(config)
  for shape in {train_shape, eval_shape}:
    if hasattr(model, "check_input"):
      model.check_input(shape)
  rng = jax.random.PRNGKey(0)
  variables = jax.eval_shape(
      lambda: steps.init_variables(model, config, rng))
  if eval_shape != train_shape:
    x = jax.ShapeDtypeStruct((1,) + eval_shape, jnp.float32)
    try:
      jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    except VidjaxError:
      raise
    except Exception as e:  # noqa: BLE001 - e.g. a fixed position embedding
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise VidjaxError(
          f"config.dataset.test_crop_size={eval_shape[1]}: model "
          f"{config.model.name!r} cannot take a {eval_shape[1]}-px test view "
          f"after training at {train_shape[1]} px ({first[:160]})") from None
  return variables["params"]


def check_init_from(config, params, class_names=()):
  """`init_from` against the model from the checkpoint's saved shapes."""
  from vidjax import checkpoint  # noqa: PLC0415 (orbax: slow)
  for path in checkpoint.init_paths(config.init_from.checkpoint_path):
    _check_one_init(config, params, class_names, path)


def _check_one_init(config, params, class_names, path: str):
  from vidjax import checkpoint, init_adapt  # noqa: PLC0415 (orbax: slow)
  shapes, where = checkpoint.pretrained_param_shapes(path)
  if shapes is None:  # an old checkpoint without saved shapes: checked later
    return
  zero = np.zeros((), np.float32)
  loaded = {}
  for key, shape in shapes.items():  # zero-stride arrays: no memory
    node = loaded
    *parents, leaf = key.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = np.broadcast_to(zero, tuple(shape))
  adapted = init_adapt.adapt_pretrained(config, loaded, params, where,
                                        log=lambda *a, **k: None,
                                        class_names=class_names)
  checkpoint.check_fits(params, adapted, path)
