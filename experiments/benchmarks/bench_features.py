"""Front-end throughput: numpy (float64) and JAX (jit, float32) on 1000 real clips, for every preset.

    .venv/bin/python experiments/benchmarks/bench_features.py [--clips 1000] [--repeats 5] [--malloc default]

GUIDE §3 anchors on these 2 cores: a vectorised numpy MFCC ~0.9 s per 1000 clips, the same code jitted in
JAX ~0.26 s. XLA's CPU backend allocates large temporaries every call; like training, the benchmark runs
under the GLIBC_TUNABLES of GUIDE §3 (re-executing itself to set them) unless ``--malloc default``.
Timings are the best of ``--repeats`` runs after a warm-up; the median is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

DEFAULT_TEST_SET = REPO.parent / "shared" / "data" / "speech_commands_v0.02_test"
# GUIDE §3: without these, glibc maps and unmaps XLA's per-call temporaries (page faults dominate).
TUNED_MALLOC = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000"
ANCHOR_NUMPY_S, ANCHOR_JAX_S = 0.9, 0.26  # GUIDE §3, seconds per 1000 clips


def load_clips(test_set: Path, n_clips: int) -> np.ndarray:
    paths = sorted(test_set.glob("*/*.wav"))
    if len(paths) < n_clips:
        raise SystemExit(f"need {n_clips} clips under {test_set}, found {len(paths)}")
    paths = paths[:: len(paths) // n_clips][:n_clips]  # spread over every class folder
    audio = np.zeros((n_clips, 16_000), np.float32)
    for row, path in zip(audio, paths, strict=True):
        with wave.open(str(path), "rb") as w:
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")[:16_000]
        row[: samples.size] = samples / 32768.0
    return audio


def best_and_median(run, repeats: int) -> tuple[float, float]:
    run()  # warm-up: compilation, caches, first-touch of buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-set", type=Path, default=DEFAULT_TEST_SET)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--malloc", choices=["tuned", "default"], default="tuned")
    args = parser.parse_args()
    if args.malloc == "tuned" and os.environ.get("GLIBC_TUNABLES") != TUNED_MALLOC:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "GLIBC_TUNABLES": TUNED_MALLOC})

    import jax  # after the re-exec, so that XLA starts under the tuned allocator

    from nas.features import PRESETS, features_numpy, make_features_jax

    audio = load_clips(args.test_set, args.clips)
    audio_device = jax.device_put(audio)
    per_1000 = 1000 / args.clips
    print(
        f"{args.clips} clips from {args.test_set.name}; malloc {args.malloc}; {os.cpu_count()} CPUs; jax {jax.__version__}"
    )
    print(
        f"{'preset':16s} {'shape':>8s} | {'numpy s/1000':>12s} {'clips/s':>8s} | {'jax s/1000':>10s} {'clips/s':>8s}"
    )
    for name, cfg in PRESETS.items():
        numpy_best, numpy_median = best_and_median(lambda cfg=cfg: features_numpy(audio, cfg), args.repeats)
        fn = jax.jit(make_features_jax(cfg))
        jax_best, jax_median = best_and_median(
            lambda fn=fn: fn(audio_device).block_until_ready(), args.repeats
        )
        shape = "x".join(map(str, cfg.feature_shape))
        print(
            f"{name:16s} {shape:>8s} | {numpy_best * per_1000:6.3f} ({numpy_median * per_1000:.3f}) "
            f"{args.clips / numpy_best:8.0f} | {jax_best * per_1000:5.3f} ({jax_median * per_1000:.3f}) "
            f"{args.clips / jax_best:8.0f}"
        )
    print(f"GUIDE §3 anchors: numpy {ANCHOR_NUMPY_S} s / 1000 clips, JAX jit {ANCHOR_JAX_S} s / 1000 clips")


if __name__ == "__main__":
    main()
