"""tools/convert_checkpoint: transformers' PyTorch models -> vidjax, at parity.

Tiny transformers models (random init with a fixed torch seed, then every
weight redrawn at O(1) scale so GELU forms, LayerNorm affines, biases and
head layouts all move the logits) are saved with `save_pretrained`,
converted, loaded into vidjax and run on the same clip in float32: logits
must agree to 1e-4. Nothing is downloaded.
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vidjax import checkpoint, convert  # noqa: E402
from vidjax.errors import VidjaxError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, num_frames=4, image_size=32)
TOL = 1e-4
# Tiny models run once or trained 1 step: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile: 47 -> 37 CPU-s), same tolerance.
pytestmark = pytest.mark.fast_compile


def _randomize(model, seed=0):
  """Redraws every parameter at O(1) scale (HF's init is ~0.02: too small to
  tell exact from tanh GELU apart)."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if p.ndim == 1 and name.endswith("weight"):  # LayerNorm scale
        p.copy_(1.0 + 0.3 * noise)
      elif p.ndim == 1:
        p.copy_(0.3 * noise)
      elif name.endswith("weight"):  # Linear / Conv: unit-variance outputs
        p.copy_(noise / float(np.prod(p.shape[1:])) ** 0.5)
      else:  # cls / position / time embeddings
        p.copy_(0.5 * noise)
  return model.eval()


def _timesformer(**kw):
  cfg = transformers.TimesformerConfig(**dict(TINY, patch_size=8,
                                              num_labels=8, **kw))
  torch.manual_seed(0)
  return _randomize(transformers.TimesformerForVideoClassification(cfg))


def _vivit(**kw):
  cfg = transformers.VivitConfig(**dict(TINY, tubelet_size=[2, 8, 8],
                                        num_labels=8, **kw))
  torch.manual_seed(0)
  return _randomize(transformers.VivitForVideoClassification(cfg))


def _clip(frames=4, size=32, batch=2, seed=0):
  """(B, T, C, H, W) float32 numpy, transformers' layout."""
  rng = np.random.RandomState(seed)
  return rng.randn(batch, frames, 3, size, size).astype(np.float32)


def _torch_logits(model, clip):
  with torch.no_grad():
    return model(torch.from_numpy(clip)).logits.numpy()


def _vidjax_logits(model, params, clip):
  x = jnp.asarray(clip.transpose(0, 1, 3, 4, 2))  # -> (B, T, H, W, C)
  return np.asarray(jax.jit(lambda p, x: model.apply(
      {"params": p}, x, train=False))(params, x))


def _check_parity(hf_model, converted):
  clip = _clip(converted.data["num_frames"], converted.data["crop_size"])
  want = _torch_logits(hf_model, clip)
  got = _vidjax_logits(convert.build(converted), converted.params, clip)
  assert got.shape == want.shape == (2, 8)
  assert np.std(want) > 0.1  # logits far from 0: the comparison means something
  assert np.abs(got - want).max() <= TOL, np.abs(got - want).max()
  return clip, want


@pytest.mark.parametrize("attention_type",
                         ["divided_space_time", "joint_space_time"])
def test_timesformer_logits_match_transformers(tmp_path, attention_type):
  hf = _timesformer(attention_type=attention_type)
  hf.save_pretrained(tmp_path / "hf")
  converted = convert.convert(str(tmp_path / "hf"), "hf_timesformer")
  assert converted.model == dict(
      name="timesformer", patch_size=8, hidden_size=32, num_heads=2,
      mlp_dim=64, num_layers=2, attention_type=attention_type,
      approximate_gelu=False, layer_norm_eps=1e-6)
  assert converted.unused == []
  clip, want = _check_parity(hf, converted)
  if attention_type == "divided_space_time":
    # The test can fail: with the tanh GELU (vidjax's default) the logits
    # miss the tolerance.
    wrong = dict(converted.model, approximate_gelu=True)
    model = convert.build(convert.Converted(
        converted.params, wrong, converted.data, [], "", ""))
    assert np.abs(_vidjax_logits(model, converted.params, clip)
                  - want).max() > TOL


def test_vivit_logits_match_transformers(tmp_path):
  """ViViT's default hidden_act "gelu_fast" is the tanh GELU."""
  hf = _vivit()
  hf.save_pretrained(tmp_path / "hf")
  converted = convert.convert(str(tmp_path / "hf"), "hf_vivit")
  assert converted.model["name"] == "vivit_spatiotemporal"
  assert converted.model["patch_size"] == (2, 8, 8)
  assert converted.model["approximate_gelu"] is True
  assert converted.unused == []
  _check_parity(hf, converted)


def test_vivit_raw_state_dict_with_module_names_and_exact_gelu(tmp_path):
  """A `torch.save(model.state_dict())` file uses transformers-5 module names
  (vivit.layers.N.attention.q_proj, mlp.fc1); --config gives the rest, here
  hidden_act="gelu" (exact)."""
  hf = _vivit(hidden_act="gelu")
  torch.save({"model": hf.state_dict()}, tmp_path / "weights.pth")
  assert any(".q_proj." in k for k in hf.state_dict())
  hf.config.to_json_file(tmp_path / "config.json")
  converted = convert.convert(str(tmp_path / "weights.pth"), "hf_vivit",
                              str(tmp_path / "config.json"))
  assert converted.model["approximate_gelu"] is False
  _check_parity(hf, converted)


def test_cli_output_loads_through_init_from_and_config(tmp_path):
  """The CLI's checkpoint loads with checkpoint.load_pretrained (what
  config.init_from uses) into the model its config.py builds; same logits."""
  hf = _timesformer()
  hf.save_pretrained(tmp_path / "hf")
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "-m", "tools.convert_checkpoint",
       f"--source={tmp_path / 'hf'}", "--format=hf_timesformer",
       f"--out={out}"], cwd=ROOT, capture_output=True, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["model"] == "timesformer" and report["unused_keys"] == []
  assert report["params"] == sum(p.numel() for p in hf.parameters())

  import importlib.util
  spec = importlib.util.spec_from_file_location("converted_cfg",
                                                out / "config.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  assert config.init_from.checkpoint_path == str(out)
  assert config.dataset.name == "synthetic_motion"  # 8 classes
  assert (config.dataset.num_frames, config.dataset.crop_size) == (4, 32)
  from vidjax import costs
  model, shape = costs.configured_model(config)
  assert shape == (4, 32, 32, 3)
  fresh = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1,) + shape)))["params"]
  params, _, _ = checkpoint.load_pretrained(config.init_from.checkpoint_path)
  merged, done, skipped, unused = checkpoint.merge_pretrained(fresh, params)
  assert skipped == [] and unused == [] and len(done) > 0
  clip = _clip()
  got = _vidjax_logits(model, merged, clip)
  assert np.abs(got - _torch_logits(hf, clip)).max() <= TOL


def test_wrong_format_names_missing_keys_in_one_line(tmp_path):
  _timesformer().save_pretrained(tmp_path / "hf")
  with pytest.raises(VidjaxError) as err:
    convert.convert(str(tmp_path / "hf"), "hf_vivit")
  message = str(err.value)
  assert "\n" not in message and "--format=hf_vivit" in message
  assert "vivit.embeddings.patch_embeddings.projection.weight" in message
  with pytest.raises(VidjaxError, match="not a known format"):
    convert.convert(str(tmp_path / "hf"), "hf_bert")


def test_state_dict_missing_keys_named_in_one_line(tmp_path):
  hf = _vivit()
  state = {k: v for k, v in hf.state_dict().items()
           if "layers.1.mlp" not in k and k != "classifier.bias"}
  torch.save(state, tmp_path / "partial.bin")
  hf.config.to_json_file(tmp_path / "config.json")
  with pytest.raises(VidjaxError) as err:
    convert.convert(str(tmp_path / "partial.bin"), "hf_vivit",
                    str(tmp_path / "config.json"))
  message = str(err.value)
  assert "\n" not in message and "5 keys missing" in message
  for key in ("classifier.bias",
              "vivit.encoder.layer.1.intermediate.dense.weight",
              "vivit.encoder.layer.1.output.dense.bias"):
    assert key in message


# ---- VideoMAE ----------------------------------------------------------------

MAE_DECODER = dict(decoder_hidden_size=16, decoder_num_hidden_layers=1,
                   decoder_num_attention_heads=2, decoder_intermediate_size=32)


def _videomae(pretrain=False, **kw):
  base = dict(TINY, patch_size=8, tubelet_size=2)
  if pretrain:
    cfg = transformers.VideoMAEConfig(**dict(base, use_mean_pooling=False,
                                             **MAE_DECODER, **kw))
    torch.manual_seed(0)
    return _randomize(transformers.VideoMAEForPreTraining(cfg))
  cfg = transformers.VideoMAEConfig(**dict(base, num_labels=8, **kw))
  torch.manual_seed(0)
  return _randomize(transformers.VideoMAEForVideoClassification(cfg))


@pytest.mark.parametrize("use_mean_pooling", [True, False])
def test_videomae_classifier_logits_match_transformers(tmp_path,
                                                       use_mean_pooling):
  hf = _videomae(use_mean_pooling=use_mean_pooling)
  hf.save_pretrained(tmp_path / "hf")
  converted = convert.convert(str(tmp_path / "hf"), "hf_videomae")
  assert converted.model["name"] == "videomae" and converted.unused == []
  assert converted.model["use_mean_pooling"] == use_mean_pooling
  # transformers' port: eps 1e-12 in the blocks, PyTorch's 1e-5 in fc_norm.
  assert (converted.model["layer_norm_eps"],
          converted.model["head_norm_eps"]) == (1e-12, 1e-5)
  _check_parity(hf, converted)


def _pretrain_outputs(hf, converted, norm_pix_loss):
  """(HF logits, HF loss, vidjax predictions, vidjax loss) on one tube mask."""
  from vidjax.layers import masking
  from vidjax.pretrain_step import reconstruction_loss
  model = convert.build(converted)
  clip = _clip()
  mask = np.asarray(masking.tube_mask(jax.random.key(3), 2, (2, 4, 4),
                                      converted.model["mask_ratio"]))
  with torch.no_grad():
    out = hf(torch.from_numpy(clip),
             bool_masked_pos=torch.from_numpy(mask.copy()))
  x = clip.transpose(0, 1, 3, 4, 2)
  pred, target_idx = jax.jit(lambda p, x, m: model.apply(
      {"params": p}, x, mask=m))(converted.params, x, mask)
  # transformers un-normalises with the ImageNet mean/std before patchifying.
  video01 = x * np.float32(converted.data["std"]) + np.float32(
      converted.data["mean"])
  loss = reconstruction_loss(pred, video01, target_idx,
                             converted.model["patch_size"],
                             norm_pix_loss).mean()
  return out.logits.numpy(), float(out.loss), np.asarray(pred), float(loss)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_videomae_pretraining_predictions_and_loss_match(tmp_path,
                                                         norm_pix_loss):
  hf = _videomae(pretrain=True, norm_pix_loss=norm_pix_loss)
  hf.save_pretrained(tmp_path / "hf")
  converted = convert.convert(str(tmp_path / "hf"), "hf_videomae_pretrain")
  assert converted.model["name"] == "videomae_pretrain"
  assert converted.model["norm_pix_loss"] == norm_pix_loss
  assert converted.unused == []
  want, want_loss, got, got_loss = _pretrain_outputs(hf, converted,
                                                     norm_pix_loss)
  assert got.shape == want.shape == (2, 2 * 14, 2 * 8 * 8 * 3)
  assert np.std(want) > 0.1 and want_loss > 0.1
  assert np.abs(got - want).max() <= TOL
  assert abs(got_loss - want_loss) <= TOL


def _release_state(hf, pretrain):
  """The authors' key layout (MCG-NJU/VideoMAE modeling_*.py) of an HF
  model: fused qkv weight + q_bias/v_bias, `blocks`, `patch_embed.proj`."""
  sd = {k: v.clone() for k, v in hf.state_dict().items()}
  enc = "encoder." if pretrain else ""
  out = {enc + "patch_embed.proj.weight":
         sd["videomae.embeddings.patch_embeddings.projection.weight"],
         enc + "patch_embed.proj.bias":
         sd["videomae.embeddings.patch_embeddings.projection.bias"]}

  def blocks(src, dst, layers):
    for i in range(layers):
      s, d = f"{src}{i}.", f"{dst}{i}."
      att = s + "attention.attention."
      out[d + "attn.qkv.weight"] = torch.cat(
          [sd[att + n + ".weight"] for n in ("query", "key", "value")])
      out[d + "attn.q_bias"] = sd[att + "query.bias"]
      out[d + "attn.v_bias"] = sd[att + "value.bias"]
      for a, b in (("attn.proj", "attention.output.dense"),
                   ("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                   ("mlp.fc1", "intermediate.dense"),
                   ("mlp.fc2", "output.dense")):
        out[f"{d}{a}.weight"], out[f"{d}{a}.bias"] = (
            sd[f"{s}{b}.weight"], sd[f"{s}{b}.bias"])

  blocks("videomae.encoder.layer.", enc + "blocks.", 2)
  if pretrain:
    blocks("decoder.decoder_layers.", "decoder.blocks.", 1)
    for a, b in (("encoder.norm", "videomae.layernorm"),
                 ("decoder.norm", "decoder.norm"),
                 ("decoder.head", "decoder.head")):
      out[a + ".weight"], out[a + ".bias"] = sd[b + ".weight"], sd[b + ".bias"]
    out["encoder_to_decoder.weight"] = sd["encoder_to_decoder.weight"]
    out["mask_token"] = sd["mask_token"]
  else:
    for a, b in (("fc_norm", "fc_norm"), ("head", "classifier")):
      out[a + ".weight"], out[a + ".bias"] = sd[b + ".weight"], sd[b + ".bias"]
  return out


@pytest.mark.parametrize("pretrain,nest", [(False, "module"), (True, "model")])
def test_videomae_release_layout(tmp_path, pretrain, nest):
  """Release files (tensors under "model" or "module"; widths not in the
  release's head table, so --config names the heads and the clip size)."""
  hf = _videomae(pretrain=pretrain)
  torch.save({nest: _release_state(hf, pretrain), "epoch": 3},
             tmp_path / "checkpoint.pth")
  with open(tmp_path / "config.json", "w") as f:
    json.dump(dict(num_attention_heads=2, decoder_num_attention_heads=2,
                   num_frames=4, image_size=32), f)
  converted = convert.convert(str(tmp_path / "checkpoint.pth"),
                              "videomae_release", str(tmp_path / "config.json"))
  assert converted.unused == []
  assert converted.model["layer_norm_eps"] == 1e-6  # the release's norms
  if pretrain:
    want, want_loss, got, got_loss = _pretrain_outputs(hf, converted, True)
    assert np.abs(got - want).max() <= TOL
    assert abs(got_loss - want_loss) <= TOL
  else:
    _check_parity(hf, converted)


# ---- the written config: the model's own input and class names --------------

def _load_written_config(out):
  import importlib.util
  spec = importlib.util.spec_from_file_location(f"cfg_{abs(hash(str(out)))}",
                                                os.path.join(out, "config.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize("classes,dataset,stride,views,flip", [
    (400, "kinetics400", 4, (5, 3), True),
    (174, "something_something_v2", 2, (2, 3), False)])
def test_written_config_runs_the_model_at_its_own_input(
    tmp_path, classes, dataset, stride, views, flip):
  """A K400 / SSv2 VideoMAE (16 frames, the HF processor's preprocessor
  config saved beside it): the crop is the model's image size, frames are
  stored large enough that no view upsamples them, the test resize is the
  processor's shortest edge, mean/std the processor's, stride and test views
  the paper's (and the paper configs'), id2label carried in id order."""
  names = {i: f"action {i}" for i in range(classes)}  # "action 10" > "9"
  cfg = transformers.VideoMAEConfig(**dict(
      TINY, patch_size=8, tubelet_size=2, num_frames=16, id2label=names))
  torch.manual_seed(0)
  transformers.VideoMAEForVideoClassification(cfg).save_pretrained(
      tmp_path / "hf")
  imagenet = dict(image_mean=[0.485, 0.456, 0.406],
                  image_std=[0.229, 0.224, 0.225])
  transformers.VideoMAEImageProcessor(
      size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
      **imagenet).save_pretrained(tmp_path / "hf")
  out = convert.save(convert.convert(str(tmp_path / "hf"), "hf_videomae"),
                     str(tmp_path / "out"))
  config = _load_written_config(out)
  d = config.dataset
  assert d.name == dataset
  assert (d.num_frames, d.crop_size, d.frame_stride) == (16, 32, stride)
  assert d.test_resize_short == d.train_resize_short == 36
  assert d.resize_short == (320 if dataset == "kinetics400" else 240)
  assert d.resize_short >= d.test_resize_short >= d.crop_size
  assert d.flip is flip
  assert (config.num_test_clips, config.num_test_crops) == views
  np.testing.assert_allclose(d.mean, imagenet["image_mean"])
  np.testing.assert_allclose(d.std, imagenet["image_std"])
  assert d.class_names == tuple(f"action {i}" for i in range(classes))
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["dataset"]["class_names"][:11][-1] == "action 10"


@pytest.mark.parametrize("model,dataset,config_name", [
    ("videomae", "kinetics400", "videomae_finetune:k400_vit_b"),
    ("videomae", "something_something_v2", "videomae_finetune:ssv2_vit_b"),
    ("timesformer", "kinetics400", "timesformer:k400"),
    ("vivit_spatiotemporal", "kinetics400", "vivit_spatiotemporal:k400")])
def test_paper_input_table_agrees_with_the_paper_configs(model, dataset,
                                                         config_name):
  """The converter's paper facts (stride, flip, test views) are those of the
  repo's config of the same paper."""
  import importlib
  from vidjax.convert import paper_input
  module, arg = config_name.split(":")
  paper = importlib.import_module(f"configs.{module}").get_config(arg)
  assert paper.dataset.name == dataset
  data = dict(num_classes={"kinetics400": 400}.get(dataset, 174),
              num_frames=paper.dataset.num_frames, crop_size=224)
  fields = paper_input.dataset_fields(model, data)
  assert fields["frame_stride"] == paper.dataset.frame_stride
  assert fields["flip"] is paper.dataset.flip
  assert paper_input.test_views(model, data) == dict(
      num_test_clips=paper.num_test_clips,
      num_test_crops=paper.num_test_crops)


def test_processor_normalisation_matches_transformers(tmp_path):
  """ViViT's processor rescales to [-1, 1] (offset) and then normalises with
  0.5 / 0.5: the written mean/std give transformers' pixel values exactly;
  its short side 256 is the test resize."""
  processor = transformers.VivitImageProcessor()
  processor.save_pretrained(tmp_path)
  from vidjax.convert import common
  fields = common.read_preprocessing(str(tmp_path))
  assert fields["test_resize_short"] == 256
  rng = np.random.RandomState(0)
  video = [rng.randint(0, 256, (8, 8, 3)).astype(np.uint8) for _ in range(2)]
  want = processor(video, do_resize=False, do_center_crop=False,
                   return_tensors="np")["pixel_values"][0]
  from vidjax.steps import normalize
  got = np.asarray(normalize(np.stack(video), fields["mean"], fields["std"]))
  assert np.abs(got - want.transpose(0, 2, 3, 1)).max() < 1e-5
  assert np.abs(want).max() > 1.5  # not the [-1, 1] of mean 0.5 / std 0.5


def test_written_config_runs_on_a_video_folder_of_two_of_its_classes(
    tmp_path, capsys):
  """The written config of a converted 8-class VideoMAE (Kinetics names) on
  real-format videos of 2 of its classes (folders spelt otherwise, other
  order) through train.train_and_evaluate, 1 step at learning rate 0: frames
  are stored at the written short side (320), the head is its 2 PyTorch rows
  by name, class_names.json and named predictions come out."""
  from test_video_folder import make_tree
  from vidjax import train
  from vidjax.data import datasets
  names = ["abseiling", "air drumming", "answering questions", "applauding",
           "applying cream", "archery", "arm wrestling", "arranging flowers"]
  cfg = transformers.VideoMAEConfig(**dict(
      TINY, num_hidden_layers=1, patch_size=8, tubelet_size=2,
      id2label=dict(enumerate(names))))
  torch.manual_seed(0)
  hf = _randomize(transformers.VideoMAEForVideoClassification(cfg))
  hf.save_pretrained(tmp_path / "hf")
  out = convert.save(convert.convert(str(tmp_path / "hf"), "hf_videomae"),
                     str(tmp_path / "out"))
  config = _load_written_config(out)
  assert (config.dataset.crop_size, config.dataset.resize_short) == (32, 320)
  config.dataset.update(dict(
      name="video_folder", data_dir=str(tmp_path / "tfds"), num_workers=2,
      path=make_tree(tmp_path / "v", per_class=5,
                     classes=("Archery", "Air_Drumming"))))
  config.update(dict(num_train_steps=1, batch_size=8, eval_batch_size=8,
                     log_every_steps=1, eval_every_steps=1,
                     checkpoint_every_steps=1))
  config.optimizer.learning_rate = 0.0
  workdir = str(tmp_path / "work")
  result = train.train_and_evaluate(config, workdir)
  assert result["eval/num_videos"] == 2
  data = datasets.load(config.dataset)
  assert min(data.test[0]["video"].shape[1:3]) == 320
  with open(os.path.join(workdir, "class_names.json")) as f:
    assert json.load(f) == ["Air_Drumming", "Archery"]  # sorted folders
  params, _, _ = checkpoint.load_pretrained(workdir)
  rows = hf.classifier.weight.detach().numpy()[[1, 5]]
  np.testing.assert_allclose(params["head"]["kernel"], rows.T, atol=1e-6)
  printed = capsys.readouterr().out
  assert "2 of 2 data classes matched the checkpoint's 8 classes" in printed
  assert "true 'Air_Drumming'; predicted" in printed
