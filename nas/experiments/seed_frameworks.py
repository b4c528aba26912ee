"""The seed survey's framework comparison (Garai & Samui, "Exploring TinyML Frameworks for Small-Footprint
Keyword Spotting", Table IV), reproduced with this pipeline: compute rows, then render.

    cfg = load_seed_config("experiments/seed/seed-frameworks.toml", data="default")
    result = run_seed_frameworks(cfg, out_dir)      # trains, quantizes, measures; resumes from out_dir
    write_outputs(result, out_dir)                  # table.md, table.json, plots

Every row is one preset under one label protocol (the seed's 10 keywords, or the standard 12 classes):
parameters and MACs (from the spec), float32 and int8 ``.tflite`` bytes and the size reduction, float and
int8 test accuracy (int8 from the golden reference, bit-exact with TFLM), the TFLM arena, and on each
board our measured flash, RAM and instruction count with the latency estimated at the board's clock.
Third-party int8 models (``references``) get the same columns: evaluated on the same data with the
front end they were trained with, measured on the same boards.

Each finished row is written to ``rows/<protocol>/<preset>.json`` at once, so a killed run resumes
where it stopped, and a changed setting (epochs, seed, data) is a different row, not a stale one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.arena import tflm_arena_bytes
from hardware.boards import all_boards, get_board
from hardware.evaluators import EmulatorEvaluator
from hardware.inspect import inspect_tflite
from hardware.tools import version_line
from nas.config_files import build, read_settings, tuples
from nas.data.label_sets import get_protocol
from nas.export.evaluate_tflite import evaluate_tflite
from nas.export.quantize import quantize_checkpoint
from nas.plotting import pyplot, save_png
from nas.progress import LineLog
from nas.train import TrainConfig, prepare_train_data, train
from search_spaces.estimate import estimate
from search_spaces.presets import get_preset

log = logging.getLogger(__name__)

SEED_PRESETS = ("dnn-s", "dnn-l", "cnn-s", "cnn-l", "ds-cnn-s", "ds-cnn-l", "micronet-kws-s", "micronet-kws-l",
                "ei-conv1d")
SEED_SIZE_REDUCTION_PCT = 69.0  # the seed's headline: int8 TFLite about 69 % smaller than float32


@dataclass(frozen=True)
class SeedConfig:
    """What one run of the experiment uses (stored with its results)."""

    data: str = "default"
    split_rule: str | None = None
    noise: str | None = None
    presets: tuple[str, ...] = SEED_PRESETS
    protocols: tuple[str, ...] = ("10", "12")
    boards: tuple[str, ...] = ("mps2-an386", "mps2-an500")  # emulated Cortex-M4 and Cortex-M7
    epochs: int = 30  # the budget: every model trains this many epochs (its schedule is sized by it)
    time_s: float | None = None  # an optional wall-clock cap per model (a safety net; off by default)
    seed: int = 0
    calibration_clips: int = 300
    references: tuple[str, ...] = ()  # third-party int8 .tflite files, "PATH" or "PATH:FRONTEND"

    def __post_init__(self) -> None:
        for name in self.presets:
            get_preset(name)  # raises naming the known presets
        for board in self.boards:
            get_board(board)

        for protocol in self.protocols:  # '10' (the seed's keywords), '12' (standard) or a word list
            get_protocol(protocol)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ValueError(f"epochs must be a positive integer (the training budget), got {self.epochs!r}")

    def row_key(self, protocol: str, preset: str) -> str:
        """A digest of everything a row depends on: a changed setting is recomputed, not reused."""
        what = [self.data, self.split_rule, self.noise, protocol, get_preset(preset).digest(), self.epochs,
                self.time_s, self.seed, self.calibration_clips, list(self.boards)]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_seed_config(path: Path | str | None = None, **overrides: Any) -> SeedConfig:
    """Defaults, then the TOML file (if any), then non-None ``overrides``."""
    d = tuples(read_settings(path, overrides), ("presets", "protocols", "boards", "references"))
    return build(SeedConfig, d, path)


@dataclass
class SeedResult:
    config: SeedConfig
    rows: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0


def _versions() -> dict[str, str]:
    import importlib.metadata as md


    out = {}
    for pkg in ("kwsnas", "jax", "flax", "optax", "ai-edge-litert", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        out[tool] = version_line(shutil.which(tool)) or "not installed"
    return out


def _board_columns(m: Any, board: Any) -> dict[str, Any]:
    prefix = board.name
    return {
        f"{prefix}.ok": m.ok, f"{prefix}.fits": m.feasible is not False,
        f"{prefix}.flash_bytes": m.flash_bytes, f"{prefix}.ram_bytes": m.ram_bytes,
        f"{prefix}.counter": m.counter, f"{prefix}.count": m.cycles if m.counter == "cycles" else m.instructions,
        f"{prefix}.latency_ms": m.latency_ms if m.latency_ms is not None else m.latency_ms_est,
        f"{prefix}.latency_kind": "measured" if m.latency_ms is not None else "estimated",
        f"{prefix}.output_match": m.output_match, f"{prefix}.error": m.error,
    }


def _measure_all(model: bytes, cfg: SeedConfig, evaluator: Any) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for name in cfg.boards:
        board = get_board(name)
        cols.update(_board_columns(evaluator.measure(model, board), board))
    return cols


def _preset_row(cfg: SeedConfig, protocol: str, preset: str, data: Any, evaluator: Any, out: Path) -> dict[str, Any]:
    spec = get_preset(preset).with_classes(data.num_classes)
    est = estimate(spec)
    folder = out / "models" / protocol / preset
    t0 = time.perf_counter()
    result = train(spec, data, TrainConfig(epochs=cfg.epochs, time_budget_s=cfg.time_s, seed=cfg.seed),
                   out_dir=folder / "checkpoint")
    train_s = time.perf_counter() - t0
    q = quantize_checkpoint(folder / "checkpoint", folder / "export", data, calibration_clips=cfg.calibration_clips,
                            seed=cfg.seed)
    int8 = (folder / "export" / "model_int8.tflite").read_bytes()
    return {
        "model": preset, "kind": "preset", "family": spec.family, "protocol": protocol,
        "classes": data.num_classes, "params": est.params, "macs": est.macs,
        "float32_tflite_bytes": q.float32_tflite_bytes, "int8_tflite_bytes": q.int8_tflite_bytes,
        "size_reduction_pct": q.size_reduction_percent, "float_test_accuracy": q.float_test_accuracy,
        "int8_test_accuracy": q.int8_test_accuracy, "float_val_accuracy": q.float_val_accuracy,
        "int8_val_accuracy": q.int8_val_accuracy, "arena_bytes": q.arena_bytes, "epochs": round(result.epochs, 2),
        "train_s": round(train_s, 1), "tflite": str(folder / "export" / "model_int8.tflite"),
        **_measure_all(int8, cfg, evaluator),
    }


def _reference_row(cfg: SeedConfig, protocol: str, ref: str, evaluator: Any) -> dict[str, Any]:
    """A third-party int8 model: its accuracy on our test split, with the front end it was trained with."""
    path, frontend = (ref, None) if Path(ref).is_file() else ref.rpartition(":")[::2]
    model = Path(path).read_bytes()
    ev = evaluate_tflite(model, cfg.data, frontend=frontend or None, rule=cfg.split_rule, seed=cfg.seed)
    info = inspect_tflite(model)
    acc = ev.keywords_accuracy if protocol == "10" else ev.report.accuracy
    return {
        "model": Path(path).name, "kind": "reference", "family": "third-party", "protocol": protocol,
        "classes": len(ev.model_labels), "params": info.param_count, "macs": info.total_macs,
        "float32_tflite_bytes": None, "int8_tflite_bytes": len(model), "size_reduction_pct": None,
        "float_test_accuracy": None, "int8_test_accuracy": None if math.isnan(acc) else acc,
        "arena_bytes": tflm_arena_bytes(model),
        "accuracy_note": ("keyword clips only, predicted among the model's own classes" if protocol == "10" else
                          f"model classes {len(ev.model_labels)}; front end {ev.frontend.name}"),
        "tflite": str(path), **_measure_all(model, cfg, evaluator),
    }


def run_seed_frameworks(cfg: SeedConfig, out_dir: Path, *, progress=None) -> SeedResult:
    """Every row of the table (cached per row under ``out_dir/rows``)."""
    t0 = time.perf_counter()
    evaluator = EmulatorEvaluator()
    result = SeedResult(cfg, versions=_versions())
    names = [*cfg.presets, *cfg.references]
    lines, done = LineLog(len(cfg.protocols) * len(names)), 0
    for protocol in cfg.protocols:
        data = None
        for name in names:
            done += 1
            is_ref = name in cfg.references
            key = cfg.row_key(protocol, name) if not is_ref else hashlib.sha256(
                json.dumps([name, protocol, cfg.data, cfg.split_rule, list(cfg.boards)]).encode()).hexdigest()[:16]
            cached = out_dir / "rows" / protocol / f"{Path(name).name}.json"
            if cached.is_file():
                row = json.loads(cached.read_text())
                if row.get("row_key") == key:
                    result.rows.append(row)
                    lines.already += 1  # read back: no time spent
                    continue
            if is_ref and protocol not in ("10", "12"):
                log.info("%s: a Speech Commands model, not scored on the words %s", name, protocol)
                lines.already += 1
                continue
            if progress:
                progress(f"{protocol} classes: {name}")
            t_row = time.perf_counter()
            if is_ref:
                row = _reference_row(cfg, protocol, name, evaluator)
            else:
                if data is None:
                    data = prepare_train_data(cfg.data, protocol, seed=cfg.seed, rule=cfg.split_rule,
                                              noise_dir=None if cfg.noise is None else Path(cfg.noise))
                row = _preset_row(cfg, protocol, name, data, evaluator, out_dir)
            row["row_key"], row["row_s"] = key, round(time.perf_counter() - t_row, 1)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(json.dumps(row, indent=2, default=str) + "\n")
            tmp.replace(cached)
            result.rows.append(row)
            lines.say(_row_line(row, cfg.boards[0]), done, "rows")
    result.wall_time_s = time.perf_counter() - t0
    return result


def _row_line(row: dict[str, Any], board: str) -> str:
    acc = row.get("int8_test_accuracy")
    flash, latency = row.get(f"{board}.flash_bytes"), row.get(f"{board}.latency_ms")
    return (f"{row['protocol']} classes, {row['model']}: int8 test {'–' if acc is None else f'{100 * acc:.2f} %'}, "
            f"flash {'–' if flash is None else f'{flash / 1024:.1f} KB'}, latency "
            f"{'–' if latency is None else f'{latency:.1f} ms'} on {board}, {row['row_s']:.0f} s")


# ---- render ----

def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _b(x: int | None) -> str:
    return "–" if x is None else f"{x:,}"


def render_table(result: SeedResult, protocol: str) -> str:
    """One Markdown table per protocol: sizes, accuracy, and per board flash/RAM/count/latency."""
    cfg = result.config
    boards = cfg.boards
    head = ["model", "params", "MACs", "float32 B", "int8 B", "smaller %", "float acc %", "int8 acc %",
            "TFLM arena B"]
    for b in boards:
        head += [f"{b} flash B", f"{b} RAM B", f"{b} instr", f"{b} ms (est.)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in (r for r in result.rows if r["protocol"] == protocol):
        cells = [r["model"] + (" †" if r["kind"] == "reference" else ""), _b(r["params"]), _b(r["macs"]),
                 _b(r["float32_tflite_bytes"]), _b(r["int8_tflite_bytes"]),
                 "–" if r["size_reduction_pct"] is None else f"{r['size_reduction_pct']:.1f}",
                 _pct(r["float_test_accuracy"]), _pct(r["int8_test_accuracy"]), _b(r["arena_bytes"])]
        for b in boards:
            if not r.get(f"{b}.fits", True):
                cells += ["does not fit", "", "", ""]
                continue
            if not r.get(f"{b}.ok"):
                cells += ["failed", "", "", ""]
                continue
            lat = r.get(f"{b}.latency_ms")
            cells += [_b(r.get(f"{b}.flash_bytes")), _b(r.get(f"{b}.ram_bytes")), _b(r.get(f"{b}.count")),
                      "–" if lat is None else f"{lat:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(result: SeedResult) -> dict[str, Any]:
    """The figures the note and README quote: mean size reduction, accuracy change float -> int8."""
    presets = [r for r in result.rows if r["kind"] == "preset"]
    red = [r["size_reduction_pct"] for r in presets]
    drops = [100 * (r["float_test_accuracy"] - r["int8_test_accuracy"]) for r in presets
             if r["float_test_accuracy"] is not None and r["int8_test_accuracy"] is not None]
    return {
        "rows": len(result.rows),
        "mean_size_reduction_pct": sum(red) / len(red) if red else None,
        "size_reduction_range_pct": [min(red), max(red)] if red else None,
        "seed_size_reduction_pct": SEED_SIZE_REDUCTION_PCT,
        "mean_int8_drop_points": sum(drops) / len(drops) if drops else None,
        "max_int8_drop_points": max(drops) if drops else None,
    }


def fits(result: SeedResult) -> dict[str, list[str]]:
    """Per real board of the board table: the models whose measured flash and RAM (on the emulated board
    with the same core, so the same kernels) are within the part's budgets."""
    out: dict[str, list[str]] = {}
    measured = {b: get_board(b) for b in result.config.boards}
    for board in (b for b in all_boards() if not b.emulated):
        twin = next((n for n, m in measured.items() if m.core == board.core), None)
        if twin is None:
            continue
        rows = [r for r in result.rows if r["protocol"] == result.config.protocols[-1]]
        out[f"{board.name} ({board.core}, {board.flash.length_bytes // 1024} KiB flash, "
            f"{board.ram.length_bytes // 1024} KiB RAM; figures from {twin})"] = [
            r["model"] for r in rows if r.get(f"{twin}.ok") and r[f"{twin}.flash_bytes"] <= board.flash.length_bytes
            and r[f"{twin}.ram_bytes"] <= board.ram.length_bytes]
    return out


def fits_text(result: SeedResult) -> str:
    every = [r["model"] for r in result.rows if r["protocol"] == result.config.protocols[-1]]
    lines = []
    for board, ok in fits(result).items():
        left = [m for m in every if m not in ok]
        lines.append(f"- {board}: {len(ok)} of {len(every)} fit" + (f"; not: {', '.join(left)}" if left else ""))
    return "\n".join(lines) or "no real board shares a core with the measured boards"


def render_markdown(result: SeedResult, command: str) -> str:
    cfg, s = result.config, summary(result)
    parts = [
        "# The seed survey's framework comparison, reproduced",
        "",
        f"Command: `{command}`  ",
        f"Data: `{cfg.data}`" + (f", split rule `{cfg.split_rule}`" if cfg.split_rule else "") +
        (f", noise `{cfg.noise}`" if cfg.noise else "") + f"; seed {cfg.seed}; training per model: "
        f"{cfg.epochs} epochs" + (f" (capped at {cfg.time_s:.0f} s)" if cfg.time_s else "") + f"; PTQ with {cfg.calibration_clips} "
        f"calibration clips. Accuracy on the test split (int8: golden reference, bit-exact with TFLM). "
        f"Boards: {', '.join(cfg.boards)} (emulated: instruction counts, latency estimated at the board "
        "clock from its CPI)." + (f" Computing the rows took {sum(r['row_s'] for r in result.rows) / 60:.0f} min on "
                                  "this machine." if all("row_s" in r for r in result.rows) else ""),
        "",
        f"int8 `.tflite` is {s['mean_size_reduction_pct']:.1f} % smaller than float32 on average "
        f"(range {s['size_reduction_range_pct'][0]:.1f}–{s['size_reduction_range_pct'][1]:.1f} %; the seed "
        f"reports about {SEED_SIZE_REDUCTION_PCT:.0f} %); int8 minus float test accuracy is "
        f"{-s['mean_int8_drop_points']:+.2f} points on average (the largest loss: {s['max_int8_drop_points']:.2f} "
        f"points)." if s["mean_size_reduction_pct"] else "",
        "",
    ]
    for protocol in cfg.protocols:
        title = {"10": "10 keywords (the seed's protocol)", "12": "12 classes (10 keywords, silence, unknown)"}.get(
            protocol, f"your words: {protocol}")
        parts += [f"## {title}", "", render_table(result, protocol), ""]
    parts += ["## Which models fit which board", "", fits_text(result), ""]
    if cfg.references:
        parts += ["† third-party model: evaluated with its own front end on the same test split and measured "
                  "on the same boards; its float model is not available.", ""]
    parts += ["Versions: " + ", ".join(f"{k} {v}" for k, v in result.versions.items()), ""]
    return "\n".join(parts)


def write_outputs(result: SeedResult, out_dir: Path, command: str) -> list[Path]:
    """``table.md``, ``table.json`` and the plots; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "table.md"
    md.write_text(render_markdown(result, command))
    js = out_dir / "table.json"
    js.write_text(json.dumps({"command": command, "config": result.config.to_dict(), "summary": summary(result),
                              "versions": result.versions, "wall_time_s": result.wall_time_s,
                              "rows": result.rows}, indent=2, default=str) + "\n")
    return [md, js, *write_plots(result, out_dir)]


def write_plots(result: SeedResult, out_dir: Path) -> list[Path]:
    plt = pyplot()
    cfg, paths = result.config, []
    board = cfg.boards[0]
    for x_key, x_label, name in ((f"{board}.flash_bytes", f"flash on {board}, KiB", "accuracy_vs_flash"),
                                 (f"{board}.latency_ms", f"latency on {board}, ms (estimated)", "accuracy_vs_latency")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for protocol, marker in zip(cfg.protocols, "os", strict=False):
            rows = [r for r in result.rows if r["protocol"] == protocol and r.get(x_key) and r["int8_test_accuracy"]]
            xs = [r[x_key] / (1024 if "flash" in x_key else 1) for r in rows]
            ys = [100 * r["int8_test_accuracy"] for r in rows]
            ax.scatter(xs, ys, marker=marker, label=f"{protocol if protocol in ('10', '12') else 'own'} classes, int8")
            for r, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(r["model"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel("test accuracy, %")
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(save_png(fig, out_dir / f"{name}.png"))
    rows = [r for r in result.rows if r["protocol"] == cfg.protocols[0] and r["float32_tflite_bytes"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["float32_tflite_bytes"] / 1024 for r in rows], 0.4, label="float32 .tflite")
    ax.bar([x + 0.2 for x in xs], [r["int8_tflite_bytes"] / 1024 for r in rows], 0.4, label="int8 .tflite")
    ax.set_xticks(list(xs), [r["model"] for r in rows], rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("KiB")
    ax.legend()
    return [*paths, save_png(fig, out_dir / "size_float_vs_int8.png")]
