"""transformers' image ViT -> vidjax "vit" at parity, and the papers'
initialisations of ViViT models 1-4 and TimeSformer from it (Arnab et al.
2021, Sec. 3.4; Bertasius et al. 2021's release), checked by properties that
hold exactly on a static clip. Tiny random models, nothing downloaded."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vidjax import checkpoint, convert, init_adapt  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402
from vidjax.layers.embedding import inflate_patch_kernel  # noqa: E402
from vidjax.registry import build_model  # noqa: E402

# One xdist worker runs this module: its module fixture is built once.
# Tiny models run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 22 -> 19 CPU-s), same tolerances.
pytestmark = [pytest.mark.xdist_group("convert_image_vit"),
              pytest.mark.fast_compile]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4
LABELS = ["cat", "dog", "eel", "fox", "gnu"]
WIDTH = dict(hidden_size=32, num_heads=2, mlp_dim=64)


def _randomize(model, seed=0):
  """Every weight at O(1) scale (HF's 0.02 init hides GELU / eps errors)."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if p.ndim == 1 and name.endswith("weight"):
        p.copy_(1.0 + 0.3 * noise)
      elif p.ndim == 1:
        p.copy_(0.3 * noise)
      elif name.endswith("weight"):
        p.copy_(noise / float(np.prod(p.shape[1:])) ** 0.5)
      else:
        p.copy_(0.5 * noise)
  return model.eval()


@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
  """A tiny ViTForImageClassification saved with save_pretrained + its
  vidjax conversion written by the CLI without --format."""
  cfg = transformers.ViTConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=64, image_size=32, patch_size=8, num_labels=5,
      id2label=dict(enumerate(LABELS)))
  torch.manual_seed(0)
  model = _randomize(transformers.ViTForImageClassification(cfg))
  root = tmp_path_factory.mktemp("hf_vit")
  model.save_pretrained(root / "hf")
  out = root / "out"
  result = subprocess.run(
      [sys.executable, "-m", "tools.convert_checkpoint",
       f"--source={root / 'hf'}", f"--out={out}"], cwd=ROOT,
      capture_output=True, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  return model, str(out), report


def _images(batch=2, size=32, seed=0):
  return np.random.RandomState(seed).randn(batch, 3, size, size).astype(
      np.float32)


def _vit_logits(model_cfg, params, clip):
  model = build_model(ml_collections.ConfigDict(model_cfg),
                      params["head"]["bias"].shape[0])
  return np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(
      params, jnp.asarray(clip)))


def test_cli_detects_the_format_and_logits_match_transformers(hf_vit):
  hf, out, report = hf_vit
  assert report["format"] == "hf_vit" and report["model"] == "vit"
  assert report["unused_keys"] == [] and report["class_names"] == 5
  assert "init_from.checkpoint_path" in report["note"]  # how to use it
  assert report["params"] == sum(p.numel() for p in hf.parameters())
  params, _, where = checkpoint.load_pretrained(out)
  meta = init_adapt.read_source_meta(where)
  assert meta["class_names"] == LABELS  # id2label kept
  with open(os.path.join(out, "config.json")) as f:
    model_cfg = json.load(f)["model"]
  assert model_cfg["approximate_gelu"] is False  # hidden_act "gelu"
  assert model_cfg["layer_norm_eps"] == 1e-12
  images = _images()
  with torch.no_grad():
    want = hf(torch.from_numpy(images)).logits.numpy()
  clip = images.transpose(0, 2, 3, 1)[:, None]  # one frame per clip
  got = _vit_logits(model_cfg, params, clip)
  err = float(np.abs(got - want).max())
  print(f"\nPARITY hf_vit (ViTForImageClassification) max|dlogit| {err:.2e}")
  assert np.std(want) > 0.1 and err <= TOL, err


def test_vit_backbone_without_head_converts(tmp_path):
  cfg = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32,
                               image_size=16, patch_size=8)
  transformers.ViTModel(cfg).save_pretrained(tmp_path)
  converted = convert.convert(str(tmp_path))
  assert converted.fmt == "hf_vit"
  assert converted.unused == ["vit.pooler.dense.bias",
                              "vit.pooler.dense.weight"]
  assert not np.any(converted.params["head"]["kernel"])


def _video_config(name, **model):
  config = ml_collections.ConfigDict({
      "model": dict(name=name, **WIDTH, **model),
      "dataset": {"num_frames": 4, "crop_size": 32, "class_names": ()},
      "init_from": {"checkpoint_path": "x", "tubelet_init": "central_frame",
                    "posemb": "resize", "posemb_method": "bilinear",
                    "kernel_inflation": "mean"}})
  return config


def _init_video(config, params, where, clip, run=True):
  """init_from as vidjax.train does it (adapt, check, merge into a fresh
  init); with the image head copied (same classes), one compile for the
  fresh init + forward. Returns (logits or None, merged, skipped)."""
  model = build_model(config.model, 5)
  target = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jnp.asarray(clip))["params"]
  adapted = init_adapt.adapt_pretrained(config, params, target, where,
                                        log=lambda _: None)
  checkpoint.check_fits(target, adapted, where)
  _, _, skipped, _ = checkpoint.merge_pretrained(target, adapted)
  if not run:
    return None, adapted, skipped

  def forward(adapted, x):
    fresh = model.init(jax.random.key(1), x)["params"]
    merged = checkpoint.merge_pretrained(fresh, adapted)[0]
    merged["head"] = params["head"]
    return model.apply({"params": merged}, x), merged
  logits, merged = jax.jit(forward)(adapted, jnp.asarray(clip))
  return np.asarray(logits), merged, skipped


def _static_clip(frames=4, seed=1):
  frame = _images(seed=seed).transpose(0, 2, 3, 1)
  return frame, np.repeat(frame[:, None], frames, axis=1)


def test_timesformer_from_image_vit_on_a_static_clip_equals_the_vit(hf_vit):
  """TimeSformer from the converted ViT (temporal attention = a copy of the
  spatial one, temporal_fc and time embedding zero: the release's start) on
  a static clip gives the image ViT's logits: every frame's patches evolve
  as the image's, and the CLS token averages T equal copies."""
  _, out, _ = hf_vit
  params, _, where = checkpoint.load_pretrained(out)
  frame, clip = _static_clip()
  with open(os.path.join(out, "config.json")) as f:
    image = _vit_logits(json.load(f)["model"], params, frame[:, None])
  config = _video_config("timesformer", patch_size=8, num_layers=2,
                         approximate_gelu=False, layer_norm_eps=1e-12)
  # A moving clip too (batch rows 2, 3): frames differ, logits change.
  moving = clip + np.random.RandomState(3).randn(*clip.shape) * 0.5
  both, merged, skipped = _init_video(
      config, params, where, np.concatenate([clip, moving.astype("f4")]))
  got, moved = both[:2], both[2:]
  assert np.std(image) > 0.1
  np.testing.assert_allclose(got, image, rtol=0, atol=TOL)
  assert np.abs(moved - got).max() > 1e-3
  assert skipped == ["head/bias: not in checkpoint",
                     "head/kernel: not in checkpoint"]
  block = merged["block_1"]
  np.testing.assert_array_equal(block["temporal_attention"]["query"]["kernel"],
                                block["attention"]["query"]["kernel"])
  assert not np.any(block["temporal_fc"]["kernel"])
  assert not np.any(merged["time_embedding"])


@pytest.fixture(scope="module")
def gap_vit():
  """A vidjax image ViT without a CLS token (classifier="gap")."""
  vit = build_model(ml_collections.ConfigDict(dict(
      name="vit", patch_size=8, num_layers=2, classifier="gap",
      head_init_std=0.5, **WIDTH)), 5)
  frame, clip = _static_clip()
  params = jax.tree.map(np.asarray, jax.jit(vit.init)(
      jax.random.key(2), frame[:, None])["params"])
  image = np.asarray(jax.jit(vit.apply)({"params": params}, frame[:, None]))
  assert np.std(image) > 0.1
  return params, image, clip


@pytest.mark.parametrize("name,tubelet_init", [
    ("vivit_spatiotemporal", "central_frame"),
    ("vivit_factorized_self_attention", "average")])
def test_vivit_from_image_vit_on_a_static_clip_equals_the_vit(
    gap_vit, name, tubelet_init):
  """On a static clip, with central-frame or averaged tubelets and the
  position embedding repeated over time, every token appears T' times:
  model 1's joint attention then gives each distinct key T' equal weights
  (the same average), and model 3's temporal attention starts as a no-op
  (output projection zero), so both give the image ViT's logits exactly.
  (With a CLS token, present once against T' copies of every patch, model 1
  is only close: the ViT here pools by averaging, "gap".)"""
  params, image, clip = gap_vit
  config = _video_config(name, patch_size=(2, 8, 8), num_layers=2,
                         classifier="gap")
  if name != "vivit_spatiotemporal":
    del config.model.classifier
  config.init_from.tubelet_init = tubelet_init
  got, merged, skipped = _init_video(config, params, "", clip)
  np.testing.assert_allclose(got, image, rtol=0, atol=TOL)
  # Model 3's temporal attention keeps its own init (output projection 0).
  assert {s.split(": ")[0] for s in skipped} - {"head/bias", "head/kernel"} \
      == ({f"encoder/block_{i}/temporal_{p}" for i in range(2) for p in (
          "norm/scale", "norm/bias", *(f"attention/{n}/{w}" for n in (
              "query", "key", "value", "out") for w in ("kernel", "bias")))}
          if "self_attention" in name else set())
  if "self_attention" in name:
    assert not np.any(merged["encoder"]["block_0"]["temporal_attention"][
        "out"]["kernel"])


def test_vivit_models_2_and_4_take_the_vit_weights(gap_vit):
  """Model 2: the ViT's transformer is the spatial encoder (the temporal one
  keeps its initialisation); model 4: the same attention weights (its heads
  split over space and time) and the position embedding repeated to
  (1, T', N, D)."""
  params, _, clip = gap_vit
  config = _video_config("vivit_factorized", patch_size=(2, 8, 8),
                         spatial_layers=2, temporal_layers=1,
                         classifier="gap")
  _, merged, skipped = _init_video(config, params, "", clip, run=False)
  for got, want in zip(jax.tree.leaves(merged["spatial"]),
                       jax.tree.leaves(params["transformer"])):
    np.testing.assert_array_equal(got, want)
  assert all(s.startswith(("temporal/", "head/")) for s in skipped), skipped
  config = _video_config("vivit_factorized_dot_product",
                         patch_size=(2, 8, 8), num_layers=2)
  _, merged, skipped = _init_video(config, params, "", clip, run=False)
  assert all(s.startswith("head/") for s in skipped), skipped
  pos = params["transformer"]["pos_embedding"]["pos_embedding"]
  assert merged["pos_embedding"]["pos_embedding"].shape == (1, 2, 16, 32)
  for step in range(2):  # gap: no CLS row; the same grid repeated over time
    np.testing.assert_allclose(
        merged["pos_embedding"]["pos_embedding"][0, step], pos[0], atol=1e-6)
  np.testing.assert_array_equal(
      merged["encoder"]["block_1"]["attention"]["value"]["kernel"],
      params["transformer"]["encoder"]["block_1"]["attention"]["value"][
          "kernel"])
  np.testing.assert_array_equal(
      merged["embedding"]["kernel"],
      inflate_patch_kernel(params["embedding"]["kernel"], 2, "central_frame"))


def test_unknown_format_and_model_type_are_one_line_errors(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
  from safetensors.numpy import save_file
  save_file({"w": np.zeros(2, np.float32)},
            str(tmp_path / "model.safetensors"))
  with pytest.raises(VidjaxError, match="model_type='bert'.*--format"):
    convert.convert(str(tmp_path))
  with pytest.raises(VidjaxError, match="--format='hf_nope'"):
    convert.convert(str(tmp_path), "hf_nope")


def test_format_from_model_type_or_tensor_names():
  from vidjax.convert.common import detect_format
  for model_type, fmt in (("timesformer", "hf_timesformer"),
                          ("vivit", "hf_vivit"), ("videomae", "hf_videomae"),
                          ("vit", "hf_vit"), ("resnet", "hf_resnet")):
    assert detect_format({"w": 0}, {"model_type": model_type}, "d") == fmt
  assert detect_format({"decoder.norm.weight": 0}, {"model_type": "videomae"},
                       "d") == "hf_videomae_pretrain"
  # A timm Hub folder: config.json without model_type; torchvision names.
  assert detect_format({"module.conv1.weight": 0,
                        "module.layer1.0.conv1.weight": 0},
                       {"architecture": "resnet50"}, "d") == (
                           "resnet_torchvision")
  assert detect_format({"encoder.blocks.0.attn.qkv.weight": 0}, {},
                       "d") == "videomae_release"
  with pytest.raises(VidjaxError, match="cannot tell its format"):
    detect_format({"w": 0}, {}, "d")
