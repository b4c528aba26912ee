"""``nas boards``, ``nas measure MODEL.tflite`` and ``nas firmware MODEL.tflite --out DIR``: what a
model costs on a board, and a firmware project to flash it yourself.

The work is :mod:`hardware.measure` (evaluators), :mod:`hardware.codegen` and
:mod:`hardware.firmware`; this module picks the evaluator, turns a :class:`Measurement` into rows
(:func:`layer_rows`) and renders them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from hardware.evaluators import EVALUATORS
from nas.cli.errors import UserError

log = logging.getLogger(__name__)



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boards", help="the boards a model can be measured on: cores, budgets, clocks, links")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(handler=_boards)

    p = sub.add_parser("measure", help="flash, RAM, instructions/cycles and per-layer cost of a .tflite on a board")
    p.add_argument("model", type=Path, help="an int8 .tflite file")
    _board_args(p, required=False)
    p.add_argument("--port", metavar="URL", help="a serial port or pyserial URL (/dev/ttyACM0, socket://host:port); "
                   "implies --evaluator serial")
    p.add_argument("--evaluator", choices=EVALUATORS, help="default: emulator for QEMU boards (analytic when "
                   "arm-none-eabi-gcc or qemu-system-arm is missing), serial for real boards")
    p.add_argument("--flash", metavar="TOOL", help="flash the firmware first (serial boards): 'pyocd', "
                   "'pyocd:TARGET', or a command with {elf}/{bin}/{hex}, e.g. \"st-flash --reset write {bin} "
                   "0x08000000\" (run without a shell)")
    p.add_argument("--probe", metavar="ID", help="pyOCD: part of the debug probe's unique ID")
    p.add_argument("--no-cache", action="store_true", help="measure again even if a cached result exists")
    p.add_argument("--debug", action="store_true", help="a debug build that keeps every intermediate tensor and "
                   "compares them all with the reference (finds the first op that goes wrong; its flash and RAM "
                   "are the debug build's, not the model's)")
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    p.set_defaults(handler=_measure)

    p = sub.add_parser("firmware", help="a buildable C project (sources, Makefile, ELF) to flash a model yourself")
    p.add_argument("model", type=Path, help="an int8 .tflite file")
    _board_args(p, required=True)
    p.add_argument("--out", type=Path, required=True, help="the project directory (created)")
    p.set_defaults(handler=_firmware)


def _board_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--board", required=required, help="a board from `nas boards`" + ("" if required else
                   " (default: the table's default)"))
    p.add_argument("--variant", choices=("plain", "dsp"), help="kernels: plain C, or SMLAD/SXTB16 (default: dsp "
                   "where the core has the DSP extension)")
    p.add_argument("--flash-kib", type=int, metavar="N", help="hold the board to a smaller flash budget")
    p.add_argument("--ram-kib", type=int, metavar="N", help="hold the board to a smaller RAM budget")


# ---- shared ----

def _kib(n: int) -> str:
    return f"{n // 1024 ** 2:,} MiB" if n % 1024 ** 2 == 0 else f"{n / 1024:,.0f} KiB" if n % 1024 == 0 else f"{n:,} B"


def _resolve_board(args: argparse.Namespace):
    """(board, variant) from --board/--variant/--flash-kib/--ram-kib; user mistakes as UserError."""
    from hardware.boards import BoardError, get_board
    if any(n is not None and n <= 0 for n in (args.flash_kib, args.ram_kib)):
        raise UserError("--flash-kib and --ram-kib must be positive")
    try:
        board = get_board(args.board)
        if args.flash_kib is not None or args.ram_kib is not None:
            board = board.with_budget(None if args.flash_kib is None else 1024 * args.flash_kib,
                                      None if args.ram_kib is None else 1024 * args.ram_kib)
    except BoardError as e:
        raise UserError(str(e)) from None
    variant = args.variant or ("dsp" if board.dsp else "plain")
    if variant == "dsp" and not board.dsp:
        raise UserError(f"board {board.name} ({board.core}) has no DSP extension: use --variant plain")
    return board, variant


def _load_int8(path: Path):
    """(bytes, graph) of an int8 .tflite; anything else is a UserError naming the file."""
    from hardware.tflite_io import TfliteError, read_tflite
    from nas.cli.inspect import read_model_bytes

    data = read_model_bytes(path)
    try:
        graph = read_tflite(data, allow_float=True)  # to say what to do with a float model
    except (TfliteError, TypeError) as e:
        raise UserError(f"{path}: {e}") from None
    if graph.is_float:
        raise UserError(f"{path}: a float32 model; boards run int8 models (quantize it first: nas quantize)")
    return data, graph


# ---- nas boards ----

def board_row(board, default: bool = False) -> dict[str, Any]:
    """One board as plain data (what ``nas boards --json`` prints)."""
    return {
        "name": board.name, "description": board.description, "core": board.core, "dsp": board.dsp,
        "fpu": board.fpu, "flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes,
        "clock_hz": board.clock_hz, "counter": board.counter, "link": board.link_kind,
        "qemu_machine": board.qemu_machine, "serial_url": board.serial_url, "pyocd_target": board.pyocd_target,
        "baud": None if board.emulated else board.baud, "cpi": board.cpi, "cpi_source": board.cpi_source,
        "default": default,
    }


def _boards(args: argparse.Namespace) -> int:
    from hardware.boards import all_boards, default_board

    rows = [board_row(b, b.name == default_board().name) for b in all_boards()]
    print(json.dumps(rows, indent=2) if args.json else render_boards(rows))
    return 0


def render_boards(rows: list[dict[str, Any]]) -> str:
    table = [("board", "core", "DSP", "FPU", "flash", "RAM", "clock", "reached by", "counts", "CPI")]
    for r in rows:
        link = f"QEMU -machine {r['qemu_machine']}" if r["link"] == "qemu" else f"serial {r['serial_url']} @{r['baud']}"
        table.append((r["name"] + (" *" if r["default"] else ""), r["core"], "yes" if r["dsp"] else "no",
                      r["fpu"] if r["fpu"] != "none" else "-", _kib(r["flash_bytes"]), _kib(r["ram_bytes"]),
                      f"{r['clock_hz'] / 1e6:g} MHz", link, r["counter"], f"{r['cpi']:.2f}"))
    lines = _columns(table, right={4, 5, 6, 9})
    lines += ["", "* default board. flash/RAM: the budgets the linker enforces. counts: instructions (QEMU, with "
              "latency estimated as instructions x CPI / clock) or cycles (DWT, latency measured).", "CPI sources:"]
    lines += [f"  {r['name']}: {r['cpi_source']}" for r in rows]
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            .rstrip() for r in rows]


# ---- nas measure ----

def make_evaluator(kind: str | None, board, *, port: str | None = None, variant: str | None = None,
                   cache: bool = True, flash: str | None = None, probe: str | None = None, debug: bool = False):
    """The evaluator for ``--evaluator``/``--port`` on ``board`` (see ``nas measure --help`` for defaults)."""
    from hardware.evaluators import EvaluatorChoiceError, get_evaluator
    try:
        return get_evaluator(kind, board, port=port, variant=variant, cache=cache, flash=flash, probe=probe,
                             debug=debug)
    except EvaluatorChoiceError as e:
        raise UserError(str(e)) from e


def count_of(m) -> int | None:
    """The Measurement's whole-inference count in its own unit (instructions or cycles)."""
    return m.cycles if m.counter == "cycles" else m.instructions


def layer_rows(m) -> list[dict[str, Any]]:
    """Per-op rows: name, kind, MACs, count (the Measurement's unit), count per MAC, % of the total."""
    total = count_of(m)
    return [{"name": o.name, "kind": o.kind, "macs": o.macs, "count": o.count,
             "count_per_mac": o.count / o.macs if o.count is not None and o.macs else None,
             "percent": 100.0 * o.count / total if o.count is not None and total else None} for o in m.ops]


def measurement_dict(m, model: str) -> dict[str, Any]:
    macs = sum(o.macs for o in m.ops)
    count = count_of(m)
    return {"model_file": model, **m.to_dict(), "macs": macs, "count": count,
            "count_per_mac": count / macs if count and macs else None, "layers": layer_rows(m)}


def _measure(args: argparse.Namespace) -> int:
    data, _ = _load_int8(args.model)
    board, variant = _resolve_board(args)
    m = make_evaluator(args.evaluator, board, port=args.port, variant=variant, cache=not args.no_cache,
                       flash=args.flash, probe=args.probe, debug=args.debug).measure(
        data, board)
    if args.json:
        print(json.dumps(measurement_dict(m, str(args.model)), indent=2))
    elif m.ok or count_of(m) is not None or m.flash_bytes is not None:
        print(render_measurement(m, board, str(args.model)))
    if m.ok:
        return 0
    if m.feasible is False:
        print(f"error: {args.model} does not fit on {board.name} (flash {_kib(board.flash_bytes)}, RAM "
              f"{_kib(board.ram_bytes)}): {m.error.removeprefix('does not fit: ')}", file=sys.stderr)
    else:
        print(f"error: measuring {args.model} on {board.name} ({m.evaluator}) failed: {m.error}",
              file=__import__("sys").stderr)
    return 1


def render_measurement(m, board, name: str) -> str:
    count = count_of(m)
    macs = sum(o.macs for o in m.ops)
    est = "~" if m.estimated else ""  # analytic: every figure is an estimate
    lines = [f"model        {name} (digest {m.model_digest or '?'})",
             f"board        {board.name}: {board.description}",
             f"evaluator    {m.evaluator}, kernels {m.variant or '?'}"
             + (" (no toolchain, no board: every figure is an estimate from the graph)" if m.estimated else "")]
    if m.flash_bytes is not None:
        split = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in m.flash_split.items())
        lines.append(f"flash        {est}{m.flash_bytes:,} B of {_kib(board.flash_bytes)} "
                     f"({100 * m.flash_bytes / board.flash_bytes:.1f} %): {split}")
    if m.ram_bytes is not None:
        other = (m.ram_static_bytes or 0) - (m.ram_arena_bytes or 0) - (m.ram_harness_bytes or 0)
        parts = [f"arena {m.ram_arena_bytes:,}", f"harness {m.ram_harness_bytes:,}"] + (
            [f"other {other:,}"] if other else [])
        lines.append(f"RAM          {est}{m.ram_bytes:,} B of {_kib(board.ram_bytes)} "
                     f"({100 * m.ram_bytes / board.ram_bytes:.1f} %): static {m.ram_static_bytes:,} "
                     f"({', '.join(parts)}) + peak stack {m.ram_stack_bytes:,}")
    if count is not None:
        what = ("estimated" if m.estimated else "executed, counted by QEMU -icount; not cycles"
                if m.counter == "instructions" else "DWT cycle counter, median of runs")
        per = f" = {count / macs:.2f} per MAC" if macs else ""
        lines.append(f"{m.counter:<12s} {est}{count:,}{per} ({what})")
    if m.latency_ms is not None:
        lines.append(f"latency_ms   {m.latency_ms:.2f} ms measured (cycles / {board.clock_hz / 1e6:g} MHz)")
    elif m.latency_ms_est is not None:
        lines.append(f"latency_est  {m.latency_ms_est:.2f} ms, estimate: instructions x CPI {board.cpi:g} / "
                     f"{board.clock_hz / 1e6:g} MHz (CPI not measured: see `nas boards`)")
    if m.output_match is None:
        lines.append("output       not checked" + (" (analytic: nothing ran)" if m.estimated else ""))
    else:
        verdict = "bit-exact with the reference" if m.output_match else "DIFFERS from the reference"
        inner = f", and {m.tensors_checked} intermediate tensor(s)" if m.tensors_checked else ""
        real = f"{m.real_inputs_checked} real and " if m.real_inputs_checked else ""
        lines.append(f"output       {verdict} on {real}{m.outputs_checked - m.real_inputs_checked} seeded random "
                     f"input(s){inner}")
    versions = [v for v in (m.toolchain_version, m.firmware_version and f"firmware {m.firmware_version}",
                            m.qemu_version) if v]
    if versions:
        lines.append(f"versions     {'; '.join(versions)}")
    lines.append(f"wall time    {m.wall_s:.2f} s, cached {'yes' if m.cached else 'no'}")
    rows = layer_rows(m)
    if rows and any(r["count"] is not None for r in rows):
        lines += ["", *render_layers(rows, m.counter, count)]
    return "\n".join(lines)


def render_layers(rows: list[dict[str, Any]], counter: str, total: int | None) -> list[str]:
    """The per-layer table, with a sum row and the slowest op named."""
    def num(x, fmt):
        return "-" if x is None else format(x, fmt)

    table = [("op", "kind", "MACs", counter, f"{counter[:5]}/MAC", "% of total")]
    for r in rows:
        table.append((r["name"], r["kind"], f"{r['macs']:,}", num(r["count"], ","), num(r["count_per_mac"], ".2f"),
                      num(r["percent"], ".1f")))
    counted = [r for r in rows if r["count"] is not None]
    s, macs = sum(r["count"] for r in counted), sum(r["macs"] for r in rows)
    table.append(("sum of ops", "", f"{macs:,}", f"{s:,}", num(s / macs if macs else None, ".2f"),
                  num(100 * s / total if total else None, ".1f")))
    lines = _columns(table, right={2, 3, 4, 5})
    if total and abs(s - total) > len(rows) and len(counted) == len(rows):  # not per-op rounding
        hooks = (s - total) / len(rows)
        lines.append(f"per-op counts come from one extra run with counter hooks: ~{hooks:.0f} {counter} of hook "
                     "overhead per op" if s > total else
                     f"the other {total - s:,} {counter} are outside the ops (the call, staging the input)")
    slow = max(counted, key=lambda r: r["count"])
    lines.append(f"slowest op: {slow['name']} ({slow['kind']}), " + (
        f"{slow['percent']:.1f} % of the total" if slow["percent"] is not None else f"{slow['count']:,} {counter}"))
    return lines


# ---- nas firmware ----

def _firmware(args: argparse.Namespace) -> int:
    from hardware.codegen import generate
    from hardware.firmware.build import BuildError, DoesNotFit, ToolchainMissing, build_firmware
    from hardware.firmware.project import write_project
    data, graph = _load_int8(args.model)
    board, variant = _resolve_board(args)
    try:
        gm = generate(graph, variant=variant, prefix="kws")
    except Exception as e:  # the generator's refusals (unsupported op, ...) name the cause
        raise UserError(f"{args.model}: {e}") from None
    image = None
    try:
        image = build_firmware(gm, board, args.out)
    except DoesNotFit as e:
        print(f"error: {args.model} does not fit on {board.name} (flash {_kib(board.flash_bytes)}, RAM "
              f"{_kib(board.ram_bytes)}): {str(e).removeprefix('does not fit: ')}", file=sys.stderr)
        return 1
    except ToolchainMissing as e:
        log.warning("%s: the project is written but not built (run make where the toolchain is)", e)
    except BuildError as e:
        print(f"error: building the firmware for {args.model} on {board.name} failed: {e}", file=sys.stderr)
        return 1
    out = write_project(gm, board, args.out, image=image, model_bytes=data, model_name=args.model.name)
    print(f"wrote {out}: gen/ ({len(gm.files)} files), fw/, link.ld, Makefile, README.txt, {args.model.name}"
          + (", fw.elf" if image else ""))
    if image is not None:
        split = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in image.flash_split.items())
        print(f"fw.elf       {board.name}, kernels {variant}: flash {image.flash_bytes:,} B ({split}); "
              f"static RAM {image.static_ram_bytes:,} B + {image.stack_reserved_bytes:,} B stack reserved")
    how = "run it in QEMU or measure it" if board.emulated else "flash it and measure it"
    print(f"rebuild with `make -C {out}`; how to {how}: {out / 'README.txt'}")
    return 0
