"""A crude hand rule on frame differences: the reference for a motion dataset.

  python -m tools.frame_difference_rule --path=DIR [--test_fraction=0.2]
      [--csv=FILE]

Reads DIR/<class>/<videos> with the split `video_folder` uses
(vidjax/data/listing.py: every 5th file per class is a test video unless DIR
has lists), and gives each video two numbers computed from grey 64x48 frames
and their differences two frames apart (D = I[t+2] - I[t]):
  * motion: sum |D| / sum |grad I| over the frame, a normal-flow speed
    (brightness constancy: I_t = -v . grad I), averaged over time;
  * spread: the same ratio on the outer ring of the frame (outside the
    centred half-size box) over the one inside the box: ~1 when the whole
    frame moves alike (a pan), > 1 when motion grows from the centre out (a
    zoom), often < 1 when only the subject moves.
The rule is nearest class mean of (log motion, log spread), standardised,
fitted on the training videos; it prints train and test accuracy. On the
issue's held-out recordings such a rule scored 83%;
`python -m tools.make_real_motion` data: benchmarks/RESULTS.md.
"""
import numpy as np

LAG = 2
SIZE = (64, 48)  # (width, height) of the grey frames


def read_grey(path: str) -> np.ndarray:
  """Grey float32 [T, 48, 64] frames of a video file (PyAV, area resize)."""
  import av  # noqa: PLC0415
  import cv2  # noqa: PLC0415
  with av.open(path) as container:
    frames = [cv2.resize(f.to_ndarray(format="gray"), SIZE,
                         interpolation=cv2.INTER_AREA)
              for f in container.decode(video=0)]
  return np.stack(frames).astype(np.float32)


def features(grey: np.ndarray, lag: int = LAG) -> np.ndarray:
  """(log motion, log spread) of grey frames [T, H, W] (module docstring)."""
  lag = min(lag, len(grey) - 1)
  diff = np.abs(grey[lag:] - grey[:-lag])
  gy, gx = np.gradient(grey[:-lag], axis=(1, 2))
  grad = np.abs(gx) + np.abs(gy)
  h, w = grey.shape[1:]
  inner = np.zeros((h, w), bool)
  inner[h // 4:h - h // 4, w // 4:w - w // 4] = True
  eps = 1e-3 * grad.size
  motion = diff.sum() / (grad.sum() + eps)
  centre = diff[:, inner].sum() / (grad[:, inner].sum() + eps)
  ring = diff[:, ~inner].sum() / (grad[:, ~inner].sum() + eps)
  return np.log(np.array([motion, (ring + 1e-3) / (centre + 1e-3)]) + 1e-6)


class NearestMean:
  """Nearest class mean in standardised feature space."""

  def fit(self, x: np.ndarray, y: np.ndarray) -> "NearestMean":
    self.mu, self.sd = x.mean(0), x.std(0) + 1e-8
    z = (x - self.mu) / self.sd
    self.classes = np.unique(y)
    self.means = np.stack([z[y == c].mean(0) for c in self.classes])
    return self

  def predict(self, x: np.ndarray) -> np.ndarray:
    z = (x - self.mu) / self.sd
    d = ((z[:, None] - self.means[None]) ** 2).sum(-1)
    return self.classes[d.argmin(1)]


def evaluate(path: str, test_fraction: float = 0.2, csv: str = "",
             verbose: bool = True):
  """{"train": accuracy, "test": accuracy, "num_train", "num_test"} on DIR
  (split as config.dataset.test_fraction / config.dataset.csv would)."""
  import os  # noqa: PLC0415
  import ml_collections  # noqa: PLC0415
  from vidjax.data import listing as listing_lib  # noqa: PLC0415
  cfg = ml_collections.ConfigDict(dict(
      name="video_folder", path=path, train_list="", test_list="", csv=csv,
      test_fraction=test_fraction))
  listing = listing_lib.folder_listing(cfg)
  xy = {}
  for split in ("train", "test"):
    rows = getattr(listing, split)
    x = np.stack([features(read_grey(os.path.join(listing.root, p)))
                  for p, _ in rows])
    xy[split] = (x, np.array([y for _, y in rows]))
  rule = NearestMean().fit(*xy["train"])
  out = {s: float((rule.predict(x) == y).mean()) for s, (x, y) in xy.items()}
  out.update(num_train=len(xy["train"][1]), num_test=len(xy["test"][1]))
  if verbose:
    print(f"frame-difference rule on {path}: train {out['train']:.1%} "
          f"({out['num_train']} videos), test {out['test']:.1%} "
          f"({out['num_test']} videos); classes {list(listing.class_names)}")
  return out


def main(argv):
  del argv
  from absl import flags  # noqa: PLC0415
  evaluate(flags.FLAGS.path, flags.FLAGS.test_fraction, flags.FLAGS.csv)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("path", None, "DIR with one folder of videos per class")
  flags.DEFINE_float("test_fraction", 0.2, "as config.dataset.test_fraction")
  flags.DEFINE_string("csv", "", "as config.dataset.csv (path,label,split)")
  flags.mark_flag_as_required("path")
  app.run(main)
