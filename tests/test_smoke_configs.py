"""Paper configs on real footage in the official layouts, through the CLI.

`tools.smoke_configs` runs every runnable paper variant (one training step,
one evaluation at paper input size); its full table is in
benchmarks/RESULTS.md (about an hour on 2 cores). Here: the layouts it
writes read back as the official datasets, and the cheapest variant of the
families that fit the suite's time budget runs for real (no stubbed loader:
the frames come through the real decode path).
"""
import json
import os

import pytest

from tools import smoke_configs, smoke_data
from vidjax.data import datasets

# Family -> its cheapest paper variant, by the seconds in the full table.
# (TSM's, tsm:k400, took 87 s of the suite's budget on 2 cores; it stays in
# the full table, `python -m tools.smoke_configs --only=tsm:k400`.)
CHEAPEST = {
    "3D ResNets (R3D, R(2+1)D)": "r3d:k400",
    "VideoMAE pretraining": "videomae_pretrain:k400_vit_s",
}


@pytest.fixture(scope="module")
def footage_root(tmp_path_factory):
  return tmp_path_factory.mktemp("smoke")


def _dcfg(name, manual):
  import ml_collections
  return ml_collections.ConfigDict(dict(name=name, manual_dir=str(manual)))


AUDIO_MAKERS = {"audioset", "vggsound"}  # read by vidjax/data/audioset.py


@pytest.mark.parametrize("name",
                         sorted(set(smoke_data.MAKERS) - {"ava"} - AUDIO_MAKERS))
def test_the_tiny_datasets_read_back_in_their_official_layouts(
    name, footage_root):
  from vidjax.data import public_datasets
  root = footage_root / "raw" / name
  counts = smoke_data.MAKERS[name](str(root))
  listing = public_datasets.LISTINGS[name](_dcfg(name, root))
  assert len(listing.train) == counts["train"] == 2
  assert len(listing.test) == counts["test"] == 1
  assert datasets.class_names(_dcfg(name, root)) == list(listing.class_names)
  assert len(listing.class_names) == 2 and not listing.missing
  import av
  sizes = set()
  for rel, _ in listing.train:  # real footage at its native resolution
    with av.open(os.path.join(listing.root, rel)) as c:
      s = c.streams.video[0]
      sizes.add((s.codec_context.width, s.codec_context.height))
  assert sizes == {(1280, 720), (640, 272)}


def test_the_tiny_ava_tree_reads_back_in_the_v22_layout(footage_root):
  """tools/smoke_data.make_ava: AVA v2.2's files, read back by
  vidjax/data/ava_public.py (keyframes per split, two people each, the label
  map, every keyframe's frame file at the native resolution)."""
  import av  # noqa: F401  (the footage decoder is PyAV)
  from PIL import Image
  from vidjax.data import ava_public as ap
  root = footage_root / "raw" / "ava"
  counts = smoke_data.make_ava(str(root))
  ann = root / "annotations"
  names = ap.read_label_map(str(ann / ap.LABEL_MAP))
  assert len(names) == 4
  sizes = set()
  for split in ("train", "test"):
    boxes = ap.read_boxes(str(ann / ap.GT_FILES[split]))
    assert len(boxes) == counts[split]
    for (vid, second), rows in boxes.items():
      assert {r[2] for r in rows} == {0, 1}  # two people
      assert {r[1] for r in rows} <= set(names)
      path = ap.frame_path(str(root / "frames"), vid, ap.frame_index(second))
      with Image.open(path) as im:
        sizes.add(im.size)
  assert sizes == {(1280, 720), (640, 272)}


@pytest.mark.parametrize("name", sorted(AUDIO_MAKERS))
def test_the_tiny_audio_visual_trees_read_back_as_audioset_and_vggsound(
    name, footage_root):
  """tools/smoke_data.make_audioset / make_vggsound: the segment lists and
  files read back by vidjax/data/audioset.py (AudioSet: the 527 classes of
  class_labels_indices.csv, multi-label rows), and the real footage keeps
  its audio: bigbuckbunny's AAC track decodes to sound, bikes has none."""
  import ml_collections
  import numpy as np
  from vidjax.audio import decode as audio_decode
  from vidjax.data import audioset
  root = footage_root / "raw" / name
  counts = smoke_data.MAKERS[name](str(root))
  listed = audioset.list_segments(ml_collections.ConfigDict(
      dict(name=name, manual_dir=str(root))))
  assert {k: len(v) for k, v in listed.found.items()} == counts == {
      "train": 2, "test": 1}
  assert not listed.missing and not listed.bad_rows
  if name == "audioset":
    assert len(listed.class_names) == 527
    assert listed.class_names[:2] == ["Speech", "Music"]
    assert [s.labels for s, _, _ in listed.found["train"]] == [(0, 2), (1, 3)]
  else:
    assert listed.class_names == ["people marching", "skateboarding"]
  paths = [path for _, path, _ in listed.found["train"]]
  wave, _ = audio_decode.decode_audio(paths[0], 16000)
  assert wave.size > 5 * 16000 and np.sqrt(np.mean(np.square(wave))) > 1e-3
  with pytest.raises(audio_decode.NoAudio, match="no audio track"):
    audio_decode.decode_audio(paths[1], 16000)


def test_every_runnable_paper_variant_is_in_the_table():
  names = [n for n, _ in smoke_configs.runnable_variants()]
  # 29 + mbt:audioset, mbt:vggsound, ast:audioset (#22)
  assert len(names) == 32
  assert set(CHEAPEST.values()) <= set(names)
  assert smoke_configs.smallest_batch(
      dict(smoke_configs.runnable_variants())["mvitv2:s_16x4_k400"]) == 2


@pytest.mark.fast_compile  # its subprocess too: one step costs its compile
@pytest.mark.parametrize("family", sorted(CHEAPEST))
def test_cheapest_variant_of_the_family_trains_and_evaluates_at_paper_size(
    family, footage_root, capsys):
  name = CHEAPEST[family]
  rows = smoke_configs.smoke([name], str(footage_root), {}, (), timeout=1200,
                             emit=lambda line: None)
  row = rows[0]
  assert row["passed"], row
  workdir = os.path.join(footage_root, "runs", name.replace(":", "_"))
  metrics = [json.loads(line) for line in open(
      os.path.join(workdir, "metrics.jsonl"))]
  assert metrics[0]["step"] == 1
  log = open(os.path.join(workdir, "smoke.log")).read()
  config = dict(smoke_configs.runnable_variants())[name]
  frames, crop = config.dataset.num_frames, config.dataset.crop_size
  assert f"done: 1 steps; test ({config.num_test_clips} clips x " \
         f"{config.num_test_crops} crops per video)" in log
  assert row["input"] == [frames, crop, crop]
