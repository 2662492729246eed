"""FSDP (config.sharding=fsdp, vidjax/sharding.py) on 8 forced CPU devices.

The shape rule itself, per-device state bytes of ViT-B-sized models from
shapes only, losses equal to the replicated run's step by step, and
checkpoints and `init_from` across the two modes through the training loop.
"""
import importlib
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from conftest import tiny_config
from vidjax import checkpoint, costs, optim, sharding, steps, train
from vidjax.errors import VidjaxError

MIB = 2**20
# 5-6 step runs of tiny models on 8 devices: compile-bound, so XLA
# optimisation level 0 (conftest.fast_compile: 93 -> 66 CPU-s), same
# tolerances.
pytestmark = pytest.mark.fast_compile


def test_rule_shards_the_largest_evenly_divisible_dimension():
  rule = lambda shape, mb=1.0, skip=(): sharding.fsdp_spec(  # noqa: E731
      shape, int(np.prod(shape)) * 4, 8, mb * MIB, skip)
  assert rule((768, 3072)) == P(None, "data")      # largest dimension
  assert rule((3072, 768)) == P("data")
  assert rule((1001, 768)) == P(None, "data")      # 1001 does not divide
  assert rule((1001, 1003)) == P()                 # nothing divides: whole
  assert rule((768,)) == P()                       # 3 KiB: below 1 MiB
  assert rule((768, 768), mb=4.0) == P()           # 2.25 MiB < 4 MiB
  assert rule((768, 768), mb=2.0) == P("data")
  # Scanned layers: the stacked axis 0 is never chosen.
  assert rule((16, 768, 768), skip=(0,)) == P(None, "data")
  mesh = sharding.make_mesh()
  tree = {"layers": {"k": jax.ShapeDtypeStruct((16, 512, 1024), np.float32)},
          "block_0": {"k": jax.ShapeDtypeStruct((16, 512, 1024), np.float32)}}
  specs = sharding.state_specs(tree, mesh, "fsdp", 1.0)
  assert specs["layers"]["k"] == P(None, None, "data")
  assert specs["block_0"]["k"] == P(None, None, "data")
  tree["block_0"]["k"] = jax.ShapeDtypeStruct((1024, 512, 16), np.float32)
  assert sharding.state_specs(tree, mesh, "fsdp")["block_0"]["k"] == P("data")
  assert sharding.state_specs(tree, mesh, "replicate")["layers"]["k"] == P()


def _abstract_state(config):
  model, _ = costs.configured_model(config)
  tx = optim.make_optimizer(config.optimizer,
                            optim.make_schedule(config.optimizer, 10, 1))
  return jax.eval_shape(lambda: steps.create_state(
      model, tx, config, jax.random.PRNGKey(0)))


@pytest.mark.parametrize("name,arg,scan", [
    ("vit", "b16", False), ("vit", "b16", True),
    ("vivit_factorized", "k400", False)])
def test_vit_b_state_per_device_is_at_most_a_sixth(name, arg, scan):
  """Parameters + optimizer state of ViT-B-sized models, shapes only."""
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  config.model.scan_layers = scan
  abstract = _abstract_state(config)
  tree = (abstract.params, abstract.opt_state)
  mesh = sharding.make_mesh()
  assert mesh.devices.size == 8
  replicated = sharding.bytes_per_device(
      tree, sharding.state_shardings(tree, mesh, "replicate"))
  fsdp = sharding.bytes_per_device(
      tree, sharding.config_state_shardings(
          dict(sharding="fsdp", fsdp_min_size_mb=config.fsdp_min_size_mb),
          tree, mesh))
  params = steps.param_count(abstract.params)
  assert 85e6 < params < 120e6  # ViT-B sized (86.6M; ViViT-B FE 115M)
  # Replicated: every byte of the state on each device; fp32 parameters plus
  # at least one fp32 moment (SGD momentum; AdamW keeps two).
  assert replicated == sum(x.size * x.dtype.itemsize
                           for x in jax.tree.leaves(tree))
  assert replicated >= 2 * 4 * params
  assert fsdp <= replicated / 6
  assert fsdp >= replicated / 8  # no leaf is split more than 8 ways


def _small_transformer(mode, tmp_path):
  config = tiny_config("", sharding=mode, fsdp_min_size_mb=0.0,
                       batch_size=16, eval_batch_size=16)
  config.model.hidden_size = 64
  config.model.num_heads = 4
  config.model.mlp_dim = 128
  config.model.spatial_layers = 2
  mesh = sharding.make_mesh()
  model, shape = costs.configured_model(config)
  schedule = optim.make_schedule(config.optimizer, 10, 2)
  tx = optim.make_optimizer(config.optimizer, schedule)
  ckpt = checkpoint.Checkpointer(str(tmp_path / mode), 1)
  quiet = lambda *a, **k: None  # noqa: E731
  state, shardings = train.initial_state(config, model, tx, mesh, ckpt, quiet)
  rng = np.random.default_rng(0)
  batches = [{"video": rng.integers(0, 256, (16,) + shape, np.uint8),
              "label": rng.integers(0, 8, (16,), np.int32)} for _ in range(5)]
  video = {"video": batches[0]["video"]}
  train_step, eval_step, _ = train.compile_steps(
      config, schedule, state, shardings,
      train.abstract_batch(batches[0], mesh), train.abstract_batch(video, mesh),
      mesh, quiet)
  losses = []
  for batch in batches:
    state, metrics = train_step(state, sharding.put_batch(batch, mesh))
    losses.append(metrics["train/loss"])
  logits = eval_step(state, sharding.put_batch(video, mesh))
  ckpt.close()
  return (np.array(jax.device_get(losses)), jax.device_get(state.params),
          np.asarray(logits), state)


def test_fsdp_losses_equal_the_replicated_run(tmp_path):
  rep_loss, rep_params, rep_logits, _ = _small_transformer("replicate",
                                                           tmp_path)
  fsdp_loss, fsdp_params, fsdp_logits, state = _small_transformer("fsdp",
                                                                  tmp_path)
  # The state really is split: most parameter leaves hold 1/8 per device.
  leaves = jax.tree.leaves(state.params)
  split = [x for x in leaves
           if x.addressable_shards[0].data.size * 8 == x.size]
  assert len(split) >= len(leaves) // 2
  mu = jax.tree.leaves(state.opt_state)
  assert any(x.ndim and x.addressable_shards[0].data.size * 8 == x.size
             for x in mu)
  assert np.all(np.isfinite(rep_loss)) and rep_loss[0] != rep_loss[-1]
  np.testing.assert_allclose(fsdp_loss, rep_loss, rtol=1e-5)
  flat = jax.tree_util.tree_flatten_with_path
  for (path, a), (_, b) in zip(flat(fsdp_params)[0], flat(rep_params)[0]):
    name = jax.tree_util.keystr(path)
    if "['key']['bias']" in name:
      # Its true gradient is 0 (a key bias adds the same q.b to every logit
      # of a query: softmax ignores it), so Adam scales rounding noise to
      # lr-sized steps: arbitrary in either run.
      continue
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)
  np.testing.assert_allclose(fsdp_logits, rep_logits, rtol=1e-4, atol=1e-5)


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_checkpoints_and_init_from_cross_modes(tiny_data_dir, tmp_path):
  def config(mode, **kw):
    return tiny_config(tiny_data_dir, sharding=mode, fsdp_min_size_mb=0.0,
                       num_train_steps=6, log_every_steps=1,
                       eval_every_steps=100, **kw)

  # Straight replicated run vs. replicated to step 3, resumed under fsdp.
  train.train_and_evaluate(config("replicate"), str(tmp_path / "rep"))
  train.train_and_evaluate(config("replicate"), str(tmp_path / "mixed"),
                           stop_after_steps=3)
  train.train_and_evaluate(config("fsdp"), str(tmp_path / "mixed"))
  straight, mixed = _losses(tmp_path / "rep"), _losses(tmp_path / "mixed")
  assert sorted(mixed) == [1, 2, 3, 4, 5, 6]
  np.testing.assert_allclose([mixed[s] for s in range(1, 7)],
                             [straight[s] for s in range(1, 7)], rtol=1e-5)

  # The replicated run's last checkpoint restores into the fsdp target.
  fsdp = config("fsdp")
  mesh = sharding.make_mesh()
  abstract = _abstract_state(fsdp)
  shardings = sharding.config_state_shardings(fsdp, abstract, mesh)
  ckpt = checkpoint.Checkpointer(str(tmp_path / "rep"), 3)
  restored = ckpt.restore(sharding.with_shardings(abstract, shardings), 6)
  ckpt.close()
  saved, _, _ = checkpoint.load_pretrained(str(tmp_path / "rep"))
  for x, y, s in zip(jax.tree.leaves(restored.params), jax.tree.leaves(saved),
                     jax.tree.leaves(shardings.params)):
    assert x.sharding == s
    np.testing.assert_array_equal(np.asarray(x), y)

  # init_from the replicated run into an fsdp run: every parameter loaded.
  target = config("fsdp")
  target.init_from.checkpoint_path = str(tmp_path / "rep")
  train.train_and_evaluate(target, str(tmp_path / "fine"), stop_after_steps=0)
  fine, _, _ = checkpoint.load_pretrained(str(tmp_path / "fine"))
  for x, y in zip(jax.tree.leaves(fine), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(x, y)

  # The FSDP-written checkpoint (8 devices) reads on one device, as numpy.
  sharded, _, _ = checkpoint.load_pretrained(str(tmp_path / "mixed"))
  code = ("import jax, numpy as np; from vidjax import checkpoint; "
          "assert jax.device_count() == 1; "
          f"p, _, _ = checkpoint.load_pretrained({str(tmp_path / 'mixed')!r}); "
          "print(repr([float(np.asarray(x, np.float64).sum()) "
          "for x in jax.tree.leaves(p)]))")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                        capture_output=True, timeout=300,
                        cwd=os.path.dirname(os.path.dirname(__file__)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  sums = eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307
  assert sums == [float(np.asarray(x, np.float64).sum())
                  for x in jax.tree.leaves(sharded)]


@pytest.mark.parametrize("key,value,pattern", [
    ("sharding", "zero3", "config.sharding must be one of"),
    ("fsdp_min_size_mb", -1.0, "config.fsdp_min_size_mb must be >= 0"),
])
def test_bad_sharding_options_are_one_line(key, value, pattern):
  from vidjax.config_check import check_config
  with pytest.raises(VidjaxError, match=pattern) as err:
    check_config(tiny_config("", **{key: value}))
  assert "\n" not in str(err.value)
