"""How far the free static estimates are from the board, and whether the static check ever refuses a
candidate that fits: the analytic evaluator on an untrained build against the emulator's measurement.

    python experiments/benchmarks/bench_static_check.py [--board mps2-an386] [--n 60]

Specs: every preset of the ds-cnn and micronet families, uniform samples of both spaces, and chains of
one to four morphisms of DS-CNN-S and MicroNet-KWS-S (the evolution sampler's neighbourhoods, where
budgets bind). Prints, per figure, the range of analytic / measured, the tolerance the static check uses
(`nas.study.static_check.TOLERANCE`) and how many specs it would have refused although they fit under
their own measured figures as budgets (must be 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def specs(n: int, seed: int = 0) -> list:
    import optuna

    from nas.study.evolution import decode, mutate
    from search_spaces import get_preset, get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    out = []
    for name in ("ds-cnn", "micronet"):
        space = get_space(name)
        out += list(space.presets().values())
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out += [space.sample(study.ask()) for _ in range(n // 4)]
        for base in ("ds-cnn-s", "micronet-kws-s"):
            if base not in space.presets():
                continue
            for _ in range(n // 4):
                _, params, dists = decode(space, space.params_of(get_preset(base)), rng)
                for _ in range(int(rng.integers(1, 5))):
                    m = mutate(params, dists, rng)
                    if m is not None:
                        _, params, dists = decode(space, m[0], rng)
                out.append(decode(space, params, rng)[0])
    unique = {s.digest(): s for s in out}
    return list(unique.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="mps2-an386")
    ap.add_argument("--n", type=int, default=60, help="sampled and mutated specs (about)")
    args = ap.parse_args()
    from hardware.evaluators import EmulatorEvaluator
    from hardware.tflite_io import write_tflite
    from nas.models.probe import probe_folded
    from nas.quant.float_graph import float_graph
    from nas.quant.ptq import calibrate, quantize_graph
    from nas.study.static_check import TOLERANCE, StaticCheck, analytic_figures

    emu = EmulatorEvaluator()
    ratios: dict[str, list[float]] = {k: [] for k in TOLERANCE}
    refused_but_fit, t_check, rows = [], [], 0
    for spec in specs(args.n):
        fg = float_graph(spec, probe_folded(spec))
        feats = np.random.default_rng(0).standard_normal((8, *spec.frontend.feature_shape)).astype(np.float32)
        m = emu.measure(write_tflite(quantize_graph(fg, calibrate(fg, 5 * feats, clip_percent=0))), args.board)
        if not m.ok:
            continue
        measured = {"flash_bytes": m.flash_bytes, "ram_bytes": m.ram_bytes, "latency_ms": m.latency_ms_est}
        t0 = time.perf_counter()
        est = analytic_figures(spec, args.board)
        reason = StaticCheck(measured, args.board).reason(spec)  # its own figures as budgets: it fits them
        t_check.append(time.perf_counter() - t0)
        rows += 1
        for k in ratios:
            ratios[k].append(est[k] / measured[k])
        if reason is not None:
            refused_but_fit.append((spec.name, reason))
    print(f"{rows} specs measured on {args.board}; static check {1e3 * np.median(t_check):.0f} ms median")
    for k, r in ratios.items():
        print(f"  {k:12s} analytic / measured {min(r):.3f} .. {max(r):.3f} (median {np.median(r):.3f}); "
              f"tolerance x{TOLERANCE[k]}")
    print(f"refused although they fit: {len(refused_but_fit)}")
    for name, reason in refused_but_fit:
        print(f"  {name}: {reason}")
    return 1 if refused_but_fit else 0


if __name__ == "__main__":
    sys.exit(main())
