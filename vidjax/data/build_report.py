"""What a real-video build left out and did: `Report` (printed after a
build, saved as `vidjax_report.txt` beside it) and `BuildSummary` (the
summary line: videos, videos/s, bytes on disk, bytes per video-second)."""
from __future__ import annotations

import dataclasses
import os

from vidjax.data.prepare import human_bytes

SPLITS = ("train", "test")
PRINT_LIMIT = 200  # report lines printed per section (the file has them all)


@dataclasses.dataclass
class Report:
  """What a build left out, and why. Each list holds (path, reason)."""
  name: str
  num_videos: dict
  skipped: list
  ignored: list
  missing: list
  empty_classes: list
  where: str = ""
  build: "BuildSummary | None" = None  # set when this call built it
  no_audio: list = dataclasses.field(default_factory=list)  # audio builds

  def lines(self, limit: int | None = None) -> list:
    out = [f"{self.name}: " + ", ".join(
        f"{n} {s} videos" for s, n in self.num_videos.items())]
    for title, rows in (("videos skipped", self.skipped),
                        ("non-video files ignored", self.ignored),
                        ("listed videos missing", self.missing),
                       ("videos with no usable audio (stored as silence)",
                        self.no_audio)):
      if rows:
        out.append(f"{len(rows)} {title}:")
        out += [f"  {p} — {why}" for p, why in rows[:limit]]
        if limit is not None and len(rows) > limit:
          out.append(f"  ... {len(rows) - limit} more in {self.where}")
    if self.empty_classes:
      out.append(f"{len(self.empty_classes)} classes with no usable video "
                 "(kept, so label ids stay fixed):")
      out += [f"  {c}" for c in self.empty_classes]
    return out

  def __str__(self) -> str:
    return "\n".join(self.lines())


@dataclasses.dataclass
class BuildSummary:
  """What one build did: videos stored, decoded in this run, resumed from the
  staging folder, skipped; wall seconds; bytes of the build on disk; seconds
  of video stored (frames / stored fps)."""
  videos: int
  decoded: int
  resumed: int
  skipped: int
  workers: int
  seconds: float
  disk_bytes: int
  video_seconds: float

  @property
  def videos_per_second(self) -> float:
    return self.decoded / max(self.seconds, 1e-9)

  @property
  def bytes_per_video_second(self) -> float:
    return self.disk_bytes / max(self.video_seconds, 1e-9)

  def line(self, name: str) -> str:
    return (f"prepared {name}: {self.videos} videos ({self.decoded} decoded "
            f"now by {self.workers} processes, {self.resumed} resumed, "
            f"{self.skipped} skipped) in {self.seconds:.1f} s = "
            f"{self.videos_per_second:.2f} videos/s; {self.disk_bytes} bytes "
            f"on disk ({human_bytes(self.disk_bytes)}), "
            f"{self.bytes_per_video_second:.0f} bytes per video-second "
            f"({self.video_seconds:.1f} s of video)")


def make_report(name, class_names, ignored, missing, kept, skipped,
            where) -> Report:
  used = {r[1] for rows in kept.values() for r in rows}
  return Report(
      name=name, num_videos={s: len(kept[s]) for s in SPLITS},
      skipped=[tuple(x) for x in skipped],
      ignored=[tuple(x) for x in ignored],
      missing=[tuple(x) for x in missing],
      empty_classes=[c for i, c in enumerate(class_names) if i not in used],
      where=where)


def save_report(report: Report):
  """Writes the report next to the data (not if that folder is read-only)."""
  text = str(report) + "\n"
  try:
    if os.path.exists(report.where):
      with open(report.where) as f:
        if f.read() == text:
          return
    tmp = f"{report.where}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, report.where)
  except OSError:
    pass
