"""`init_from` for the AVA detectors (issue #21): a Kinetics-style
classification checkpoint of SlowFast / VideoMAE (tiny, made here with the
detectors' own backbone options) initialises `ava_slowfast` /
`ava_videomae`: every backbone parameter (and BatchNorm statistic) equals
the checkpoint's, the AVA head is the fresh initialisation, and a checkpoint
of the other model is one VidjaxError line naming the key before anything is
compiled (vidjax/tasks/detection/init_from.py through vidjax/init_adapt.py).
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import ava_slowfast, ava_videomae
from tests.detection_runs import tiny
from vidjax import checkpoint, sharding, train
from vidjax.errors import VidjaxError
from vidjax.registry import build_model
from vidjax.steps import TrainState
from vidjax.tasks.detection import model as det
from vidjax.tasks.detection import task as det_task

# Compile-bound (inits of tiny models, no training): XLA optimisation level 0.
pytestmark = pytest.mark.fast_compile
K400 = [f"kinetics class {i}" for i in range(7)]
SKIP = {"name", "pooling", "roi_size", "sampling_ratio", "aligned",
        "head_dropout_rate", "res5_spatial_stride", "res5_dilation"}


def _classifier_checkpoint(det_config, name: str, root: str) -> dict:
  """A 7-class `name` classifier with the detector's backbone options,
  saved as a training run's checkpoint; its variables."""
  config = det_config.copy_and_resolve_references()
  config.task = "classification"
  config.model = {k: v for k, v in det_config.model.items() if k not in SKIP}
  config.model["name"] = name
  d = config.dataset
  model = build_model(config.model, len(K400))
  x = jnp.zeros((1, d.num_frames, d.crop_size, d.crop_size, 3))
  variables = jax.jit(lambda r: model.init({"params": r, "dropout": r}, x))(
      jax.random.key(7))
  zero = jnp.zeros((), jnp.int32)
  state = TrainState(step=zero + 3, params=variables["params"],
                     batch_stats=variables.get("batch_stats", {}),
                     opt_state=(), rng=jax.random.key(0), skipped_steps=zero,
                     nonfinite_streak=zero, apply_fn=model.apply,
                     tx=optax.identity())
  ckpt = checkpoint.Checkpointer(root, 1)
  ckpt.save(state, checkpoint.make_meta(config, state.params, K400))
  ckpt.close()
  return jax.device_get(variables)


def _flat(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep="/")


def _initial(config, workdir, log=lambda *a: None):
  model = det.build_model(config.model, 9)
  mesh = sharding.make_mesh(1)
  tx = optax.sgd(0.1)
  ckpt = checkpoint.Checkpointer(workdir, 1)
  state, _ = train.initial_state(config, model, tx, mesh, ckpt, log,
                                 class_names=[f"c{i}" for i in range(9)],
                                 task=det_task.Detection())
  return jax.device_get(state)


@pytest.mark.parametrize("which", ["slowfast", "videomae"])
def test_backbone_loads_from_a_classifier_and_the_head_starts_fresh(
    which, tmp_path):
  if which == "slowfast":
    config, source, inner = ava_slowfast.get_config("tiny"), "slowfast", \
        "backbone"
  else:
    config, source, inner = ava_videomae.get_config(), "videomae", "encoder"
    config.dataset.crop_size = 32
  variables = _classifier_checkpoint(config, source, str(tmp_path / "k400"))
  fresh = _initial(config, str(tmp_path / "fresh"))
  config.init_from.checkpoint_path = str(tmp_path / "k400")
  lines = []
  state = _initial(config, str(tmp_path / "det"), lines.append)
  src = _flat(variables["params"])
  got = _flat(state.params)
  kept = {k: v for k, v in src.items() if (
      k.startswith("encoder/") if which == "videomae" else
      not k.startswith("head/"))}
  if which == "videomae":  # the classifier's fc_norm: the final norm
    kept.update({f"encoder/transformer/norm/{leaf}": src[f"fc_norm/{leaf}"]
                 for leaf in ("scale", "bias")})
  assert len(kept) >= 10
  for key, value in kept.items():  # every backbone leaf, exactly
    name = key if which == "videomae" else f"backbone/{key}"
    np.testing.assert_array_equal(got[name], value, err_msg=name)
  assert {k.split("/")[0] for k in got} == {inner, "roi_head"}
  assert len([k for k in got if k.startswith(inner + "/")]) == len(kept)
  for key in got:  # the AVA head: the fresh initialisation
    if key.startswith("roi_head/"):
      np.testing.assert_array_equal(got[key], _flat(fresh.params)[key])
  if which == "slowfast":  # BatchNorm statistics under backbone/ too
    stats, want = _flat(state.batch_stats), _flat(variables["batch_stats"])
    assert len(stats) == len(want) > 0
    for key, value in want.items():
      np.testing.assert_array_equal(stats[f"backbone/{key}"], value)
  assert any(f"loaded {len(kept)} of {len(got)} parameters" in line
             for line in lines), lines
  assert not any("unused from the checkpoint" in line for line in lines)
  assert any("the AVA head starts fresh" in line for line in lines), lines


def test_a_checkpoint_of_another_model_fails_before_compiling(
    tiny_detection_run, tmp_path, monkeypatch):
  config = tiny(tiny_detection_run.data_dir)
  vmae = ava_videomae.get_config()
  vmae.dataset.crop_size = 32
  _classifier_checkpoint(vmae, "videomae", str(tmp_path / "k400"))
  config.init_from.checkpoint_path = str(tmp_path / "k400")

  def tripwire(*a, **k):
    raise AssertionError("compiled before the init_from error")
  monkeypatch.setattr(train, "compile_steps", tripwire)
  with pytest.raises(VidjaxError) as e:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  msg = str(e.value)
  assert "\n" not in msg and "config.init_from.checkpoint_path=" in msg, msg
  assert "fit this model by name and shape" in msg
