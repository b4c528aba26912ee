"""Export a search winner: pick a trial, optionally retrain it longer, quantize, re-measure on the board,
and write everything a user takes home with a `REPORT.md`.

    trial = pick_trial(study, cfg, pick="max accuracy where flash_kb<=64 and ram_kb<=32")
    report = export_trial(study, cfg, trial, "out/winner", retrain_epochs=30)

Picks are a tiny language, parsed (never evaluated as code)::

    (max|min) FIELD [where FIELD OP NUMBER (and FIELD OP NUMBER)*]      OP: <= < >= > ==

FIELD: accuracy (int8 validation), float_accuracy, flash_kb, ram_kb, flash_bytes, ram_bytes, latency_ms,
macs, params, trial.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, TextIO

from optuna.trial import FrozenTrial

from hardware import read_tflite
from hardware.boards import get_board
from hardware.codegen import generate
from hardware.firmware.build import BuildError, ToolchainMissing, build_firmware
from hardware.firmware.project import write_project
from nas.export.quantize import quantize_checkpoint
from nas.progress import epoch_lines
from nas.study.candidate import hardware_figures, load_data, make_evaluator
from nas.study.config import SearchConfig
from nas.study.pareto import usable_trials
from nas.train import TrainConfig, load_checkpoint, train
from search_spaces.spec import ArchSpec

FIELDS = {
    "accuracy": lambda a: a.get("int8_val_accuracy"),
    "float_accuracy": lambda a: a.get("float_val_accuracy"),
    "flash_kb": lambda a: None if a.get("flash_bytes") is None else a["flash_bytes"] / 1024,
    "ram_kb": lambda a: None if a.get("ram_bytes") is None else a["ram_bytes"] / 1024,
    "flash_bytes": lambda a: a.get("flash_bytes"),
    "ram_bytes": lambda a: a.get("ram_bytes"),
    "latency_ms": lambda a: a.get("latency_ms"),
    "macs": lambda a: a.get("macs"),
    "params": lambda a: a.get("params"),
}
_OPS = {"<=": lambda x, y: x <= y, "<": lambda x, y: x < y, ">=": lambda x, y: x >= y, ">": lambda x, y: x > y,
        "==": lambda x, y: x == y}
_COND = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|==|<|>)\s*([0-9.eE+-]+)\s*$")
HARDWARE_MATCH = ("flash_bytes", "ram_bytes", "instructions", "cycles")


class ExportError(ValueError):
    """A pick that matches nothing, a trial that cannot be exported, or a re-measurement that differs."""


def parse_pick(text: str) -> tuple[str, str, list[tuple[str, str, float]]]:
    """``(direction, field, conditions)`` of a pick expression; ExportError on anything else."""
    m = re.match(r"^\s*(max|min)\s+([a-z_]+)\s*(?:where\s+(.+))?$", text.strip())
    if not m:
        raise ExportError(f"pick {text!r}: expected '(max|min) FIELD [where FIELD OP NUMBER and ...]'")
    direction, fld, rest = m.group(1), m.group(2), m.group(3)
    conds = []
    for part in re.split(r"\s+and\s+", rest) if rest else []:
        c = _COND.match(part)
        if not c:
            raise ExportError(f"pick condition {part!r}: expected FIELD OP NUMBER, e.g. flash_kb<=64")
        conds.append((c.group(1), c.group(2), float(c.group(3))))
    for name in [fld] + [c[0] for c in conds]:
        if name not in FIELDS:
            raise ExportError(f"pick field {name!r} unknown: use {', '.join(FIELDS)}")
    return direction, fld, conds


def pick_trial(study, cfg: SearchConfig, trial: int | None = None, pick: str | None = None) -> FrozenTrial:
    """Trial number ``trial``, or the best usable trial by ``pick``."""
    if (trial is None) == (pick is None):
        raise ExportError("give exactly one of a trial number or a pick expression")
    if trial is not None:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not found:
            raise ExportError(f"study {cfg.name!r} has no trial {trial}")
        if not found[0].user_attrs.get("trained"):
            raise ExportError(f"trial {trial} was never trained (over a budget, or failed): nothing to export")
        return found[0]
    direction, fld, conds = parse_pick(pick)
    ok = []
    for t in usable_trials(study, cfg):
        values = {name: FIELDS[name](t.user_attrs) for name in FIELDS}
        if values[fld] is None or any(values[n] is None or not _OPS[op](values[n], v) for n, op, v in conds):
            continue
        ok.append((values[fld], t))
    if not ok:
        raise ExportError(f"no trained trial within the budgets satisfies {pick!r}")
    best = max(ok, key=lambda p: p[0]) if direction == "max" else min(ok, key=lambda p: p[0])
    return best[1]


def export_trial(study, cfg: SearchConfig, trial: FrozenTrial, out_dir: Path | str, *, retrain_epochs: int | None = None,
                 evaluator=None, data=None, epoch_stream: TextIO | None = None) -> dict[str, Any]:
    """Write the winner's files into ``out_dir`` and return the report (also ``report.json``); a retraining
    prints a line per epoch (to ``epoch_stream``, default stdout)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = dict(trial.user_attrs)
    spec = ArchSpec.from_dict(attrs["spec"])
    if data is None:
        data = load_data(cfg)
    ckpt = out / "checkpoint"
    if retrain_epochs:
        train(spec, data, TrainConfig(epochs=retrain_epochs, seed=cfg.seed, trial=trial.number), out_dir=ckpt,
              after_eval=epoch_lines(f"retraining trial {trial.number}", retrain_epochs, epoch_stream))
    else:
        src = Path(attrs["checkpoint"])
        if not src.is_dir():
            raise ExportError(f"trial {trial.number}: its checkpoint {src} is gone (retrain with --retrain-epochs)")
        shutil.rmtree(ckpt, ignore_errors=True)
        shutil.copytree(src, ckpt)
    load_checkpoint(ckpt, spec)  # the checkpoint is the trial's architecture
    q = quantize_checkpoint(ckpt, out, data, seed=cfg.seed)
    if evaluator is None:
        evaluator = make_evaluator(cfg, data)
    m = evaluator.measure((out / "model_int8.tflite").read_bytes(), cfg.board)
    fig = hardware_figures(m)
    differences = {k: (attrs.get(k), fig.get(k)) for k in HARDWARE_MATCH if attrs.get(k) != fig.get(k)}
    if fig.get("output_match") is False:
        raise ExportError(f"the board's outputs for {out / 'model_int8.tflite'} differ from the golden reference")
    if differences and not retrain_epochs:
        raise ExportError(f"re-measured figures differ from trial {trial.number}'s: {differences}")
    (out / "measurement.json").write_text(json.dumps(m.to_dict(), indent=2, default=str) + "\n")
    firmware = write_firmware_project((out / "model_int8.tflite").read_bytes(), cfg.board, out / "firmware",
                                      m.variant or None)
    report = {
        "study": cfg.name, "trial": trial.number, "spec_name": spec.name, "spec_digest": spec.digest(),
        "board": cfg.board, "retrain_epochs": retrain_epochs, "search_figures": attrs, "quantize": q.to_dict(),
        "measurement": fig, "hardware_differences_after_retraining": differences, "firmware": firmware,
        "time_s": time.perf_counter() - t0,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "REPORT.md").write_text(render_report(report, m) + "\n")
    return report


def write_firmware_project(model_bytes: bytes, board: str, out_dir: Path, variant: str | None) -> str:
    """The board's buildable C project (+ ELF when the toolchain is here); returns what was written."""
    b = get_board(board)
    gm = generate(read_tflite(model_bytes), variant=variant or ("dsp" if b.dsp else "plain"), prefix="kws")
    image = None
    try:
        image = build_firmware(gm, b, out_dir)
    except ToolchainMissing:
        pass
    except BuildError as e:  # the model was measured on this board, so this is unexpected: say it, keep going
        return f"project written, ELF not built: {e}"
    write_project(gm, b, out_dir, image=image, model_bytes=model_bytes, model_name="model_int8.tflite")
    return f"{out_dir}: C project" + (" + fw.elf" if image else " (no toolchain here: build with make)")


def render_report(r: dict[str, Any], m) -> str:
    q, f = r["quantize"], r["measurement"]

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f} %"

    lat_how = ("measured on the board (cycles / clock)" if f["latency_kind"] == "measured" else
               "estimated: executed instructions × the board's CPI / clock (emulator), or the analytic model")
    lines = [
        f"# {r['spec_name']} — study `{r['study']}`, trial {r['trial']}",
        "",
        f"Architecture digest `{r['spec_digest']}` (spec.json). Board `{r['board']}` "
        f"({m.evaluator} evaluator{', every figure estimated' if m.estimated else ''}).",
        "",
        "| figure | value | how |",
        "|---|---|---|",
        f"| int8 accuracy (validation / test) | {pct(q['int8_val_accuracy'])} / {pct(q['int8_test_accuracy'])} | "
        "golden int8 reference, bit-exact with TFLM |",
        f"| float accuracy (validation / test) | {pct(q['float_val_accuracy'])} / {pct(q['float_test_accuracy'])} | "
        "the trained float model |",
        f"| flash | {f['flash_bytes']:,} B | firmware ELF sections (model data + kernels + runtime + startup) |",
        f"| RAM | {f['ram_bytes']:,} B | static RAM + peak stack (stack painting) |",
        f"| {f['counter'] or 'count'} | {f.get('instructions') or f.get('cycles') or 'n/a'} | "
        f"{'executed instructions under QEMU -icount' if f['counter'] == 'instructions' else 'DWT cycle counter'} |",
        f"| latency | {f['latency_ms']:.2f} ms | {lat_how} |",
        f"| bit-exact on the board | {f['output_match']} | device outputs vs the golden reference |",
        f"| int8 / float32 .tflite | {q['int8_tflite_bytes']:,} / {q['float32_tflite_bytes']:,} B | "
        f"{q['size_reduction_percent']:.1f} % smaller |",
        f"| TFLM arena | {q['arena_bytes']} B | TFLM's host interpreter, smallest arena that runs |",
        "",
        f"Retrained for {r['retrain_epochs']} epochs before export." if r["retrain_epochs"] else
        "Exported with the search trial's own weights (no retraining).",
        "",
        "Files: `model_int8.tflite`, `model_float32.tflite`, `model_data.c/.h` (for TFLM on your board), "
        "`firmware/` (the generated C and the measurement firmware for this board: `make -C firmware`, see its "
        "README.txt), `spec.json`, `checkpoint/`, `quantize.json`, `measurement.json`, `report.json`.",
    ]
    return "\n".join(lines)
