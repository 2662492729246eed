"""ucf101 / hmdb51 / kinetics400 / something_something_v2 over the user's copy.

Tiny fake trees in each dataset's official layout and annotation formats; the
listing must give the official classes, label ids and split membership, report
listed-but-absent videos, and name any missing annotation file exactly.
"""
import json
import os
import shutil

import numpy as np
import pytest

from test_video_folder import clip, dcfg, write_video
from vidjax.data import datasets, public_datasets
from vidjax.errors import VidjaxError

# One xdist worker runs this module: its module fixture is built once.
pytestmark = pytest.mark.xdist_group("public_datasets")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
  d = tmp_path_factory.mktemp("src")
  small = clip(0, n=8, h=32, w=32)
  return {ext: open(write_video(f"{d}/a.{ext}", small), "rb").read()
          for ext in ("avi", "mp4", "webm")}


def put(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)


def load(tmp_path, name, manual, data_dir="tfds", **kw):
  return datasets.load(dcfg(name=name, manual_dir=str(manual), num_frames=4,
                            resize_short=16, data_dir=str(tmp_path / data_dir),
                            **kw))


def assert_cheap_class_names(name, manual, data, **kw):
  """class_names from the annotation files alone equal the listing's."""
  cfg = dcfg(name=name, manual_dir=str(manual), data_dir="/nonexistent", **kw)
  assert datasets.class_names(cfg) == data.class_names
  assert datasets.num_classes(cfg) == len(data.class_names)


def ucf_tree(root, videos):
  for cls, files in (("ApplyEyeMakeup", ["g01_c01", "g02_c01", "g03_c01"]),
                     ("HandstandPushups", ["g01_c01", "g02_c02", "g03_c01"])):
    name = "HandStandPushups" if cls == "HandstandPushups" else cls
    for g in files:
      put(f"{root}/UCF-101/{cls}/v_{name}_{g}.avi", videos["avi"])
  lists = f"{root}/ucfTrainTestlist"
  put(f"{lists}/classInd.txt",
      "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n")
  for s, (train, test) in {1: (("g01", "g02"), ("g03",)),
                           2: (("g02", "g03"), ("g01",))}.items():
    put(f"{lists}/trainlist0{s}.txt", "".join(
        f"ApplyEyeMakeup/v_ApplyEyeMakeup_{g}_c01.avi 1\r\n"
        # the lists spell HandstandPushups; the files HandStandPushups
        f"HandstandPushups/v_HandstandPushups_{g}_c0{1 + (g == 'g02')}.avi 2"
        "\r\n" for g in train) + "YoYo/v_YoYo_g01_c01.avi 3\r\n")
    put(f"{lists}/testlist0{s}.txt", "".join(
        f"ApplyEyeMakeup/v_ApplyEyeMakeup_{g}_c01.avi\r\n"
        f"HandstandPushups/v_HandStandPushups_{g}_c01.avi\r\n" for g in test))


def test_ucf101_official_lists(tmp_path, videos):
  ucf_tree(tmp_path / "m", videos)
  data = load(tmp_path, "ucf101", tmp_path / "m")
  assert data.class_names == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
  assert data.train.paths == [
      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
      "HandstandPushups/v_HandStandPushups_g01_c01.avi",
      "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
      "HandstandPushups/v_HandStandPushups_g02_c02.avi"]
  assert list(data.train.labels) == [0, 1, 0, 1]
  assert data.test.paths == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi",
                             "HandstandPushups/v_HandStandPushups_g03_c01.avi"]
  assert data.report.missing == [
      ("YoYo/v_YoYo_g01_c01.avi", "listed in trainlist01.txt:5, no such file")]
  assert data.report.empty_classes == ["YoYo"]
  ex = data.test[1]
  assert ex["label"] == 1 and ex["video"].shape == (8, 16, 16, 3)
  split2 = load(tmp_path, "ucf101", tmp_path / "m", split=2)
  assert sorted(split2.test.paths) == [
      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
      "HandstandPushups/v_HandStandPushups_g01_c01.avi"]
  assert_cheap_class_names("ucf101", tmp_path / "m", data)
  os.remove(tmp_path / "m" / "ucfTrainTestlist" / "testlist02.txt")
  # prepared: opens from its manifest, without the annotation files
  assert load(tmp_path, "ucf101", tmp_path / "m", split=2).test.paths == \
      split2.test.paths
  with pytest.raises(VidjaxError) as err:
    load(tmp_path, "ucf101", tmp_path / "m", "fresh", split=2)
  expected = os.path.join(str(tmp_path / "m"), "ucfTrainTestlist",
                          "testlist02.txt")
  assert str(err.value) == (
      "ucf101: expected UCF101TrainTestSplits-RecognitionTask.zip's "
      f"testlist02.txt at {expected} (config.dataset.manual_dir)")
  with pytest.raises(VidjaxError, match="config.dataset.split=4: ucf101 has "
                     "official split"):
    load(tmp_path, "ucf101", tmp_path / "m", split=4)
  shutil.rmtree(tmp_path / "m" / "UCF-101")
  with pytest.raises(VidjaxError, match=r"ucf101: expected the video folder "
                     r"of UCF101.rar .* at .*m/UCF-101 "):
    load(tmp_path, "ucf101", tmp_path / "m", "fresh")


def test_hmdb51_split_files(tmp_path, videos):
  m = tmp_path / "m"
  rows = {"brush_hair": ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
                         "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0."
                         "avi",
                         "brushing_hair_brush_hair_h_cm_np1_le_goo_1.avi"],
          "cartwheel": ["Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8"
                        ".avi",
                        "Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi",
                        "Cartwheel_cartwheel_f_cm_np1_ri_med_2.avi"]}
  for cls, files in rows.items():
    for f in files:
      put(f"{m}/hmdb51_org/{cls}/{f}", videos["avi"])
    # official: "<video>.avi <id> " with 1 = train, 2 = test, 0 = unused
    put(f"{m}/testTrainMulti_7030_splits/{cls}_test_split1.txt",
        "".join(f"{f} {k} \n" for f, k in zip(files, (1, 2, 0))))
  data = load(tmp_path, "hmdb51", m)
  assert data.class_names == ["brush_hair", "cartwheel"]
  assert data.train.paths == [f"{c}/{rows[c][0]}" for c in rows]
  assert data.test.paths == [f"{c}/{rows[c][1]}" for c in rows]
  assert list(data.test.labels) == [0, 1]
  assert_cheap_class_names("hmdb51", m, data)
  with pytest.raises(VidjaxError, match=r"hmdb51: expected <class>_test_"
                     r"split2.txt files in .*testTrainMulti_7030_splits"):
    load(tmp_path, "hmdb51", m, split=2)


def kinetics_tree(m, videos, header="label,youtube_id,time_start,time_end,"
                  "split"):
  extra = ",0" if header.endswith("is_cc") else ""
  rows = {"train": [("abseiling", "0347ZoDXyP0", 14, 24),
                    ('"passing American football (in game)"', "-0IErS_cisg",
                     5, 15),
                    ("abseiling", "gone_video1", 0, 10)],
          "validate": [("abseiling", "3E7Jib8Yq5M", 1, 11),
                       ('"passing American football (in game)"',
                        "zzz_Val-Id_", 120, 130)]}
  for s, table in rows.items():
    put(f"{m}/kinetics400/{s}.csv", header + "\n" + "".join(
        f"{lab},{y},{a},{b},{s}{extra}\n" for lab, y, a, b in table))
    for lab, y, a, b in table:
      if not y.startswith("gone"):
        folder = "train" if s == "train" else "val"
        put(f"{m}/{folder}/{y}_{a:06d}_{b:06d}.mp4", videos["mp4"])


@pytest.mark.parametrize("header", [
    "label,youtube_id,time_start,time_end,split",
    "label,youtube_id,time_start,time_end,split,is_cc"])
def test_kinetics400_csvs(tmp_path, videos, header):
  kinetics_tree(tmp_path / "m", videos, header)
  data = load(tmp_path, "kinetics400", tmp_path / "m")
  assert data.class_names == ["abseiling",
                              "passing American football (in game)"]
  assert data.train.paths == ["train/0347ZoDXyP0_000014_000024.mp4",
                              "train/-0IErS_cisg_000005_000015.mp4"]
  assert list(data.train.labels) == [0, 1]
  assert data.test.paths == ["val/3E7Jib8Yq5M_000001_000011.mp4",
                             "val/zzz_Val-Id__000120_000130.mp4"]
  assert list(data.test.labels) == [0, 1]
  assert data.report.missing == [("gone_video1_000000_000010.mp4",
                                  "listed in train.csv:4, no such file")]
  assert_cheap_class_names("kinetics400", tmp_path / "m", data)
  assert datasets.num_classes(dcfg(
      name="kinetics400", manual_dir=str(tmp_path / "m"))) == 2


def test_kinetics400_missing_annotation_is_named(tmp_path, videos):
  kinetics_tree(tmp_path / "m", videos)
  os.remove(tmp_path / "m" / "kinetics400" / "validate.csv")
  with pytest.raises(VidjaxError) as err:
    load(tmp_path, "kinetics400", tmp_path / "m")
  path = os.path.join(str(tmp_path / "m"), "kinetics400", "validate.csv")
  assert str(err.value) == ("kinetics400: expected the official annotation "
                            f"file validate.csv at {path} "
                            "(config.dataset.manual_dir)")
  with pytest.raises(VidjaxError, match="config.dataset.manual_dir is empty"):
    load(tmp_path, "kinetics400", "")


def test_something_something_v2_json(tmp_path, videos):
  m = tmp_path / "m"
  labels = {"Holding something next to something": "0",
            "Pushing something from left to right": "1",
            "Putting something on a surface": "2"}
  train = [{"id": "78687", "label": "holding potato next to vicks vaporub "
            "bottle", "template": "Holding [something] next to [something]",
            "placeholders": ["potato", "vicks vaporub bottle"]},
           {"id": "42326", "label": "putting a cup on a surface",
            "template": "Putting [something] on a surface",
            "placeholders": ["a cup"]},
           {"id": "999999", "label": "gone", "template":
            "Putting [something] on a surface", "placeholders": ["x"]}]
  val = [{"id": "74225", "label": "pushing a pen from left to right",
          "template": "Pushing [something] from left to right",
          "placeholders": ["a pen"]}]
  for name, obj in (("labels", labels), ("train", train),
                    ("validation", val)):
    put(f"{m}/labels/something-something-v2-{name}.json", json.dumps(obj))
  for e in train[:2] + val:
    put(f"{m}/20bn-something-something-v2/{e['id']}.webm", videos["webm"])
  data = load(tmp_path, "something_something_v2", m)
  assert data.class_names == list(labels)
  assert data.train.paths == ["78687.webm", "42326.webm"]
  assert list(data.train.labels) == [0, 2]
  assert data.test.paths == ["74225.webm"] and list(data.test.labels) == [1]
  assert data.report.missing == [
      ("999999.webm", "listed in something-something-v2-train.json id 999999,"
       " no such file")]
  got = data.train[0]["video"].frames(np.arange(8))
  assert got.shape == (8, 16, 16, 3)
  assert_cheap_class_names("something_something_v2", m, data)
  assert set(public_datasets.LISTINGS) <= set(datasets.PAPER_NUM_CLASSES)
  os.remove(f"{m}/labels/something-something-v2-labels.json")
  with pytest.raises(VidjaxError, match=r"expected the official annotation "
                     r"file something-something-v2-labels.json at .*labels"):
    load(tmp_path, "something_something_v2", m, "fresh")
