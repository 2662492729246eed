"""Manifests of prepared real-video datasets: open a build without a rescan.

After a complete build (or any open that listed the raw tree), `write` saves
`<data_dir>/vidjax_prepared/<key>.json`; `key` hashes the config's data
settings only (`settings`: dataset name, absolute path / manual_dir /
train_list / test_list / csv, split, test_fraction, resize_short, fps,
jpeg_quality), never the files. The manifest names the build (relative to
data_dir, so a copied data_dir works on another host) and holds what opening
it needs: class names, the per-split index (path, label, stored frames), the
skipped / ignored / missing files for the report, and the size and mtime of
each list / annotation file the listing was read from.

`read` returns it when it is still valid: same version and settings, the build
folder complete, and no recorded annotation file changed (a file that is not
there, e.g. on a host without the raw videos, is not a change). Videos added
to or removed from the raw tree are NOT seen: rerun `python -m
tools.prepare_data`, which always rescans, reuses the build if no file changed
(the build name hashes every file's size) and rewrites the manifest.

Paths with a scheme (gs://...) go through etils.epath (TFDS's file layer).
"""
from __future__ import annotations

import hashlib
import json
import os

VERSION = 1
FOLDER = "vidjax_prepared"
_PATH_FIELDS = ("path", "manual_dir", "train_list", "test_list", "csv")


def _remote(path: str) -> bool:
  return "://" in path


def data_dir(dataset_config) -> str:
  """config.dataset.data_dir, or TFDS's default (TFDS_DATA_DIR or
  ~/tensorflow_datasets), made absolute."""
  d = dataset_config.get("data_dir", "") or os.environ.get(
      "TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets"))
  return d if _remote(d) else os.path.abspath(os.path.expanduser(d))


def settings(dataset_config) -> dict:
  """The data settings a prepared build is keyed by."""
  cfg = dataset_config
  out = {"name": cfg.name, "split": int(cfg.get("split", 1)),
         "test_fraction": float(cfg.get("test_fraction", 0.2)),
         "resize_short": int(cfg.get("resize_short", 128)),
         "fps": float(cfg.get("fps", 0.0)),
         "jpeg_quality": int(cfg.get("jpeg_quality", 90))}
  audio = cfg.get("audio", None)
  if audio is not None and audio.get("enabled", False):  # issue #22
    out["audio_rate"] = int(audio.get("sample_rate", 16000))
  for field in _PATH_FIELDS:
    value = cfg.get(field, "") or ""
    out[field] = os.path.abspath(os.path.expanduser(value)) if value else ""
  return out


def manifest_path(dataset_config) -> str:
  key = hashlib.sha1(json.dumps(settings(dataset_config), sort_keys=True)
                     .encode()).hexdigest()[:16]
  return _join(data_dir(dataset_config), FOLDER,
               f"{dataset_config.name}_{key}.json")


def _join(*parts) -> str:
  return "/".join(p.rstrip("/") for p in parts) if _remote(parts[0]) else \
      os.path.join(*parts)


def _exists(path: str) -> bool:
  if _remote(path):
    from etils import epath  # noqa: PLC0415
    return epath.Path(path).exists()
  return os.path.exists(path)


def _stat(path: str):
  try:
    st = os.stat(path)
  except OSError:
    return None
  return [st.st_size, st.st_mtime_ns]


def write(dataset_config, *, build: str, name: str, origin: str,
          class_names, splits: dict, skipped, ignored, missing,
          annotations) -> str:
  """Saves the manifest of a complete build (atomically); returns its path.

  `build`: the build folder relative to data_dir; `splits`: {split: [(path,
  label, stored frames), ...]}; the rest as in `video_folder.Report`.
  """
  path = manifest_path(dataset_config)
  text = json.dumps({
      "version": VERSION, "settings": settings(dataset_config),
      "build": build, "name": name, "origin": origin,
      "class_names": list(class_names),
      "splits": {s: [list(r) for r in rows] for s, rows in splits.items()},
      "skipped": [list(r) for r in skipped],
      "ignored": [list(r) for r in ignored],
      "missing": [list(r) for r in missing],
      "annotations": {p: _stat(p) for p in annotations}})
  if _remote(path):
    from etils import epath  # noqa: PLC0415
    epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
    epath.Path(path).write_text(text)
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
  return path


def read(dataset_config) -> dict | None:
  """The valid manifest of this config (see the module docstring), or None.

  Adds "build_dir" (absolute) to the returned dict."""
  path = manifest_path(dataset_config)
  try:
    if _remote(path):
      from etils import epath  # noqa: PLC0415
      text = epath.Path(path).read_text()
    else:
      with open(path) as f:
        text = f.read()
    manifest = json.loads(text)
  except (OSError, ValueError):
    return None
  except Exception:  # noqa: BLE001 - e.g. a gs:// error: rescan instead
    return None
  if (manifest.get("version") != VERSION
      or manifest.get("settings") != settings(dataset_config)):
    return None
  for file, recorded in manifest.get("annotations", {}).items():
    now = _stat(file)
    if now is not None and now != recorded:
      return None  # a list / annotation file changed: list again
  build_dir = _join(data_dir(dataset_config), manifest["build"])
  if not _exists(_join(build_dir, "dataset_info.json")):
    return None
  manifest["build_dir"] = build_dir
  return manifest
