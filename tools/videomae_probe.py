"""Linear probe of a VideoMAE encoder on `synthetic_motion` (issue #17).

  python -m tools.videomae_probe --encoder=DIR [--per_class=300]
      [--dataset=motion] [--steps=1000] [--override=KEY=VALUE ...]

Softmax regression (Adam 1e-2, L2 1e-3, standardised features) on the
encoder's mean-pooled tokens -- the fine-tuning head's input in
`configs/videomae_finetune.py` -- of the first `per_class` training videos
of each class (labels are index % 8, so the first 8 * per_class are
balanced), tested on all 800 test videos, each read as one centred clip of
8 frames at stride 2. Printed for a randomly initialised encoder of the
same config and for `--encoder` (a pretraining run or
`tools.export_checkpoint`'s encoder-only output; its `encoder/...`
parameters). A probe below the random encoder's says the pretraining
features carry less of the class than random ones.
"""
import argparse

import numpy as np

from vidjax import cli  # noqa: F401  (puts the project root on sys.path)


def _clips(builder, split, indices):
  source = builder.as_data_source(split)
  videos, labels = [], []
  for i in indices:
    example = source[int(i)]
    n = len(example["video"])
    start = (n - 15) // 2           # the centred 15-frame span
    videos.append(example["video"][start:start + 15:2])
    labels.append(example["label"])
  x = (np.stack(videos).astype(np.float32) / 255.0 - 0.45) / 0.225
  return x, np.array(labels)


def probe(train_x, train_y, test_x, test_y, steps=1000):
  """Test top-1 of softmax regression trained on (train_x, train_y)."""
  import jax
  import jax.numpy as jnp
  import optax
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  f, ft = (train_x - mean) / std, (test_x - mean) / std
  k = int(max(train_y.max(), test_y.max())) + 1
  params = (jnp.zeros((f.shape[1], k)), jnp.zeros(k))
  tx = optax.adam(1e-2)
  opt = tx.init(params)

  @jax.jit
  def step(p, o):
    def loss(p):
      logits = f @ p[0] + p[1]
      return (optax.softmax_cross_entropy_with_integer_labels(
          logits, train_y).mean() + 1e-3 * (p[0] ** 2).sum())
    updates, o = tx.update(jax.grad(loss)(p), o)
    return optax.apply_updates(p, updates), o
  for _ in range(steps):
    params, opt = step(params, opt)
  return float(((ft @ params[0] + params[1]).argmax(-1) == test_y).mean())


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--encoder", required=True)
  parser.add_argument("--per_class", type=int, default=300)
  parser.add_argument("--dataset", default="motion")
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--override", action="append", default=[],
                      help="fine-tuning config override matching the "
                      "encoder, e.g. 'model.patch_size=(2,4,4)'")
  args = parser.parse_args(argv)
  import jax
  from vidjax import checkpoint, costs, experiment
  from vidjax.data import synthetic_motion
  from vidjax.models.videomae import VideoMAEEncoder
  from tools.videomae_learning import parse_overrides
  config = experiment.build_config("videomae_finetune", args.dataset, 1,
                                   parse_overrides(args.override))
  model, _ = costs.configured_model(config)
  background = config.dataset.synthetic_background
  builder = synthetic_motion.load_builder(
      args.dataset, **({} if background == "textured" else
                       {"background": background}))
  x, y = _clips(builder, "train", range(8 * args.per_class))
  xt, yt = _clips(builder, "test", range(800))
  encoder = VideoMAEEncoder(
      tuple(model.patch_size), model.hidden_size, model.num_layers,
      model.num_heads, model.mlp_dim, False,
      tuple(model.block_options().items()))
  apply = jax.jit(lambda p, v: encoder.apply(
      {"params": p}, v, train=False).mean(1))

  def features(params, v):
    return np.concatenate([np.asarray(apply(params, v[i:i + 100]))
                           for i in range(0, len(v), 100)])
  random = encoder.init(jax.random.PRNGKey(0), x[:1], train=False)["params"]
  loaded, _, where = checkpoint.load_pretrained(args.encoder)
  trained = loaded.get("encoder", loaded)
  for name, params in (("random init", random), (where, trained)):
    top1 = probe(features(params, x), y, features(params, xt), yt,
                 args.steps)
    print(f"linear probe, {args.per_class}/class: {name}: top-1 {top1:.3f}")


if __name__ == "__main__":
  main()
