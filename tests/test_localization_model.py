"""ActionFormer-style detector: targets (centre sampling, regression ranges),
the masked local-attention pyramid, the jitted train step."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vidjax import optim
from vidjax.errors import VidjaxError
from vidjax.tasks.localization import actionformer, targets, train_step

# Tiny models, a few steps at most: compile-bound, so XLA optimisation
# level 0 (conftest.fast_compile).
pytestmark = pytest.mark.fast_compile


def _assign(segs, labels, smask, mask, n, k=8, levels=4, **kw):
  return targets.assign(jnp.asarray(segs, jnp.float32),
                        jnp.asarray(labels, jnp.int32),
                        jnp.asarray(smask, bool), jnp.asarray(mask, bool),
                        jnp.asarray(n, jnp.int32), k, levels, **kw)


def test_default_ranges_are_the_papers():
  assert targets.default_ranges(6) == ((0, 4), (4, 8), (8, 16), (16, 32),
                                       (32, 64), (64, np.inf))
  geo = targets.points(16, 4)
  np.testing.assert_array_equal(geo["position"][16:24], np.arange(8) * 2)
  np.testing.assert_array_equal(geo["stride"][-2:], [8, 8])
  with pytest.raises(VidjaxError, match="max_len=20"):
    targets.points(20, 4)


def test_assign_hand_example():
  mask = np.arange(16)[None] < np.array([[16], [11]])
  t = _assign([[[2.5, 6.5], [8.0, 9.0]], [[0.0, 10.4], [0, 0]]],
              [[1, 3], [2, -1]], [[1, 1], [1, 0]], mask, [16, 11])
  pos = np.asarray(t["positive"])
  # video 0: [2.5, 6.5] (centre 4.5, region [3, 6], strict) -> level-0
  # points 4 and 5; [8, 9] has no point strictly inside at any level.
  assert np.flatnonzero(pos[0]).tolist() == [4, 5]
  np.testing.assert_allclose(t["reg"][0, 4], [1.5, 2.5])
  np.testing.assert_allclose(t["reg"][0, 5], [2.5, 1.5])
  assert np.asarray(t["cls"][0, 4]).argmax() == 1
  assert float(t["cls"][0].sum()) == 2
  # video 1: [0, 10.4], longest distance >= 4: level 1 (stride 2, range
  # [4, 8)): positions 4, 6 (8 is at distance 8); level 2 (stride 4,
  # [8, 16)): position 8 (region [0, 10.4], 0 on its edge, 4 at distance
  # 6.4 < 8). Offsets in units of the level's stride.
  assert np.flatnonzero(pos[1]).tolist() == [16 + 2, 16 + 3, 16 + 8 + 2]
  np.testing.assert_allclose(t["reg"][1, 18], [4 / 2, 6.4 / 2], rtol=1e-6)
  np.testing.assert_allclose(t["reg"][1, 26], [8 / 4, 2.4 / 4], rtol=1e-6)
  assert np.asarray(t["cls"][1, 26]).argmax() == 2
  # padded steps 11..15 -> their points are not real
  assert not np.asarray(t["point_mask"][1, 11:16]).any()
  assert np.asarray(t["segment"][1, 26]) == 0


def test_assign_shortest_segment_wins_and_class_agnostic():
  mask = np.ones((1, 32), bool)
  # point 10 lies in the centre regions of both; the 2-step one is shorter
  t = _assign([[[9.0, 11.0], [8.5, 11.5]]], [[5, 6]], [[1, 1]], mask, [32],
              levels=2)
  assert int(t["segment"][0, 10]) == 0
  assert np.asarray(t["cls"][0, 10]).argmax() == 5
  t1 = _assign([[[9.0, 11.0], [8.5, 11.5]]], [[5, 6]], [[1, 1]], mask, [32],
               k=1, levels=2, class_agnostic=True)
  assert t1["cls"].shape == (1, 48, 1)
  np.testing.assert_array_equal(t1["cls"][..., 0], t["cls"].sum(-1))


def test_assign_properties_random():
  rng = np.random.default_rng(0)
  b, length, m, levels = 4, 64, 3, 4
  starts = rng.uniform(0, 40, (b, m))
  segs = np.stack([starts, starts + rng.uniform(1, 24, (b, m))], -1)
  t = _assign(segs, rng.integers(0, 8, (b, m)), np.ones((b, m), bool),
              np.ones((b, length), bool), [length] * b, levels=levels)
  geo = targets.points(length, levels)
  pos = np.asarray(t["positive"])
  reg = np.asarray(t["reg"]) * geo["stride"][None, :, None]
  seg = np.asarray(t["segment"])
  assert pos.sum() > 0 and (reg[pos] > 0).all()
  for i, p in zip(*np.nonzero(pos)):
    s = segs[i, seg[i, p]]
    x = geo["position"][p]
    np.testing.assert_allclose(reg[i, p], [x - s[0], s[1] - x], rtol=1e-5)
    far = max(reg[i, p])
    assert geo["lo"][p] <= far < geo["hi"][p]
    c, r = s.mean(), 1.5 * geo["stride"][p]
    assert c - r < x < c + r
  assert (reg[~pos] == 0).all()


def _band_reference(params, x, mask, heads, window):
  """Dense attention restricted to |i - j| <= window // 2 and real keys."""
  qkv = jnp.einsum("bld,dthe->bthle", x, params["qkv"]["kernel"]) + \
      params["qkv"]["bias"][None, :, :, None, :]
  q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
  logits = jnp.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(q.shape[-1])
  idx = np.arange(x.shape[1])
  band = np.abs(idx[:, None] - idx[None]) <= window // 2
  ok = band[None, None] & mask[:, None, None, :]
  w = jax.nn.softmax(jnp.where(ok, logits, -1e9), -1)
  out = jnp.einsum("bhij,bhjd->bihd", w, v)
  out = jnp.einsum("bihd,hdo->bio", out, params["out"]["kernel"]) + \
      params["out"]["bias"]
  return out * mask[..., None]


def test_local_attention_equals_banded_dense_attention():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 12, 8))
  mask = jnp.asarray(np.arange(12)[None] < np.array([[12], [7]]))
  layer = actionformer.LocalAttention(num_heads=2, window=5)
  params = jax.jit(layer.init)(jax.random.PRNGKey(1), x, mask)["params"]
  got = jax.jit(layer.apply)({"params": params}, x, mask)
  want = _band_reference(params, x, mask, 2, 5)
  np.testing.assert_allclose(got, want, atol=1e-5)


def _model(**kw):
  return actionformer.ActionFormer(num_classes=3, embed_dim=16, num_levels=3,
                                   num_heads=2, window_size=5, **kw)


def test_detector_shapes_nonnegative_offsets_and_padding_ignored():
  model = _model()
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 6))
  mask = jnp.asarray(np.arange(16)[None] < np.array([[16], [9]]))
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x, mask)
  apply = jax.jit(model.apply)
  out = apply(variables, x, mask)
  assert out["cls_logits"].shape == (2, 16 + 8 + 4, 3)
  assert out["offsets"].shape == (2, 28, 2)
  assert (np.asarray(out["offsets"]) >= 0).all()
  np.testing.assert_array_equal(out["point_mask"][1, :16],
                                np.arange(16) < 9)
  # garbage in the padded steps changes nothing on the real points
  x2 = x.at[1, 9:].set(1e3)
  out2 = apply(variables, x2, mask)
  real = np.asarray(out["point_mask"][1])
  np.testing.assert_allclose(np.asarray(out2["cls_logits"][1])[real],
                             np.asarray(out["cls_logits"][1])[real],
                             atol=1e-4)
  np.testing.assert_allclose(np.asarray(out2["offsets"][1])[real],
                             np.asarray(out["offsets"][1])[real], atol=1e-4)
  # the classification bias starts at the focal-loss prior 0.01
  bias = variables["params"]["cls"]["out"]["Conv_0"]["bias"]
  np.testing.assert_allclose(jax.nn.sigmoid(bias), 0.01, rtol=1e-5)


def test_detector_bfloat16_compute_float32_params():
  model = _model(dtype="bfloat16")
  x = jnp.ones((1, 16, 6))
  mask = jnp.ones((1, 16), bool)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x, mask)
  assert {str(a.dtype) for a in jax.tree.leaves(variables)} == {"float32"}
  out = jax.jit(model.apply)(variables, x, mask)
  assert out["cls_logits"].dtype == jnp.float32
  assert np.isfinite(np.asarray(out["cls_logits"])).all()


def _config(name="actionformer"):
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict({
      "name": name, "embed_dim": 16, "num_levels": 2, "num_heads": 2,
      "window_size": 3})
  if name == "actionformer":  # the smallest graph: a quicker compile
    c.model.embed_layers = c.model.head_layers = 1
  c.loss = ml_collections.ConfigDict({"normalizer_momentum": 0.9})
  c.optimizer = ml_collections.ConfigDict({
      "name": "adamw", "learning_rate": 1e-2, "schedule": "constant",
      "b1": 0.9, "b2": 0.999, "weight_decay": 0.0, "grad_clip_norm": 1.0,
      "end_lr_factor": 0.0})
  return c


def _batch(rng, b=8, length=16, dim=6, k=3):
  """Steps inside a segment carry their class in the feature."""
  x = rng.normal(0, 0.1, (b, length, dim)).astype(np.float32)
  segs = np.zeros((b, 2, 2), np.float32)
  labels = np.full((b, 2), -1, np.int32)
  smask = np.zeros((b, 2), bool)
  for i in range(b):
    s = int(rng.integers(0, 8))
    e = s + int(rng.integers(3, 8))
    c = int(rng.integers(0, k))
    x[i, s:e, c] += 2.0
    segs[i, 0] = [s - 0.5, e - 0.5]
    labels[i, 0], smask[i, 0] = c, True
  return {"inputs": x, "mask": np.ones((b, length), bool), "segments": segs,
          "labels": labels, "segment_mask": smask,
          "num_steps": np.full((b,), length, np.int32)}


@pytest.mark.parametrize("name", ["actionformer", "actionformer_two_stage"])
def test_train_step_learns_and_shards(name):
  config = _config(name)
  schedule = optim.make_schedule(config.optimizer, 100, 0)
  tx = optim.make_optimizer(config.optimizer, schedule)
  model = train_step.build_model(config.model, 3)
  state = train_step.create_state(model, tx, config, jax.random.PRNGKey(0),
                                  6, 16)
  assert float(state.batch_stats["loss_normalizer"]) == 100.0
  from vidjax import sharding
  mesh = sharding.make_mesh()
  rep, split = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  shardings = jax.tree.map(lambda _: rep, state)
  step = jax.jit(train_step.make_localization_train_step(config, schedule, 3),
                 donate_argnums=0, in_shardings=(shardings, split),
                 out_shardings=(shardings, rep))
  batch = _batch(np.random.default_rng(0))
  losses = []
  for _ in range(20):
    state, metrics = step(state, sharding.put_batch(batch, mesh))
    # the summed loss (the EMA normaliser moves between steps)
    losses.append(float(metrics["train/loss"] * metrics["train/normalizer"]))
  assert int(state.step) == 20 and int(state.skipped_steps) == 0
  assert losses[-1] < 0.5 * losses[0], losses
  if name == "actionformer_two_stage":
    assert "train/roi_loss" in metrics


def test_build_model_rejects_unknown_options():
  config = _config()
  config.model.nonsense = 1
  with pytest.raises(VidjaxError, match="config.model.nonsense"):
    train_step.build_model(config.model, 3)
  config = _config("bmn")
  with pytest.raises(VidjaxError, match="config.model.name='bmn'"):
    train_step.build_model(config.model, 3)
