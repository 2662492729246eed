"""Visually guided source separation as a task of the shared loop.

`config.task = "separation"` (configs/sound_of_pixels.py) trains the
mix-and-separate U-Net of vidjax/models/separation.py (Zhao et al., ECCV
2018, "The Sound of Pixels"; conditioned on one object's visual features as
Gao & Grauman, ICCV 2019, "Co-Separating Sounds of Visual Objects") through
`python -m vidjax.main`, with the loop's checkpoints, resume, metric windows
and data-parallel sharding (vidjax/tasks/base.py is the interface).

* Data (vidjax/tasks/separation/data.py): `synthetic_av` (config
  `separation`: two objects, both sounding, each one's stem stored) or the
  tests' `separation_tones`; batches of (video, boxes, mixture, stems),
  deterministic in (seed, step).
* Steps (train_step.py): STFTs on the device, weighted BCE on the warped
  ratio (or binary) masks; the eval step returns the separated waveforms.
* Evaluation (evaluate.py), on the test split's mixtures: per source SDR,
  SI-SDR, their improvements over the mixture, the oracle ideal-ratio-mask
  scores and the swapped-condition control; means -> eval/sdri,
  eval/si_sdri, eval/oracle_sdr, eval/swap_sdri, ... The final evaluation
  writes WORKDIR/eval/test_step<N>/metrics.json and per_source.jsonl.

Config keys beyond the shared ones: `dataset.clip_samples` (audio samples
per clip), `dataset.num_frames` / `dataset.crop_size` (the stored clip's
frames and side: no crop), `separation.num_sources`, `separation.loss`
("bce" | "l1"), `separation.remix_gain` (>= 0), `eval_max_videos`
(evenly spaced test mixtures; 0: all). Single host for evaluation (every
eval batch is put whole), like the detection task.
"""
from __future__ import annotations

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np

from vidjax.errors import VidjaxError
from vidjax.tasks import base
from vidjax.tasks.separation import data as data_lib
from vidjax.tasks.separation import evaluate as ev
from vidjax.tasks.separation import train_step

DATASETS = data_lib.SOURCES + ("music",)


def _sep(config):
  return config.get("separation", {})


def shapes(config):
  """(clip samples, video shape without batch, number of sources)."""
  d = config.dataset
  return (int(d.get("clip_samples", 32000)),
          (int(d.num_frames), int(d.crop_size), int(d.crop_size), 3),
          int(_sep(config).get("num_sources", 2)))


def preflight(config, mesh):
  """Every separation config check (one-line VidjaxErrors naming the key),
  before any data is built or anything compiled."""
  from vidjax import optim, preflight as pf, sharding  # noqa: PLC0415
  from vidjax.config_check import check_config  # noqa: PLC0415
  check_config(config)
  d, s = config.dataset, _sep(config)
  if d.name not in DATASETS:
    raise VidjaxError(f"config.dataset.name={d.name!r}: separation datasets "
                      f"are {', '.join(DATASETS)}")
  if d.name == "music" and not (d.get("path") or d.get("csv")):
    raise VidjaxError("config.dataset.path (or config.dataset.csv): the "
                      "folder / CSV of solo videos (MUSIC layout) is not set")
  if s.get("loss", "bce") not in train_step.LOSSES:
    raise VidjaxError(f"config.separation.loss={s.loss!r}: one of "
                      f"{', '.join(train_step.LOSSES)}")
  if not s.get("remix_gain", 0.0) >= 0:
    raise VidjaxError(f"config.separation.remix_gain={s.remix_gain!r}: "
                      "must be >= 0")
  samples, video_shape, m = shapes(config)
  if m < 2:
    raise VidjaxError(f"config.separation.num_sources={m}: a mixture needs "
                      ">= 2 sources")
  if samples < 1:
    raise VidjaxError(f"config.dataset.clip_samples={samples}: must be > 0")
  if config.get("grad_accum_steps", 1) != 1:
    raise VidjaxError("config.grad_accum_steps: the separation step takes "
                      "whole batches (set 1)")
  optim.make_optimizer(config.optimizer,
                       optim.make_schedule(config.optimizer, 2, 1))
  sharding.check_batch_size(config.batch_size, mesh)
  sharding.check_batch_size(config.eval_batch_size, mesh, "eval_batch_size")
  model = train_step.build(config)
  if not hasattr(model, "freq_bins"):
    raise VidjaxError(f"config.model.name={config.model.name!r} is not a "
                      "separation model (use separation_unet)")
  model.check()
  try:  # the model's structure, traced (no compile)
    args = train_step.init_inputs(model, samples, video_shape, m)
    abstract = jax.eval_shape(lambda: model.init(
        {"params": jax.random.PRNGKey(0)}, *args))["params"]
  except VidjaxError:
    raise
  except Exception as e:  # noqa: BLE001  (flax shape errors)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise VidjaxError(f"config.model: {config.model.name} cannot be built "
                      f"for {samples}-sample clips ({first[:200]})") from None
  names = [f"object_{k}" for k in range(m)]
  return pf.Preflight(names, None, model, abstract)


class Separation(base.Task):
  """The Task (vidjax/tasks/base.py) of mix-and-separate separation."""

  name = "separation"
  eval_keys = data_lib.EVAL_KEYS
  counts_flops = False

  def __init__(self):
    self._reference = {}

  def preflight(self, config, mesh):
    return preflight(config, mesh)

  def load_data(self, config, workdir: str, log=print, class_names=None):
    if config.dataset.name == "music":
      raise VidjaxError("config.dataset.name='music': vidjax has no loader "
                        "of MUSIC-style solo videos yet (the config and its "
                        "preflight are the paper recipe); train on "
                        "synthetic_av")
    got = data_lib.load(config.dataset)
    samples, video_shape, m = shapes(config)
    for split, dset in got.items():
      if not len(dset):
        raise VidjaxError(f"config.dataset.name={config.dataset.name}: no "
                          f"{split} examples")
      if dset.mixture.shape[1] != samples:
        raise VidjaxError(f"config.dataset.clip_samples={samples}: the "
                          f"{split} audio has {dset.mixture.shape[1]}")
      if tuple(dset.video.shape[1:]) != video_shape:
        raise VidjaxError(f"config.dataset.num_frames / crop_size give clips "
                          f"{video_shape}, the {split} videos are "
                          f"{tuple(dset.video.shape[1:])}")
      if dset.num_sources != m:
        raise VidjaxError(f"config.separation.num_sources={m}: the {split} "
                          f"data has {dset.num_sources} stems")
      if dset.sample_rate != config.model.get("sample_rate", 16000):
        raise VidjaxError(f"config.model.sample_rate: the data is at "
                          f"{dset.sample_rate} Hz")
    out = types.SimpleNamespace(**got)
    out.class_names = list(class_names or [f"object_{k}" for k in range(m)])
    return out

  def loaders(self, config, pre, data, pidx: int, pcount: int):
    train = data_lib.TrainLoader(data.train, config.seed, config.batch_size,
                                 pidx, pcount,
                                 _sep(config).get("remix_gain", 0.0))
    test = data_lib.EvalLoader(data.test, config.eval_batch_size,
                               config.get("eval_max_videos", 0))
    return train, test, data.test

  def create_state(self, model, tx, config, rng):
    samples, video_shape, m = shapes(config)
    return train_step.create_state(model, tx, config, rng, samples,
                                   video_shape, m)

  def make_train_step(self, config, schedule):
    return train_step.make_train_step(config, schedule)

  def make_eval_step(self, config):
    return train_step.make_eval_step(config)

  def reference(self, config, dset, index: int) -> list:
    """Mixture and oracle scores of test example `index` (cached)."""
    if index not in self._reference:
      stft = train_step.sep.stft_config(train_step.build(config))
      mix, stems = dset.waves("mixture", index), dset.waves("stems", index)
      self._reference[index] = ev.reference_rows(
          stems, mix, ev.oracle_estimates(stft, mix, stems))
    return self._reference[index]

  def evaluate(self, ctx: base.EvalContext, state, eval_step, step: int):
    from vidjax import sharding  # noqa: PLC0415
    dset, rows = ctx.test, []
    for batch in ctx.eval_loader.iterate():
      est = eval_step(state, sharding.put_batch(
          {k: batch[k] for k in data_lib.EVAL_KEYS}, ctx.mesh))
      est = np.asarray(jax.device_get(est))
      for r, i in enumerate(batch["index"]):
        if batch["valid"][r]:
          got = ev.source_rows(dset.waves("stems", i), None, est[r],
                               reference=self.reference(ctx.config, dset,
                                                        int(i)))
          rows += [{"example": int(i), **x} for x in got]
    result = ev.summarize(rows)
    if step != ctx.num_steps or not ctx.is_main:
      return result, None

    def record():  # the final evaluation's files
      out = os.path.join(ctx.workdir, "eval", f"test_step{step}")
      os.makedirs(out, exist_ok=True)
      with open(os.path.join(out, "per_source.jsonl"), "w") as f:
        for row in rows:
          f.write(json.dumps(row) + "\n")
      with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({**result, "split": "test", "step": int(step),
                   "checkpoint": ctx.checkpoint_path(step)}, f, indent=1)
      return None
    return result, record

  def summary(self, config, final: dict) -> str:
    g = lambda k: final.get(f"eval/{k}", float("nan"))  # noqa: E731
    return (f"test ({int(g('num_sources'))} sources): SDRi={g('sdri'):.2f} "
            f"dB SI-SDRi={g('si_sdri'):.2f} dB (SDR {g('sdr'):.2f}, "
            f"mixture {g('mixture_sdr'):.2f}, oracle IRM "
            f"{g('oracle_sdr'):.2f}); other object's condition: "
            f"SDRi={g('swap_sdri'):.2f} dB")


def separate_batch(config, state, batch: dict) -> np.ndarray:
  """Separated waveforms [B, M, N] of an eval batch (uint8 video, boxes,
  mixture) with a trained state: the eval step, jitted here (one device;
  tools/separation_check.py writes them as wavs)."""
  step = jax.jit(train_step.make_eval_step(config))
  return np.asarray(step(state, {k: jnp.asarray(batch[k])
                                 for k in data_lib.EVAL_KEYS}))
