"""ImageNet ResNet-50 layouts -> vidjax's per-frame 2D ResNet at parity
(transformers' ResNetForImageClassification; a torchvision / timm-named
state dict, written here from the same weights: no timm / torchvision
import), then inflated into I3D-R50 (+ non-local), SlowFast's Slow pathway
and TSM, checked on a static clip (Carreira & Zisserman 2017: a static clip
through the inflated net gives the 2D net's features)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vidjax import checkpoint, convert, init_adapt  # noqa: E402
from vidjax.registry import build_model  # noqa: E402
from vidjax.convert.common import rename_keys  # noqa: E402
from tools.conversion_parity import TORCHVISION  # noqa: E402

# One xdist worker runs this module: its module fixture is built once.
# Tiny models run once: compile-bound, so XLA optimisation level 0
# (conftest.fast_compile: 25 -> 21 CPU-s), same tolerances.
pytestmark = [pytest.mark.xdist_group("convert_image_resnet"),
              pytest.mark.fast_compile]

TOL = 1e-4
LABELS = ["a", "b", "c", "d", "e"]
RESNET = dict(widths=(4, 8, 16, 32), blocks_per_stage=(1, 2, 1, 1),
              stem_width=8, stem_pool=True, dropout_rate=0.0)


@pytest.fixture(scope="module")
def hf_resnet(tmp_path_factory):
  """Tiny bottleneck ResNetForImageClassification, every weight and BN
  statistic redrawn at O(1) scale, saved and converted (format detected)."""
  cfg = transformers.ResNetConfig(
      embedding_size=8, hidden_sizes=[16, 32, 64, 128], depths=[1, 2, 1, 1],
      layer_type="bottleneck", num_labels=5, id2label=dict(enumerate(LABELS)))
  torch.manual_seed(0)
  model = transformers.ResNetForImageClassification(cfg).eval()
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, t in model.state_dict().items():
      noise = torch.randn(t.shape, generator=gen)
      if name.endswith("num_batches_tracked"):
        continue
      if name.endswith("running_var"):
        t.copy_(0.5 + noise.abs())
      elif name.endswith(("running_mean", "bias")):
        t.copy_(0.3 * noise)
      elif t.ndim == 1:  # BN scale
        t.copy_(1.0 + 0.3 * noise)
      else:
        t.copy_(noise / float(np.prod(t.shape[1:])) ** 0.5)
  root = tmp_path_factory.mktemp("hf_resnet")
  model.save_pretrained(root / "hf")
  converted = convert.convert(str(root / "hf"))
  out = convert.save(converted, str(root / "out"))
  return model, converted, out, root


def _images(batch=2, size=32, seed=0):
  return np.random.RandomState(seed).randn(batch, 3, size, size).astype(
      np.float32)


def _run(model_cfg, variables, clip, capture=()):
  """Logits (+ the captured blocks' outputs) with BN running statistics."""
  model = build_model(ml_collections.ConfigDict(model_cfg), 5)

  def forward(variables, x):
    logits, state = model.apply(variables, x, capture_intermediates=lambda m,
                                _: m.name in capture, mutable=["intermediates"])
    inter = state.get("intermediates", {})
    return logits, {n: inter[n]["__call__"][0] for n in capture}
  logits, feats = jax.jit(forward)(variables, jnp.asarray(clip))
  return np.asarray(logits), feats


def _torch_logits(model, images):
  with torch.no_grad():
    return model(torch.from_numpy(images)).logits.numpy()


def test_hf_resnet_logits_match_transformers(hf_resnet):
  hf, converted, _, _ = hf_resnet
  assert converted.fmt == "hf_resnet" and converted.unused == []
  assert converted.model["widths"] == (4, 8, 16, 32)
  assert converted.data["class_names"] == tuple(LABELS)
  images = _images()
  want = _torch_logits(hf, images)
  variables = {"params": converted.params,
               "batch_stats": converted.batch_stats}
  got, _ = _run(converted.model, variables, images.transpose(0, 2, 3, 1)[
      :, None])
  err = float(np.abs(got - want).max())
  print(f"\nPARITY hf_resnet (ResNetForImageClassification) max|dlogit| "
        f"{err:.2e}")
  assert np.std(want) > 0.1 and err <= TOL, err


def test_torchvision_layout_state_dict_matches(hf_resnet):
  """The same weights under torchvision / timm resnet50 names (conv1, bn1,
  layerL.I.convJ, downsample.0/1, fc), a plain torch.save file: format
  read from the names, same logits."""
  hf, _, _, root = hf_resnet
  # the tool's renaming (tools/conversion_parity.py), one list of names
  state = rename_keys(hf.state_dict(), TORCHVISION)
  assert "layer2.1.conv3.weight" in state and "fc.weight" in state
  torch.save(state, root / "resnet50.pth")
  converted = convert.convert(str(root / "resnet50.pth"))
  assert converted.fmt == "resnet_torchvision" and converted.unused == []
  images = _images(seed=1)
  got, _ = _run(converted.model, {"params": converted.params,
                                  "batch_stats": converted.batch_stats},
                images.transpose(0, 2, 3, 1)[:, None])
  err = float(np.abs(got - _torch_logits(hf, images)).max())
  print(f"\nPARITY resnet_torchvision (same weights) max|dlogit| {err:.2e}")
  assert err <= TOL, err


def _config(name, inflation, **model):
  return ml_collections.ConfigDict({
      "model": dict(name=name, **model),
      "dataset": {"num_frames": 4, "crop_size": 32, "class_names": ()},
      "init_from": {"checkpoint_path": "x", "tubelet_init": "central_frame",
                    "posemb": "resize", "posemb_method": "bilinear",
                    "kernel_inflation": inflation}})


def _init_from(config, out, clip):
  """vidjax.train's init_from: adapt params and statistics, check, merge."""
  params, stats, where = checkpoint.load_pretrained(out)
  model = build_model(config.model, 5)
  target = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jnp.asarray(clip))
  adapted = init_adapt.adapt_pretrained(config, params, target["params"],
                                        where, log=lambda _: None)
  stats = init_adapt.adapt_batch_stats(config, stats)
  checkpoint.check_fits(target["params"], adapted, where)
  _, done, skipped, _ = checkpoint.merge_pretrained(target["params"], adapted)
  # What the checkpoint does not give (Fast pathway, laterals, non-local
  # blocks) gets random O(1) values: numpy, no compile of model.init.
  rng = np.random.RandomState(0)
  fresh = jax.tree.map(lambda s: (0.3 * rng.randn(*s.shape)).astype(s.dtype),
                       target)
  fresh["batch_stats"] = jax.tree.map(lambda a: 1 + np.abs(a),
                                      fresh["batch_stats"])
  for name, block in fresh["params"].items():  # as NonLocalBlock's init:
    if "nonlocal" in name:                      # output BN scale (bias) 0
      block["bn"] = jax.tree.map(np.zeros_like, block["bn"])
  merged = checkpoint.merge_pretrained(fresh["params"], adapted)[0]
  merged_stats = checkpoint.merge_pretrained(fresh["batch_stats"], stats)[0]
  return {"params": merged, "batch_stats": merged_stats}, skipped


def _static(frames, seed=2):
  frame = _images(seed=seed).transpose(0, 2, 3, 1)[:, None]
  return frame, np.repeat(frame, frames, axis=1)


@pytest.mark.parametrize("inflation,padding", [("mean", "edge"),
                                               ("center", "zeros")])
def test_i3d_r50_from_resnet_on_a_static_clip_equals_the_2d_net(
    hf_resnet, inflation, padding):
  """Every 2D kernel inflated to kt x k x k (I3D: / kt; or the centre tap);
  non-local blocks start as the identity: on a static clip the I3D-R50
  (stem 3x7x7, 3x1x1 first convs) gives the 2D ResNet's logits."""
  _, converted, out, _ = hf_resnet
  frame, clip = _static(4)
  image, _ = _run(converted.model, {"params": converted.params,
                                    "batch_stats": converted.batch_stats},
                  frame)
  config = _config("i3d_r50", inflation, **RESNET, stem_temporal_kernel=3,
                   stem_temporal_stride=1, pool1_temporal_stride=1,
                   pool2_temporal_stride=1,
                   temporal_kernels=((3,), (3, 1), (3,), (3,)),
                   nonlocal_blocks=((), (0,), (), ()),
                   temporal_padding=padding)
  variables, skipped = _init_from(config, out, clip)
  assert all("nonlocal" in s for s in skipped), skipped
  kernel = variables["params"]["stage1_block0"]["conv1"]["kernel"]
  src = converted.params["stage1_block0"]["conv1"]["kernel"]
  assert kernel.shape == (3,) + src.shape
  np.testing.assert_allclose(kernel[1], src / 3 if inflation == "mean"
                             else src, rtol=1e-6)
  got, _ = _run(config.model, variables, clip)
  assert np.std(image) > 0.1
  np.testing.assert_allclose(got, image, rtol=0, atol=TOL)


def test_slowfast_slow_pathway_from_resnet_on_a_static_clip(hf_resnet):
  """SlowFast: the Slow pathway takes the ResNet (centre-tap inflation), its
  lateral input channels zero: on a static clip its last block's features
  at every time step equal the 2D net's, whatever the Fast pathway does."""
  _, converted, out, _ = hf_resnet
  frame, clip = _static(4)
  last = "stage3_block0"
  _, image = _run(converted.model, {"params": converted.params,
                                    "batch_stats": converted.batch_stats},
                  frame, capture=(last,))
  config = _config("slowfast", "center", **RESNET, alpha=2, beta_inv=4,
                   slow_temporal_kernels=(1, 1, 3, 3),
                   fast_temporal_kernels=(3, 3, 3, 3),
                   slow_stem_temporal_kernel=1, fast_stem_temporal_kernel=3,
                   lateral="conv", lateral_kernel=3)
  variables, skipped = _init_from(config, out, clip)
  assert all(s.startswith(("fast_", "lateral", "head/")) for s in skipped)
  conv1 = variables["params"]["slow_stage0_block0"]["conv1"]["kernel"]
  assert conv1.shape == (1, 1, 8 + 2 * 2, 4)  # + lateral channels, zero
  assert not np.any(conv1[:, :, 8:]) and np.any(conv1[:, :, :8])
  _, feats = _run(config.model, variables, clip, capture=("slow_" + last,))
  slow = np.asarray(feats["slow_" + last])
  assert slow.shape[1] == 2 and np.abs(image[last]).max() > 0.1
  for t in range(2):
    np.testing.assert_allclose(slow[:, t], np.asarray(image[last])[:, 0],
                               rtol=0, atol=TOL)


def test_tsm_takes_the_2d_weights_and_interior_frames_match(hf_resnet):
  """TSM = the 2D ResNet with shifts: every weight loads as is. On a static
  clip a shift changes nothing except the zeros shifted in at the clip's
  ends, which reach one frame further per block: with 5 blocks and 12
  frames, frames 5 and 6 equal the 2D net's features, frame 0 does not."""
  _, converted, out, _ = hf_resnet
  frame, clip = _static(12)
  last = "stage3_block0"
  _, image = _run(converted.model, {"params": converted.params,
                                    "batch_stats": converted.batch_stats},
                  frame, capture=(last,))
  config = _config("tsm", "mean", **RESNET, shift_place="residual",
                   zero_init_last_bn=False)
  config.dataset.num_frames = 12
  variables, skipped = _init_from(config, out, clip)
  assert skipped == []
  _, feats = _run(config.model, variables, clip, capture=(last,))
  video, image = np.asarray(feats[last]), np.asarray(image[last])[:, 0]
  for t in (5, 6):
    np.testing.assert_allclose(video[:, t], image, rtol=0, atol=TOL)
  assert np.abs(video[:, 0] - image).max() > 1e-3
