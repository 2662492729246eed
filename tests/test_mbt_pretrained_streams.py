"""MBT from pretrained streams (issue #22, configs/mbt.py): the "looks"
labels of the video stream's pretraining, init_from several checkpoints
(video stream from one run, audio stream from another), the position
embeddings' init scale, and why the fusion head starts non-zero."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mbt as mbt_config
from vidjax import checkpoint
from vidjax.data import av_render
from vidjax.data.av_pairs import mirror
from vidjax.errors import VidjaxError
from vidjax.models.audio_visual import MBT, _Tokens
from vidjax.tasks.audio_visual import data as av_data
from vidjax.tasks.audio_visual import task as av_task


def rendered(n=12, kind="which"):
  """n `which` examples rendered as the build stores them."""
  rows = []
  for i in range(n):
    p = av_render.plan(3, "train", i, kind=kind)
    video = av_render.render_video(p, 3, "train", i)
    rows.append((video, np.array([o["colour"] for o in p["objects"]]),
                 av_render.boxes(p, 32)))
  return (np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
          np.stack([r[2] for r in rows]))


def nearest_colour(pixels):
  """Colour class of the most saturated pixel (an object, not the dark
  background) of [N, 3] pixels."""
  px = pixels.astype(np.float64)
  best = px[np.argmax(px.max(1) - px.min(1))]
  return int(np.argmin(((av_render.COLOURS - best) ** 2).sum(1)))


def test_looks_label_names_the_colours_seen_in_each_half_mirrored_too():
  video, colour, boxes = rendered()
  labels = av_data.looks(colour, boxes)
  for v, y in zip(video, labels):
    left, right = v[:, :, :16].reshape(-1, 3), v[:, :, 16:].reshape(-1, 3)
    assert (nearest_colour(left), nearest_colour(right)) == divmod(int(y), 4)
  # A mirrored row (the loader's hflip) swaps the two halves' colours.
  out = mirror({"video": video, "boxes": boxes, "label": labels * 0},
               np.ones(len(video), bool), None)
  flipped = av_data.looks(colour, out["boxes"])
  np.testing.assert_array_equal(flipped, (labels % 4) * 4 + labels // 4)
  names = av_task.class_names(mbt_config.get_config("looks"))
  assert len(names) == 16 and names[int(labels[0])] == "|".join(
      av_render.COLOUR_NAMES[c] for c in divmod(int(labels[0]), 4))


def test_looks_and_voice_need_synthetic_av():
  config = mbt_config.get_config("looks")
  config.dataset.name = "vggsound"
  with pytest.raises(VidjaxError, match="config.objective='looks'"):
    av_data.check(config)


def test_init_from_several_checkpoints_first_listed_wins():
  target = {"a": np.zeros(2, np.float32), "b": {"c": np.zeros(3, np.float32)},
            "d": np.zeros(1, np.float32),
            "head": np.zeros(2, np.float32)}
  video = {"a": np.full(2, 1.0), "b": {"c": np.full(3, 1.0)},
           "head": np.ones(16)}
  audio = {"a": np.full(2, 2.0), "d": np.full(1, 2.0), "head": np.ones(4)}
  merged, dones, skipped, unused = checkpoint.merge_first(
      target, [video, audio])
  np.testing.assert_array_equal(merged["a"], [1.0, 1.0])  # the first's
  np.testing.assert_array_equal(merged["b"]["c"], [1.0] * 3)
  np.testing.assert_array_equal(merged["d"], [2.0])       # only the second
  np.testing.assert_array_equal(merged["head"], [0.0, 0.0])  # no shape fits
  assert sorted(dones[0]) == ["a", "b/c"] and dones[1] == ["d"]
  assert [s.split(":")[0] for s in skipped] == ["head"]
  assert unused[1] == ["a"]  # taken from the first checkpoint
  assert checkpoint.init_paths(" /x/looks , /x/voice") == ["/x/looks",
                                                           "/x/voice"]
  assert checkpoint.init_paths("") == []
  with pytest.raises(VidjaxError, match="empty path"):
    checkpoint.init_paths("/x/looks,,/x/voice")


def small_mbt(**kw):
  return MBT(**dict(dict(num_classes=2, hidden_size=64, num_heads=4,
                         mlp_dim=64, num_layers=2, fusion_layer=1,
                         video_patch_size=(4, 8, 8), audio_patch_size=(8, 8),
                         audio_patch_stride=(8, 8)), **kw))


def test_posemb_init_std_sets_both_streams_position_embeddings():
  model = small_mbt(posemb_init_std=1.0)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 4, 16, 16, 3)), jnp.zeros((1, 16, 16)))
  for stream in ("video_tokens", "audio_tokens"):  # both take the option
    assert shapes["params"][stream]["pos_embedding"]["pos_embedding"].shape \
        == (1, 5, 64)
  grid = jnp.zeros((1, 16, 16, 64))
  for std in (0.02, 1.0):
    params = jax.jit(_Tokens("learned", std).init)(jax.random.PRNGKey(0),
                                                    grid)["params"]
    pos = np.asarray(params["pos_embedding"]["pos_embedding"])
    assert abs(pos.std() / std - 1) < 0.05, (std, pos.std())
  tokens = MBT(num_classes=2, posemb_init_std=0.5)
  assert tokens.posemb_init_std == 0.5 and small_mbt().posemb_init_std == 0.02


@pytest.mark.fast_compile
def test_zero_head_passes_no_gradient_to_the_streams_and_a_random_one_does():
  """Why configs/mbt.py starts the fusion head at std 0.02: with a zero head
  d loss / d features = head^T (p - y) = 0, so only the head moves at first,
  and on `which`, where no stream feature alone correlates with the label,
  its first updates are noise (measured: the 0.693 plateau)."""
  key = jax.random.PRNGKey(0)
  video = jax.random.normal(key, (4, 4, 16, 16, 3))
  audio = jax.random.normal(jax.random.fold_in(key, 1), (4, 16, 16))
  labels = jnp.array([0, 1, 0, 1])

  model = small_mbt(head_init_std=0.02, num_layers=1, fusion_layer=0)
  params = jax.jit(model.init)(key, video, audio)["params"]

  def loss(p):
    logits = model.apply({"params": p}, video, audio)
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])
  grad = jax.jit(jax.grad(loss))

  def body_grad_norm(head_std):
    head = params["head"]
    if head_std == 0.0:  # what head_init_std=0 draws
      head = jax.tree.map(jnp.zeros_like, head)
    grads = grad(dict(params, head=head))
    body = {k: v for k, v in grads.items() if k != "head"}
    return float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(body)))
  assert body_grad_norm(0.0) == 0.0
  assert body_grad_norm(0.02) > 1e-3


def test_av_check_runs_the_streams_first_and_hands_each_run_its_streams(
    monkeypatch):
  from tools import av_check  # noqa: PLC0415
  init = lambda run: [a for a in av_check.command(run, "W")  # noqa: E731
                      if a.startswith("--config.init_from")]
  assert init("mbt") == ["--config.init_from.checkpoint_path=W/looks,W/voice"]
  assert init("late") == init("mbt")
  assert init("video_only") == ["--config.init_from.checkpoint_path=W/looks"]
  assert init("audio_only") == ["--config.init_from.checkpoint_path=W/voice"]
  assert init("looks") == init("mbt_scratch") == init("sync") == []
  order = []
  monkeypatch.setattr(av_check, "run_one", lambda run, workdir, steps=0: (
      order.append(run) or {"run": run}))
  rows = av_check.check(("mbt", "sync"), "W")
  assert order[:2] == ["looks", "voice"] and sorted(order[2:]) == ["mbt",
                                                                    "sync"]
  assert [r["run"] for r in rows] == ["mbt", "sync", "looks", "voice"]
