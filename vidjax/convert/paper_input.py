"""The data fields a converted model runs with: its own input, as its paper.

`dataset_fields(model, data)` -> config.dataset fields, `test_views(model,
data)` -> config.num_test_clips / num_test_crops, from the converted model
(`data`: frames, crop = the model's image size, classes, and what its
transformers processor does: `common.read_preprocessing`) and the dataset
its head was trained on (told by the class count):

* crop_size = the model's image size; test_resize_short = the processor's
  shortest edge (VideoMAE 224, TimeSformer 224 (448 for -HR), ViViT 256),
  else the crop; train_resize_short = the same, so training crops see the
  scale the model was evaluated at (the papers' training augmentations:
  configs/recipes.py);
* resize_short (the stored short side, decoded once): large enough that no
  view is upsampled from the stored frames: 320 for Kinetics-style data
  (VideoMAE's DATASET.md stores Kinetics at short side 320), 240 for
  Something-Something v2 (its native height, which VideoMAE keeps) and
  HMDB-51 (native), 256 for UCF-101 (Simonyan & Zisserman 2014), and never
  below the test resize;
* frame_stride, flip and test views of the paper, where the table below
  knows the (model, dataset) pair; otherwise configs/default.py's.

Paper facts (the same values as the paper configs in configs/):
* VideoMAE (Tong et al., NeurIPS 2022, Sec. 4 "Implementation details" and
  the finetuning table of the appendix; MCG-NJU/VideoMAE scripts): 16 frames
  at temporal stride 4 on Kinetics-400, 2 on Something-Something v2; test
  5 clips x 3 crops on K400, 2 x 3 on SSv2; no flip on SSv2
  (configs/videomae_pretrain.set_video_input, configs/recipes.py).
* TimeSformer (Bertasius et al., ICML 2021, Sec. 4 "Implementation details"):
  8 frames sampled at 1/32 on K400 (TimeSformer_divST_8x32_224.yaml; -HR:
  16 x 16 at 448, TimeSformer_divST_16x16_448.yaml; -L: 96 x 4); test one
  clip x 3 crops (configs/timesformer.py:k400). On SSv2 it samples one frame
  per 1/8 of the video (segment sampling, no flip), which a fixed stride only
  approximates: SSv2 videos average ~4 s at 12 fps (Goyal et al., 2017), so
  the stride spreads the clip over 48 frames.
* ViViT (Arnab et al., ICCV 2021, Sec. 4.1 / App. A): 32 frames at stride 2
  on Kinetics (ViViT-B/16x2), test 4 clips x 3 crops at short side 256
  (configs/vivit_factorized._k400, configs/recipes.vivit_kinetics).
"""
import dataclasses
from typing import Dict, Optional

from vidjax import cli  # noqa: F401  (puts the repo root, configs/, on sys.path)
from configs import recipes  # noqa: E402

# Class count -> the public dataset with that many classes (config.dataset).
DATASETS = {400: "kinetics400", 174: "something_something_v2",
            101: "ucf101", 51: "hmdb51", 487: "sports1m",
            8: "synthetic_motion"}
# The stored short side per dataset (see the module docstring); others 320.
STORED_SHORT = {"something_something_v2": recipes.SSV2_SHORT_SIDE,
                "ucf101": recipes.UCF101_SHORT_SIDE,
                "hmdb51": 240}  # HMDB-51's native height
DEFAULT_STORED_SHORT = recipes.KINETICS_SHORT_SIDE
SSV2_FRAMES = 48  # ~4 s at 12 fps: the span a segment-sampled clip covers


@dataclasses.dataclass(frozen=True)
class PaperInput:
  strides: Dict[int, int]  # num_frames -> frame stride; {} : by SSV2_FRAMES
  test_clips: int
  test_crops: int
  flip: bool


PAPER_INPUT = {
    ("videomae", "kinetics400"): PaperInput({16: 4}, 5, 3, True),
    ("videomae", "something_something_v2"): PaperInput({16: 2}, 2, 3, False),
    ("timesformer", "kinetics400"): PaperInput({8: 32, 16: 16, 96: 4}, 1, 3,
                                               True),
    ("timesformer", "something_something_v2"): PaperInput({}, 1, 3, False),
    ("vivit_spatiotemporal", "kinetics400"): PaperInput({32: 2}, 4, 3, True),
}


def dataset_name(data: dict) -> str:
  """The public dataset of the head's class count (synthetic_motion if
  none has it: the run then needs config.dataset set by the user)."""
  return DATASETS.get(data["num_classes"], "synthetic_motion")


def paper_input(model_name: str, data: dict) -> Optional[PaperInput]:
  return PAPER_INPUT.get((model_name, dataset_name(data)))


def frame_stride(paper: PaperInput, num_frames: int) -> Optional[int]:
  if not paper.strides:
    return max(1, SSV2_FRAMES // num_frames)
  return paper.strides.get(num_frames)


def dataset_fields(model_name: str, data: dict) -> dict:
  """config.dataset fields of the converted model (module docstring)."""
  name = dataset_name(data)
  crop = int(data["crop_size"])
  test_short = max(int(data.get("test_resize_short", 0)) or crop, crop)
  fields = dict(name=name, num_frames=int(data["num_frames"]), crop_size=crop,
                resize_short=max(STORED_SHORT.get(name, DEFAULT_STORED_SHORT),
                                 test_short),
                train_resize_short=test_short, test_resize_short=test_short)
  paper = paper_input(model_name, data)
  if paper is not None:
    stride = frame_stride(paper, fields["num_frames"])
    if stride:
      fields["frame_stride"] = stride
    fields["flip"] = paper.flip
  if "mean" in data:
    fields.update(mean=list(data["mean"]), std=list(data["std"]))
  if data.get("class_names"):
    fields["class_names"] = list(data["class_names"])
  return fields


def test_views(model_name: str, data: dict) -> dict:
  """config.num_test_clips / num_test_crops of the paper ({} if unknown)."""
  paper = paper_input(model_name, data)
  if paper is None:
    return {}
  return {"num_test_clips": paper.test_clips,
          "num_test_crops": paper.test_crops}
