"""The audio-visual task's datasets as in-memory `data.Split`s."""
from __future__ import annotations

import numpy as np

from vidjax.tasks.audio_visual.data import Split


def synthetic_av(config):
  """(train, test) Splits of `synthetic_av` (config.dataset.kind; sizes
  train_size / test_size), rendered by vidjax/data/av_render.py."""
  from vidjax.data import av_render  # noqa: PLC0415
  d = config.dataset
  out = []
  for split, n in (("train", d.train_size), ("test", d.test_size)):
    video, audio, label = [], [], []
    for i in range(int(n)):
      v, mix, _, p = av_render.render(int(d.get("data_seed", 0)), split, i,
                                      kind=d.get("kind", "fusion"))
      video.append(v)
      audio.append(mix.astype(np.float32) / 32768.0)
      label.append(p["label"])
    out.append(Split(np.stack(video), np.stack(audio),
                     np.asarray(label, np.int32)))
  return tuple(out)
