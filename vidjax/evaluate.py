"""Multi-view evaluation: clips x crops per test video, logits averaged.

Reports clip-level (`eval/clip_top1`, `eval/clip_top5`) and video-level
(`eval/top1`, `eval/top5`, from the mean logits of each video's views)
accuracy, and the clip-level cross-entropy `eval/loss`.
"""
import numpy as np

from vidjax import sharding
from vidjax.data.pipeline import EvalLoader


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  k = min(k, logits.shape[-1])
  top = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
  return (top == labels[:, None]).any(axis=-1)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  z = logits - logits.max(-1, keepdims=True)
  logz = np.log(np.exp(z).sum(-1))
  return logz - z[np.arange(len(labels)), labels]


def predict(state, eval_step, loader: EvalLoader, mesh, num_workers: int = 4,
            prefetch: int = 4):
  """Logits and labels of every test view, in view order (padding dropped)."""
  outputs = []
  for batch in loader.iterate(num_workers, prefetch):
    arrays = sharding.put_batch(batch, mesh)
    # Keep the device arrays; fetch once at the end (no per-batch host sync).
    outputs.append((eval_step(state, {"video": arrays["video"]}),
                    arrays["label"], arrays["mask"]))
  logits, labels, mask = (np.concatenate([sharding.to_host(o[i])
                                          for o in outputs])
                          for i in range(3))
  keep = mask > 0
  return logits[keep], labels[keep]


def multiview_metrics(logits: np.ndarray, labels: np.ndarray,
                      views_per_video: int) -> dict:
  """Clip- and video-level metrics from per-view logits in video-major order."""
  videos = logits.reshape(-1, views_per_video, logits.shape[-1]).mean(1)
  video_labels = labels[::views_per_video]
  return {
      "eval/loss": float(cross_entropy(logits, labels).mean()),
      "eval/clip_top1": float(topk_correct(logits, labels, 1).mean()),
      "eval/clip_top5": float(topk_correct(logits, labels, 5).mean()),
      "eval/top1": float(topk_correct(videos, video_labels, 1).mean()),
      "eval/top5": float(topk_correct(videos, video_labels, 5).mean()),
      "eval/num_videos": float(len(video_labels)),
  }


def evaluate(state, eval_step, loader: EvalLoader, mesh, **kwargs) -> dict:
  logits, labels = predict(state, eval_step, loader, mesh, **kwargs)
  return multiview_metrics(logits, labels, loader.views_per_video)
