"""How close the analytic evaluator comes to the emulator: latency (instructions) and flash of every
preset, per kernel variant, against the target of 5 % (the analytic evaluator filters candidates
before they are measured, so its error decides what a large search may skip).

    .venv/bin/python experiments/benchmarks/bench_analytic.py [--presets all] [--variants dsp,plain] [--fit]

Models: each preset with random weights, PTQ-quantized (as ``bench_hardware.py``), plus the trained
DS-CNN-S models under ``results/`` when there are any. Boards: ``mps2-an386`` (Cortex-M4) for the
DSP kernels, ``mps2-an385`` (Cortex-M3) for the plain ones. ``--fit`` also prints the cost table
(instructions per MAC, per output element, per input element and per call, for each C kernel
function, non-negative least squares on the per-op counts) and the code bytes per call that
``hardware/evaluators/analytic.py`` holds, refitted to these measurements.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 0.05  # relative error of the analytic latency and flash, per preset
BOARDS = {"dsp": "mps2-an386", "plain": "mps2-an385"}


def op_rows(data: bytes, variant: str, m) -> list[tuple[str, str, tuple[float, ...], int]]:
    """(variant, function, features, measured count) per generated op; features as in
    ``hardware.evaluators.analytic.op_features``."""
    from hardware import read_tflite
    from hardware.codegen import generate, int8_core
    from hardware.evaluators.analytic import op_features

    g = read_tflite(data)
    core = int8_core(g).graph
    gm = generate(g, variant)
    return [(variant, gm.functions[pos] or "alias", op_features(core, k), m.ops[pos].count, gm.calls[pos])
            for pos, k in enumerate(core.topological_order())]


def fit(rows: list[tuple], flashes: list[tuple[str, dict[str, int], int]]) -> None:
    from scipy.optimize import nnls

    for variant in sorted({r[0] for r in rows}):
        print(f"\n_COSTS[{variant!r}] (instructions = a*MACs + b*outputs + c*taps x pixels + d*positions x outputs + e*inputs + f), fitted:")
        for fn in sorted({r[1] for r in rows if r[0] == variant}):
            sel = [r for r in rows if r[:2] == (variant, fn)]
            a = np.array([r[2] for r in sel], float)
            y = np.array([r[3] for r in sel], float)
            # dsp: relative error (each op alike); plain: between that and absolute error, since relative
            # weights let the many small ops pull the plain kernels' fit 5-8 % below the presets' totals
            scale = np.maximum(y, 1.0) if variant == "dsp" else np.sqrt(np.maximum(y, 1.0))
            coef, _ = nnls(a / scale[:, None], y / scale)
            worst = float(np.max(np.abs(a @ coef - y) / np.maximum(y, 1.0)))
            print(f'    "{fn}": ({", ".join(f"{c:.4g}" for c in coef)}),  # {len(sel)} ops, worst {100 * worst:.0f} %')
        sel = [f for f in flashes if f[0] == variant]
        fns = sorted({fn for _, calls, _, _ in sel for fn in calls})
        a = np.array([[calls.get(fn, 0) for fn in fns] for _, calls, _, _ in sel], float)
        coef, _ = nnls(a, np.array([k for _, _, k, _ in sel], float))
        print(f"_CODE_BYTES[{variant!r}] per distinct call ('ops': per call site), fitted:", {fn: int(round(c)) for fn, c in zip(fns, coef, strict=True)},
              "runtime + startup (measured, largest):", max(r for *_, r in sel))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="all")
    p.add_argument("--variants", default="dsp,plain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fit", action="store_true", help="print the refitted cost table and code sizes")
    args = p.parse_args()
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)

    from bench_hardware import file_label, int8_model, trained_models

    from hardware.evaluators import AnalyticEvaluator, EmulatorEvaluator
    from search_spaces.presets import PRESET_NAMES

    presets = list(PRESET_NAMES) if args.presets == "all" else args.presets.split(",")
    models = [(name, int8_model(name, args.seed)) for name in presets]
    models += [(file_label(f), f.read_bytes()) for f in trained_models()]
    rows, flashes, misses = [], [], []
    print(f"{'model':40s} {'variant':7s} {'instructions':>12s} {'analytic':>12s} {'error':>7s} "
          f"{'flash B':>9s} {'analytic':>9s} {'error':>7s}")
    for variant in args.variants.split(","):
        board = BOARDS[variant]
        for name, data in models:
            m = EmulatorEvaluator(variant=variant).measure(data, board)
            a = AnalyticEvaluator(variant=variant).measure(data, board)
            if m.instructions is None:
                print(f"{name:40s} {variant:7s} emulator: {m.error}")
                continue
            e_lat = a.instructions / m.instructions - 1
            e_flash = a.flash_bytes / m.flash_bytes - 1
            print(f"{name:40s} {variant:7s} {m.instructions:12,} {a.instructions:12,} {100 * e_lat:+6.1f}% "
                  f"{m.flash_bytes:9,} {a.flash_bytes:9,} {100 * e_flash:+6.1f}%")
            misses += [f"{name} {variant}: {what} {100 * e:+.1f} %" for what, e in (("latency", e_lat),
                                                                                    ("flash", e_flash))
                       if abs(e) > TARGET]
            if args.fit:
                r = op_rows(data, variant, m)
                rows += r
                calls: dict[str, int] = {"ops": len(r)}  # call sites, and each distinct call's code
                for call, fn in {row[4]: row[1] for row in r}.items():
                    if call:
                        calls[fn] = calls.get(fn, 0) + 1
                flashes.append((variant, calls, m.flash_split["kernels"],
                                m.flash_split["runtime"] + m.flash_split["startup"]))
    if args.fit:
        fit(rows, flashes)
    print(f"\ntarget: analytic latency and flash within {100 * TARGET:.0f} % of the emulator on every model: "
          + ("met" if not misses else f"MISSED ({len(misses)}): " + "; ".join(misses)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
