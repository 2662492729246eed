"""Custom configs of the embedded synthetic TFDS builders.

A builder's default config, or a copy with overrides under a stable name
(`motion_custom_<sha1 of the sorted overrides>`), so each distinct setting
is built once into its own folder and found again by the same overrides.
"""
from __future__ import annotations

import dataclasses
import hashlib

from vidjax.errors import VidjaxError


def custom_config(base, overrides: dict, dataset: str, check=None):
  """`base` (a BuilderConfig dataclass) or a renamed copy with `overrides`;
  an unknown field is a one-line VidjaxError naming `dataset`; `check(config)`
  validates the copy."""
  if not overrides:
    return base
  fields = {f.name for f in dataclasses.fields(type(base))}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise VidjaxError(f"unknown {dataset} field(s): {unknown}")
  key = ",".join(f"{k}={overrides[k]!r}" for k in sorted(overrides))
  name = f"motion_custom_{hashlib.sha1(key.encode()).hexdigest()[:10]}"
  config = dataclasses.replace(base, name=name, **overrides)
  if check is not None:
    check(config)
  return config
