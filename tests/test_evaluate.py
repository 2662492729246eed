"""Multi-view metrics against a direct per-video computation."""
import numpy as np

from vidjax import evaluate


def test_multiview_metrics_by_hand():
  rng = np.random.default_rng(0)
  videos, views, classes = 7, 6, 5
  logits = rng.normal(size=(videos * views, classes))
  labels = np.repeat(rng.integers(0, classes, videos), views)
  got = evaluate.multiview_metrics(logits, labels, views)
  clip_top1 = np.mean(logits.argmax(-1) == labels)
  mean = logits.reshape(videos, views, classes).mean(1)
  top1 = np.mean(mean.argmax(-1) == labels[::views])
  order = np.argsort(-mean, -1)[:, :5]
  top5 = np.mean([labels[i * views] in order[i] for i in range(videos)])
  z = logits - logits.max(-1, keepdims=True)
  ce = np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(len(labels)), labels])
  assert got["eval/clip_top1"] == clip_top1
  assert got["eval/top1"] == top1
  assert got["eval/top5"] == top5 == 1.0  # 5 classes: top-5 covers all
  np.testing.assert_allclose(got["eval/loss"], ce, rtol=1e-12)
  assert got["eval/num_videos"] == videos


def test_topk_correct():
  logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
  np.testing.assert_array_equal(
      evaluate.topk_correct(logits, np.array([2, 0]), 1), [False, True])
  np.testing.assert_array_equal(
      evaluate.topk_correct(logits, np.array([2, 1]), 2), [True, True])
