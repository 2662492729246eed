"""Audio front end and metrics parity (issue #22): `python -m tools.audio_parity`.

Log-mel against librosa (3 settings x 3 signals; float64 numpy, jnp under
x64, jnp float32), SDR against mir_eval's BSS-Eval (20 random pairs), and the
jitted log-mel's speed. librosa and mir_eval are test-only oracles
(requirements-test.txt); the settings and signals are the tests'.
"""
import time, warnings
from vidjax import cli  # noqa: F401  (puts the project root on sys.path)
import numpy as np, jax, jax.numpy as jnp, librosa, scipy.signal
import mir_eval.separation as sep
from vidjax.audio import frontend as fe, metrics as am
warnings.simplefilter("ignore")
import tests.test_audio_frontend as T
worst = {"np64": 0, "jnp64": 0, "jnp32": 0}
for name, c in T.SETTINGS.items():
  for kind in ("tone", "chirp", "noise"):
    x = T._signal(kind, c.sample_rate)
    M = librosa.feature.melspectrogram(y=x, sr=c.sample_rate, pad_mode=c.pad_mode, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, htk=c.htk, norm=c.norm, dtype=np.float64, **T._lib_kwargs(c))
    D = librosa.power_to_db(M, ref=c.ref, amin=c.amin, top_db=c.top_db).T
    worst["np64"] = max(worst["np64"], np.abs(fe.log_mel(x, c) - D).max())
    with jax.enable_x64(True):
      worst["jnp64"] = max(worst["jnp64"], np.abs(np.asarray(fe.log_mel(jnp.asarray(x), c)) - D).max())
    worst["jnp32"] = max(worst["jnp32"], np.abs(np.asarray(fe.log_mel(jnp.asarray(x, jnp.float32), c)) - D).max())
print("log-mel max |dB - librosa| over 3 settings x 3 signals:", {k: f"{v:.2e}" for k, v in worst.items()})
rng = np.random.default_rng(0); d = []
for _ in range(20):
  ref = rng.standard_normal(3000); est = scipy.signal.lfilter(np.r_[1, 0.5 * rng.standard_normal(20)], [1], ref) + rng.uniform(0.05, 2) * rng.standard_normal(3000)
  d.append(abs(am.sdr(ref, est) - sep.bss_eval_sources(ref[None], est[None])[0][0]))
print(f"SDR max |vidjax - mir_eval| over 20 pairs: {max(d):.2e} dB")
for pname, secs, b in (("visualvoice", 2.55, 8), ("ast_kaldi", 10.24, 8)):
  c = fe.preset(pname); x = jnp.asarray(rng.standard_normal((b, int(secs * c.sample_rate))), jnp.float32)
  f = jax.jit(lambda a: fe.log_mel(a, c)); f(x).block_until_ready()
  t = time.perf_counter(); [f(x).block_until_ready() for _ in range(5)]; dt = (time.perf_counter() - t) / 5
  print(f"jit log_mel {pname} [{b}, {x.shape[1]}] -> {tuple(f(x).shape)}: {dt*1e3:.1f} ms/batch (CPU, {jax.device_count()} devices)")
