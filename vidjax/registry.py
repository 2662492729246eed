"""Name -> class registries for models and datasets.

Models register with `@register_model("name")`; a config selects one with
`config.model.name`. Every other field of `config.model` is passed to the
model's constructor, so an unknown field is an error that names it.
"""
import dataclasses
from typing import Any, Callable, Dict

from vidjax.errors import VidjaxError

_MODELS: Dict[str, type] = {}


def register_model(name: str) -> Callable[[type], type]:
  """Class decorator: makes a flax module buildable as `config.model.name`."""

  def wrap(cls: type) -> type:
    if name in _MODELS and _MODELS[name] is not cls:
      raise ValueError(f"model name {name!r} registered twice")
    _MODELS[name] = cls
    return cls

  return wrap


def model_names() -> list:
  _import_all_models()
  return sorted(_MODELS)


def get_model_class(name: str) -> type:
  _import_all_models()
  if name not in _MODELS:
    raise VidjaxError(
        f"config.model.name={name!r} is not a registered model; known: "
        f"{', '.join(sorted(_MODELS))}")
  return _MODELS[name]


def build_model(model_config: Any, num_classes: int, **overrides):
  """Builds the module named by `model_config.name` from the config's fields."""
  fields = dict(model_config)
  name = fields.pop("name", None)
  if not name:
    raise VidjaxError("config.model.name is missing")
  cls = get_model_class(name)
  fixed = fields.pop("num_classes", None)
  if fixed is not None and int(fixed) != num_classes:
    raise VidjaxError(
        f"config.model.num_classes={fixed} but the data has {num_classes} "
        "classes; the class count comes from the data: drop "
        "config.model.num_classes")
  known = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  for key in fields:
    if key not in known:
      raise VidjaxError(
          f"config.model.{key} is not an option of model {name!r}; options: "
          f"{', '.join(sorted(known - {'num_classes'}))}")
  fields.update(overrides)
  for key, value in fields.items():
    if isinstance(value, list):  # ml_collections gives lists; flax wants hashables.
      fields[key] = tuple(value)
  return cls(num_classes=num_classes, **fields)


def _import_all_models():
  import vidjax.models  # noqa: F401  (registers every model family)
