"""Hardware benchmark: int8 DS-CNN-S (and other presets) measured in QEMU with the plain and the dsp
kernels, against the product's targets and the published MLPerf Tiny anchors.

    .venv/bin/python experiments/benchmarks/bench_hardware.py [--presets ds-cnn-s,cnn-s|all]
        [--boards mps2-an386,mps2-an500] [--variants plain,dsp] [--seed 0] [--tflite FILE ...]

Models: each preset built with random weights (``nas.models.build_model``), min/max-calibrated on
random MFCC-like features and quantized (``nas.quant``) to an int8 ``.tflite``; then trained and
third-party int8 ``.tflite`` files, because their weights set what random ones do not: the
requantization mode of each layer and how far per-channel scales spread. ``--tflite`` names them;
without it the trained DS-CNN-S models this machine's experiments left under ``results/`` are used
(``nas experiment real-speech-search`` or ``seed-frameworks`` on real speech make them).

Targets, per (preset, board, variant): instructions/MAC over the whole inference <= 1.3 (stretch
<= 1.0); flash <= weight + bias bytes + 12 KiB; total RAM (static + peak stack) <= 0.6 x the TFLM
arena (``hardware.arena.tflm_arena_bytes``); one uncached measurement (fresh cache directory:
code generation, firmware build including the board objects, QEMU, 3 checked inputs and a
per-op run) <= 2 s; a cached one <= 50 ms; outputs bit-exact with the reference.

The MLPerf Tiny anchors (GUIDE §4) are measured *cycles* on silicon; ours are emulated
*instructions*. The comparison prints both and an estimated cycle count (x the board's CPI, which
is itself an estimate), labelled as such: different units, not a like-for-like result.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

IPM_TARGET, IPM_STRETCH = 1.3, 1.0   # instructions per MAC, whole inference
FLASH_SLACK_BYTES = 12 * 1024        # flash target: weights + biases + this
RAM_FRACTION_OF_TFLM = 0.6           # RAM target: this x the TFLM arena
UNCACHED_S, CACHED_S = 2.0, 0.050
# GUIDE §4: MLPerf Tiny KWS (DS-CNN, the same network as our mlperf-tiny-ds-cnn / ds-cnn-s preset:
# 2,656,768 MACs), latency in ms on real boards: (board, core, clock Hz, {system: ms}).
MLPERF_ANCHORS = (
    ("NUCLEO-L4R5ZI", "cortex-m4", 120e6, {"TFLM reference": 181.9, "microTVM + CMSIS-NN": 99.8,
                                            "X-CUBE-AI": 75.1, "Plumerai": 71.7}),
    ("DISCO-F746NG", "cortex-m7", 216e6, {"Plumerai": 19.1}),
)


def trained_models() -> list[Path]:
    """The trained DS-CNN-S int8 files this machine's experiments wrote (first seed of each run)."""
    found = sorted(REPO.glob("results/*/final/ds-cnn-s-s0/export/model_int8.tflite"))
    found += sorted(REPO.glob("results/seed-frameworks-*/models/*/ds-cnn-s/export/model_int8.tflite"))
    return found


def file_label(path: Path) -> str:
    """A row name for a file: its run and model under results/ (trained), else the file name."""
    try:
        rel = path.resolve().relative_to(REPO / "results")
    except ValueError:
        return path.name
    parts = [p for p in rel.parts if p not in ("final", "models", "export", "model_int8.tflite")]
    return "trained " + "/".join(parts)


def int8_model(preset: str, seed: int) -> bytes:
    """The preset with random weights, PTQ-quantized to an int8 .tflite."""
    from hardware import write_tflite
    from nas.models import build_model
    from nas.quant import calibrate, float_graph, quantize_graph
    from search_spaces.presets import get_preset

    spec = get_preset(preset)
    fg = float_graph(spec, build_model(spec, seed).folded())
    frames, coeffs = spec.frontend.feature_shape
    rng = np.random.default_rng(seed)
    scale = np.concatenate([[40.0], np.full(coeffs - 1, 8.0)])  # MFCC-like: a large first coefficient
    x = (rng.normal(size=(32, frames, coeffs)) * scale + np.r_[-120.0, np.zeros(coeffs - 1)]).astype(np.float32)
    return write_tflite(quantize_graph(fg, calibrate(fg, x, clip_percent=0)))


@dataclass
class Row:
    preset: str
    board: str
    variant: str
    m: object            # hardware.evaluators.Measurement (uncached)
    uncached_s: float
    cached_s: float
    flash_limit: int
    ram_limit: float


def measure(data: bytes, board: str, variant: str) -> tuple[object, float, float]:
    """One measurement in a fresh cache directory (nothing reused), then the same one again (cached)."""
    from hardware.evaluators import EmulatorEvaluator

    before = os.environ.get("KWSNAS_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="kwsnas-bench-") as cache:
        os.environ["KWSNAS_CACHE_DIR"] = cache  # read by the measurement and the firmware caches
        try:
            ev = EmulatorEvaluator(variant=variant)
            t0 = time.perf_counter()
            m = ev.measure(data, board)
            uncached = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = ev.measure(data, board)
            cached = time.perf_counter() - t0 if again.cached else float("nan")
        finally:
            if before is None:
                os.environ.pop("KWSNAS_CACHE_DIR", None)
            else:
                os.environ["KWSNAS_CACHE_DIR"] = before
    return m, uncached, cached


def print_rows(rows: list[Row]) -> None:
    head = ("preset", "board", "variant", "instructions", "instr/MAC", "flash B", "limit B", "RAM B", "limit B",
            "uncached s", "cached ms", "output")
    table = [head]
    for r in rows:
        m = r.m
        if not m.ok and m.instructions is None:
            table.append((r.preset, r.board, r.variant, f"FAILED: {m.error}", *[""] * 8))
            continue
        macs = sum(o.macs for o in m.ops)
        table.append((r.preset, r.board, r.variant, f"{m.instructions:,}", f"{m.instructions / macs:.2f}",
                      f"{m.flash_bytes:,}", f"{r.flash_limit:,}", f"{m.ram_bytes:,}", f"{r.ram_limit:,.0f}",
                      f"{r.uncached_s:.2f}", f"{1e3 * r.cached_s:.1f}",
                      f"bit-exact x{m.outputs_checked}" if m.output_match else f"MISMATCH ({m.error})"))
    _print_table(table, right=set(range(3, 11)))


def _print_table(table: list[tuple], right: set[int]) -> None:
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())


def print_layers(preset: str, board: str, rows: list[Row]) -> None:
    """Per-layer instructions and instructions/MAC, one column pair per variant."""
    rows = [r for r in rows if r.preset == preset and r.board == board and r.m.ops and r.m.ops[0].count]
    if not rows:
        return
    head = ("op", "kind", "MACs", *[c for r in rows for c in (f"{r.variant} instr", f"{r.variant} /MAC")])
    table = [head]
    for k, op in enumerate(rows[0].m.ops):
        cells = []
        for r in rows:
            o = r.m.ops[k]
            cells += [f"{o.count:,}", f"{o.count / o.macs:.2f}" if o.macs else "-"]
        table.append((op.name, op.kind, f"{op.macs:,}", *cells))
    print(f"\nper layer, {preset} on {board} (each op's count includes ~30 instructions of counter hooks; "
          "a RESHAPE is an alias and shows just those):")
    _print_table(table, right=set(range(2, len(head))))


def print_anchors(rows: list[Row]) -> None:
    from hardware.boards import get_board

    ours = [r for r in rows if r.preset in ("ds-cnn-s", "mlperf-tiny-ds-cnn") and r.m.ok]
    if not ours:
        return
    print("\nMLPerf Tiny KWS anchors (GUIDE §4): measured CYCLES on silicon; ours are emulated INSTRUCTIONS "
          "(different units).")
    for board_name, core, clock, results in MLPERF_ANCHORS:
        macs = sum(o.macs for o in ours[0].m.ops)
        print(f"  {board_name} ({core} @ {clock / 1e6:g} MHz), {macs:,} MACs:")
        for system, ms in results.items():
            cycles = ms * 1e-3 * clock
            print(f"    {system:22s} {ms:6.1f} ms = {cycles / 1e6:6.2f} M cycles = {cycles / macs:5.2f} cycles/MAC")
        for r in ours:
            board = get_board(r.board)
            if board.core != core:
                continue
            n = r.m.instructions
            est = n * board.cpi
            print(f"    ours: {r.preset} {r.variant} on {r.board}: {n / 1e6:.2f} M instructions = "
                  f"{n / macs:.2f} instr/MAC; x CPI {board.cpi:g} (estimate) = {est / 1e6:.2f} M cycles "
                  f"~ {1e3 * est / clock:.1f} ms at {clock / 1e6:g} MHz (estimate, not measured)")


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        m, tag = r.m, f"[{r.preset} {r.board} {r.variant}]"
        if m.instructions is None:
            out.append(f"MISS  measurement {tag}: {m.error}")
            continue
        ipm = m.instructions / sum(o.macs for o in m.ops)
        checks = [
            (ipm <= IPM_TARGET, f"instructions/MAC <= {IPM_TARGET}", f"{ipm:.2f}"),
            (ipm <= IPM_STRETCH, f"instructions/MAC <= {IPM_STRETCH} (stretch)", f"{ipm:.2f}"),
            (m.flash_bytes <= r.flash_limit, "flash <= weights + biases + 12 KiB",
             f"{m.flash_bytes:,} vs {r.flash_limit:,} B"),
            (m.ram_bytes <= r.ram_limit, "RAM <= 0.6 x TFLM arena", f"{m.ram_bytes:,} vs {r.ram_limit:,.0f} B"),
            (r.uncached_s <= UNCACHED_S, f"uncached measurement <= {UNCACHED_S:g} s", f"{r.uncached_s:.2f} s"),
            (r.cached_s <= CACHED_S, f"cached measurement <= {1e3 * CACHED_S:g} ms", f"{1e3 * r.cached_s:.1f} ms"),
            (bool(m.output_match), "outputs bit-exact with the reference", f"{m.outputs_checked} inputs"),
        ]
        out += [f"{'PASS' if ok else 'MISS'}  {what} {tag}: {value}" for ok, what, value in checks]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="ds-cnn-s", help="comma-separated preset names, or 'all'")
    parser.add_argument("--boards", default="mps2-an386", help="comma-separated emulated boards")
    parser.add_argument("--variants", default="plain,dsp", help="kernel variants (dsp is skipped on cores without it)")
    parser.add_argument("--seed", type=int, default=0, help="random weights and calibration features")
    parser.add_argument("--tflite", action="append", default=None, metavar="FILE",
                        help="a trained or third-party int8 .tflite to measure as well (repeatable); default: "
                             "the trained DS-CNN-S models under results/")
    args = parser.parse_args()
    # jax (imported to build the models) warns on every fork; subprocess forks only to exec gcc,
    # QEMU and the TFLM probe at once, which is safe
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)

    from hardware import read_tflite
    from hardware.arena import tflm_arena_bytes
    from hardware.boards import get_board
    from hardware.emulator import have_qemu, qemu_version
    from hardware.firmware.build import have_toolchain, toolchain_version
    from hardware.inspect import live_bytes_by_position
    from search_spaces.presets import PRESET_NAMES

    if not (have_toolchain() and have_qemu()):
        print("needs arm-none-eabi-gcc and qemu-system-arm (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi "
              "qemu-system-arm)", file=sys.stderr)
        return 2
    presets = list(PRESET_NAMES) if args.presets == "all" else args.presets.split(",")
    boards = [get_board(b) for b in args.boards.split(",")]
    print(f"{toolchain_version()}; {qemu_version()}; {os.cpu_count()} CPUs")
    import hardware.codegen  # noqa: F401  (imports are not part of a measurement's wall time)
    import hardware.wire  # noqa: F401

    files = [Path(f) for f in args.tflite] if args.tflite is not None else trained_models()
    if args.tflite is None:
        print(f"trained models found under results/: {len(files)}" + ("" if files else
              " (run `nas experiment real-speech-search experiments/search/real-speech.toml`, or pass --tflite)"))
    models = [(p, None) for p in presets] + [(file_label(f), f) for f in files]
    rows: list[Row] = []
    for preset, path in models:
        t0 = time.perf_counter()
        try:
            data = int8_model(preset, args.seed) if path is None else path.read_bytes()
            g = read_tflite(data)
        except (OSError, ValueError) as e:  # an unreadable or unsupported file: say so, measure the rest
            print(f"\n{preset}: skipped ({e})")
            continue
        try:
            tflm = tflm_arena_bytes(data)
        except Exception as e:  # tflite-micro missing or refusing the model
            print(f"{preset}: TFLM arena unavailable ({e}); RAM target skipped")
            tflm = float("inf")
        flash_limit = g.weight_bytes() + g.bias_bytes() + FLASH_SLACK_BYTES
        print(f"\n{preset}: {g.macs():,} MACs, weights {g.weight_bytes():,} B + biases {g.bias_bytes():,} B, "
              f"TFLM arena {tflm:,} B (model built in {time.perf_counter() - t0:.1f} s)")
        for board in boards:
            for variant in args.variants.split(","):
                if variant == "dsp" and not board.dsp:
                    continue
                m, unc, cac = measure(data, board.name, variant)
                rows.append(Row(preset, board.name, variant, m, unc, cac, flash_limit, RAM_FRACTION_OF_TFLM * tflm))
        print_rows([r for r in rows if r.preset == preset])
        peak = max(live_bytes_by_position(g), default=0)
        for r in (r for r in rows if r.preset == preset and r.m.ram_arena_bytes is not None):
            print(f"  arena {r.board} {r.variant}: {r.m.ram_arena_bytes:,} B = {r.m.ram_arena_bytes / peak:.2f}x the "
                  f"largest set of tensors live at once ({peak:,} B, no in-place), {r.m.ram_arena_bytes / tflm:.2f}x "
                  f"TFLM's arena")
        for board in boards:
            print_layers(preset, board.name, rows)
    print_anchors(rows)
    print()
    for line in verdicts(rows):
        print(line)
    return 0 if all(r.m.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
