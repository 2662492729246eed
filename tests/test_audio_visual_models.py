"""AST and MBT (vidjax/models/audio_visual.py): what each fusion lets
through, exactly (gradients that are zero or not), late fusion as MBT with
no fusion layer, AST's overlapping patch grid and the paper-size counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vidjax.errors import VidjaxError
from vidjax.models.audio_visual import AST, MBT, spectrogram_grid

SMALL = dict(num_classes=3, hidden_size=32, num_heads=4, mlp_dim=64,
             num_layers=3, fusion_layer=1, video_patch_size=(2, 8, 8),
             audio_patch_size=(8, 8), audio_patch_stride=(8, 8))


def inputs(seed=0):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  return (jax.random.normal(k1, (2, 4, 16, 16, 3)),
          jax.random.normal(k2, (2, 32, 16)))


def stream_tokens(model, params, video, audio):
  _, state = model.apply(params, video, audio, mutable=["intermediates"])
  inter = state["intermediates"]
  return {k[:-len("_output")]: v[0] for k, v in inter.items()}


def cross_gradients(model, params, video, audio):
  """|d video tokens / d audio| and |d audio tokens / d video| summed."""
  def video_out(a):
    return jnp.sum(stream_tokens(model, params, video, a)["video"] ** 2)

  def audio_out(v):
    return jnp.sum(stream_tokens(model, params, v, audio)["audio"] ** 2)
  return (float(jnp.abs(jax.grad(video_out)(audio)).sum()),
          float(jnp.abs(jax.grad(audio_out)(video)).sum()))


def init(model, video, audio):
  return model.init(jax.random.PRNGKey(1), video, audio)


def test_fusion_at_the_last_layer_is_late_fusion_exactly():
  video, audio = inputs()
  late = MBT(fusion="late", **SMALL)
  params = init(late, video, audio)
  mbt = MBT(fusion="bottleneck", **dict(SMALL, fusion_layer=3))
  assert jax.tree.structure(init(mbt, video, audio)) == jax.tree.structure(
      params)  # no bottleneck parameter when no layer fuses
  np.testing.assert_array_equal(mbt.apply(params, video, audio),
                                late.apply(params, video, audio))
  # ... and its logits are the mean of the two streams' CLS logits.
  tokens = stream_tokens(late, params, video, audio)
  head = params["params"]["head"]
  per = [t[:, 0] @ head["kernel"] + head["bias"] for t in tokens.values()]
  np.testing.assert_allclose(late.apply(params, video, audio),
                             (per[0] + per[1]) / 2, rtol=1e-5, atol=1e-6)


def test_bottlenecks_carry_information_and_zeroed_ones_carry_none():
  video, audio = inputs()
  mbt = MBT(fusion="bottleneck", num_bottlenecks=2, **SMALL)
  params = init(mbt, video, audio)
  assert params["params"]["bottleneck"].shape == (1, 2, 32)
  to_video, to_audio = cross_gradients(mbt, params, video, audio)
  assert to_video > 1e-7 and to_audio > 1e-7
  zeroed = mbt.clone(zero_bottlenecks=True)
  assert cross_gradients(zeroed, params, video, audio) == (0.0, 0.0)
  late = MBT(fusion="late", **SMALL)
  assert cross_gradients(late, init(late, video, audio), video,
                         audio) == (0.0, 0.0)


def test_early_fusion_is_joint_attention():
  video, audio = inputs()
  early = MBT(fusion="early", **SMALL)
  params = init(early, video, audio)
  to_video, to_audio = cross_gradients(early, params, video, audio)
  assert to_video > 1e-7 and to_audio > 1e-7
  # Below the fusion layer the streams are separate: same parameters as
  # late fusion, and with fusion_layer = num_layers it is late fusion.
  late = MBT(fusion="late", **SMALL)
  none = MBT(fusion="early", **dict(SMALL, fusion_layer=3))
  np.testing.assert_array_equal(none.apply(params, video, audio),
                                late.apply(params, video, audio))


@pytest.mark.parametrize("fusion,kept", [("video_only", "video"),
                                         ("audio_only", "audio")])
def test_single_modality_models_ignore_the_other_input(fusion, kept):
  video, audio = inputs()
  model = MBT(fusion=fusion, **SMALL)
  params = init(model, video, audio)
  other = {"video": (video, audio * 0 + 5.0), "audio": (video * 0 - 2.0,
                                                        audio)}[kept]
  np.testing.assert_array_equal(model.apply(params, video, audio),
                                model.apply(params, *other))
  assert not any(k.startswith("video" if kept == "audio" else "audio")
                 for k in params["params"])


def test_ast_overlapping_patch_grid_is_asts():
  # AST (Gong et al. 2021): 1024 frames x 128 mels, 16x16 patches every 10
  # -> 101 x 12 = 1212 patches.
  assert spectrogram_grid(1024, 128, (16, 16), (10, 10)) == (101, 12)
  model = AST(num_classes=5, hidden_size=16, num_heads=2, mlp_dim=32,
              num_layers=1, audio_patch_stride=(10, 10))
  x = jnp.zeros((1, 1024, 128))
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  assert params["params"]["audio_tokens"]["pos_embedding"][
      "pos_embedding"].shape == (1, 1 + 1212, 16)
  sep = AST(num_classes=5, hidden_size=16, num_heads=2, mlp_dim=32,
            num_layers=1, audio_posemb="separable")
  p = jax.eval_shape(lambda: sep.init(jax.random.PRNGKey(0), x))
  t = p["params"]["audio_tokens"]
  assert t["pos_time"].shape == (1, 64, 1, 16)
  assert t["pos_freq"].shape == (1, 1, 8, 16)


def test_bad_options_are_one_line_errors():
  video, audio = inputs()
  for kw, key in ((dict(fusion="mid"), "config.model.fusion="),
                  (dict(fusion_layer=9), "config.model.fusion_layer="),
                  (dict(num_bottlenecks=0), "config.model.num_bottlenecks="),
                  (dict(classifier="x"), "config.model.classifier="),
                  (dict(num_heads=5), "config.model.hidden_size=")):
    with pytest.raises(VidjaxError, match=key) as e:
      MBT(**dict(SMALL, **kw)).check_options()
    assert "\n" not in str(e.value)


def vit_b_layer(d=768, mlp=3072):
  return 4 * d * d + 4 * d + 2 * d * mlp + mlp + d + 4 * d


def test_paper_size_parameter_counts():
  """MBT-B (scenic's AudioSet config) and AST-B counted by hand: ViT-B
  blocks, embeddings, CLS tokens, position embeddings, bottlenecks, head."""
  from tools import model_table
  rows = dict(model_table.config_rows())
  d = 768
  video = 2 * 16 * 16 * 3 * d + d + (1 + 16 * 14 * 14) * d + d
  audio = 16 * 16 * d + d + (1 + 50 * 8) * d + d
  mbt = 2 * 12 * vit_b_layer() + video + audio + 2 * d + 4 * d
  got = model_table.row("mbt:audioset", rows["mbt:audioset"], False)
  assert got["params"] == mbt + d * 527 + 527 == 174_615_311
  got = model_table.row("mbt:vggsound", rows["mbt:vggsound"], False)
  assert got["params"] == mbt + d * 309 + 309
  # AST on AudioSet: 1024 x 128 in 16x16 patches every 10 (1212 patches).
  ast = 12 * vit_b_layer() + 16 * 16 * d + d + (1 + 1212) * d + d + 2 * d
  got = model_table.row("ast:audioset", rows["ast:audioset"], False)
  assert got["params"] == ast + d * 527 + 527
